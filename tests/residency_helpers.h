// Helpers of the residency and staging parts of the pool conformance suite
// (pool_residency_test.cc, pool_staging_test.cc): pool options with a KV
// budget, KV blocks filled with patterns, one block moved as an engine moves it.
#ifndef UMPOOL_TESTS_RESIDENCY_HELPERS_H_
#define UMPOOL_TESTS_RESIDENCY_HELPERS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool::testing {

inline constexpr std::size_t kResidencyMiB = std::size_t{1} << 20;

// The options of these tests: a 256 MiB cap, and a KV budget when not 0.
inline PoolOptions WithKvBudget(std::size_t budget) {
  PoolOptions o;
  o.capacity_bytes = 256 * kResidencyMiB;
  o.roles[static_cast<int>(Role::kKv)].hbm_budget_bytes = budget;
  return o;
}

// `n` KV blocks of `bytes`, block i filled with pattern seed + i.
inline std::vector<void*> FilledKv(Pool& pool, BackendKind kind, int n, std::size_t bytes,
                            std::uint64_t seed) {
  std::vector<void*> kv;
  for (int i = 0; i < n; ++i) {
    auto p = pool.Allocate(bytes, kDefaultStream, Role::kKv);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) break;
    FillPattern(kind, *p, bytes, seed + i);
    kv.push_back(*p);
  }
  return kv;
}

// `n` KV blocks of 8 MiB allocated for `stream` (fewer if one failed).
inline std::vector<void*> KvBlocks(Pool& pool, int n, Stream stream) {
  std::vector<void*> kv;
  for (int i = 0; i < n; ++i) {
    auto p = pool.Allocate(8 * kResidencyMiB, stream, Role::kKv);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) break;
    kv.push_back(*p);
  }
  return kv;
}

// One block moved as an engine moves it (PrefetchBlocks).
inline absl::Status PrefetchOne(Pool& pool, const void* block, Location where, Stream stream) {
  return pool.PrefetchBlocks(&block, 1, where, stream);
}

inline PoolOptions WithKvStaging(std::size_t budget) {
  PoolOptions o = WithKvBudget(budget);
  o.roles[static_cast<int>(Role::kKv)].discard_on_free = true;
  o.roles[static_cast<int>(Role::kKv)].evict_by_staging = true;
  return o;
}

}  // namespace umpool::testing

#endif  // UMPOOL_TESTS_RESIDENCY_HELPERS_H_
