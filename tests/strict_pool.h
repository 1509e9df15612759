// tests/strict_pool.h: pools on the host backend's strict emulation of vmm
// memory (populate_on_request: a page is inaccessible until the pool
// populates it), for the tests of the pool's page rules and its budgets.
#ifndef UMPOOL_TESTS_STRICT_POOL_H_
#define UMPOOL_TESTS_STRICT_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "tests/residency_helpers.h"
#include "umpool/pool.h"

namespace umpool::testing {

// An engine's second stream (a fetch thread's): the host backend's streams
// are any handle.
inline const Stream kSide = reinterpret_cast<Stream>(std::uintptr_t{0x2});

// A host pool with options `o` (a 4 GiB cap), on the strict emulation, or
// with `strict` false on host memory that populates on touch (as managed
// memory does). *backend, if given: its backend. nullptr on failure
// (reported).
inline std::unique_ptr<Pool> StrictPool(PoolOptions o = {}, bool strict = true,
                                        internal::HostBackend** backend = nullptr) {
  o.backend = BackendKind::kHost;
  o.capacity_bytes = std::size_t{4} << 30;
  // Room for the reserves a vmm pool maps (address space only here too:
  // PROT_NONE, MAP_NORESERVE), so segments grow in place and blocks lie side
  // by side, as they do on the GPU.
  auto owned = std::make_unique<internal::HostBackend>(std::size_t{64} << 30,
                                                       /*populate_on_request=*/strict);
  if (backend != nullptr) *backend = owned.get();
  auto pool = Pool::Create(o, std::move(owned));
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

// A StrictPool with options `o` (WithKvStaging's, maybe adjusted) and
// `staging` bytes of pinned memory reserved for its evictions.
inline std::unique_ptr<Pool> StagingPool(const PoolOptions& o, std::size_t staging,
                                         bool strict = true,
                                         internal::HostBackend** backend = nullptr) {
  // StrictPool sets the cap (4 GiB) over WithKvStaging's.
  auto pool = StrictPool(o, strict, backend);
  if (pool != nullptr) EXPECT_TRUE(pool->ReserveEvictionStaging(staging).ok());
  return pool;
}

// A StrictPool whose KV role has a budget, evicts by staging (with
// `staging` bytes of pinned memory reserved) and discards on free.
inline std::unique_ptr<Pool> KvBudgetPool(std::size_t budget, std::size_t staging,
                                          bool strict = true,
                                          internal::HostBackend** backend = nullptr) {
  return StagingPool(WithKvStaging(budget), staging, strict, backend);
}

}  // namespace umpool::testing

#endif  // UMPOOL_TESTS_STRICT_POOL_H_
