// The pool conformance suite, part 5: per-role HBM budgets and residency
// counts, on every backend. Instantiated in pool_test.cc. On the managed
// backend the evictions and fetches are real; their contents are checked.
#include <vector>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "tests/residency_helpers.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using ::umpool::testing::CheckPattern;
using ::umpool::testing::FillPattern;
using ::umpool::testing::WithKvBudget;

constexpr std::size_t kMiB = std::size_t{1} << 20;

TEST_P(PoolTest, KvBudgetEvictsTheLeastRecentlyFetchedBlocks) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  auto pool = Make(WithKvBudget(24 * kMiB));
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  // Two requests of 3 x 4 MiB blocks each fit (24 MiB); a third pushes the
  // first one's blocks out, oldest first.
  std::vector<std::vector<void*>> req(3);
  for (int r = 0; r < 3; ++r) {
    for (int b = 0; b < 3; ++b) {
      auto p = pool->Allocate(4 * kMiB, s, Role::kKv);
      ASSERT_TRUE(p.ok()) << p.status();
      FillPattern(kind(), *p, 4 * kMiB, 10 * r + b);
      req[r].push_back(*p);
    }
  }
  RoleResidency kv = pool->GetResidency(Role::kKv);
  EXPECT_EQ(kv.budget_bytes, 24 * kMiB);
  EXPECT_EQ(kv.resident_bytes, 24 * kMiB);
  EXPECT_EQ(kv.host_bytes, 12 * kMiB);
  EXPECT_EQ(kv.budget_evictions, 3u);
  EXPECT_EQ(kv.evictions, 3u);
  // The first request resumes: fetching its blocks evicts the second's (the
  // least recently allocated or fetched), in one batch.
  const std::uint64_t prefetches = bc.prefetch_ops.load();
  ASSERT_TRUE(pool->PrefetchBlocks(req[0].data(), 3, Location::kDevice, s).ok());
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + 2) << "one eviction batch, one fetch batch";
  kv = pool->GetResidency(Role::kKv);
  EXPECT_EQ(kv.resident_bytes, 24 * kMiB);
  EXPECT_EQ(kv.host_bytes, 12 * kMiB);
  EXPECT_EQ(kv.fetches, 3u);
  EXPECT_EQ(kv.budget_evictions, 6u);
  // Contents survive every round trip.
  for (int r = 0; r < 3; ++r) {
    for (int b = 0; b < 3; ++b) {
      EXPECT_TRUE(CheckPattern(kind(), req[r][b], 4 * kMiB, 10 * r + b)) << r << "," << b;
    }
  }
  // Other roles are not budgeted and evict nothing.
  auto w = pool->Allocate(64 * kMiB, s, Role::kWeights);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(pool->GetResidency(Role::kKv).budget_evictions, 6u);
  EXPECT_EQ(pool->GetResidency(Role::kWeights).budget_bytes, 0u);
  // Frees forget blocks: resident and host bytes fall back to 0.
  for (auto& blocks : req) {
    for (void* p : blocks) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  }
  ASSERT_TRUE(pool->Deallocate(*w, s).ok());
  kv = pool->GetResidency(Role::kKv);
  EXPECT_EQ(kv.resident_bytes, 0u);
  EXPECT_EQ(kv.host_bytes, 0u);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST_P(PoolTest, ResidencyCountsEvictionsAndFetchesOfEveryRole) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  auto pool = Make(WithKvBudget(0));
  ASSERT_NE(pool, nullptr);
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "device memory cannot be evicted";
  const Stream s = kDefaultStream;
  auto a = pool->Allocate(8 * kMiB, s, Role::kDefault);
  auto b = pool->Allocate(8 * kMiB, s, Role::kDefault);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(pool->Evict(*a, s).ok());
  ASSERT_TRUE(pool->Evict(*b, s).ok());
  RoleResidency d = pool->GetResidency(Role::kDefault);
  EXPECT_EQ(d.evictions, 2u);
  EXPECT_EQ(d.host_bytes, pool->BlockSize(*a).value() + pool->BlockSize(*b).value());
  EXPECT_EQ(d.resident_bytes, 0u) << "not budgeted: not counted";
  ASSERT_TRUE(pool->Fetch(*a, s).ok());
  d = pool->GetResidency(Role::kDefault);
  EXPECT_EQ(d.fetches, 1u);
  EXPECT_EQ(d.host_bytes, pool->BlockSize(*b).value());
  ASSERT_TRUE(pool->Deallocate(*b, s).ok());  // freed while evicted: forgotten
  EXPECT_EQ(pool->GetResidency(Role::kDefault).host_bytes, 0u);
  ASSERT_TRUE(pool->Deallocate(*a, s).ok());
  EXPECT_EQ(pool->GetResidency(static_cast<Role>(9)).evictions, 0u) << "bad role: zeros";
}

TEST_P(PoolTest, BudgetCountsStayRightAcrossACheckpointRestore) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  auto pool = Make(WithKvBudget(64 * kMiB));
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const std::vector<BlockInfo> empty = pool->LiveBlocks();
  auto a = pool->Allocate(8 * kMiB, s, Role::kKv);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(pool->GetResidency(Role::kKv).resident_bytes, pool->BlockSize(*a).value());
  // The restore frees the block (through the pool's own free): forgotten.
  std::vector<void*> freed, allocated;
  ASSERT_TRUE(pool->RestoreLiveBlocks(empty, &freed, &allocated).ok());
  EXPECT_EQ(pool->GetResidency(Role::kKv).resident_bytes, 0u);
  auto b = pool->Allocate(8 * kMiB, s, Role::kKv);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(pool->GetResidency(Role::kKv).resident_bytes, pool->BlockSize(*b).value());
  ASSERT_TRUE(pool->Deallocate(*b, s).ok());
  EXPECT_EQ(pool->GetResidency(Role::kKv).resident_bytes, 0u);
}

// Per-role shares of the pool's figures: each role's allocated bytes are its
// live blocks' sizes, its reserved bytes cover them, and the roles' reserved
// bytes add up to at most the pool's.
TEST_P(PoolTest, RoleFiguresSplitThePoolsAllocatedAndReservedBytes) {
  auto pool = Make(WithKvBudget(0));
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  struct Want {
    Role role;
    std::size_t bytes;
    int count;
  };
  const Want wants[] = {{Role::kWeights, 8 * kMiB, 2}, {Role::kKv, 4 * kMiB, 3},
                        {Role::kActivations, 16 << 10, 5}};
  std::vector<void*> blocks;
  std::size_t expect[kNumRoles] = {};
  for (const Want& w : wants) {
    for (int i = 0; i < w.count; ++i) {
      auto p = pool->Allocate(w.bytes, s, w.role);
      ASSERT_TRUE(p.ok()) << p.status();
      blocks.push_back(*p);
      expect[static_cast<int>(w.role)] += *pool->BlockSize(*p);
    }
  }
  std::size_t reserved = 0;
  for (int r = 0; r < kNumRoles; ++r) {
    const RoleResidency rr = pool->GetResidency(static_cast<Role>(r));
    EXPECT_EQ(rr.allocated_bytes, expect[r]) << RoleName(static_cast<Role>(r));
    EXPECT_GE(rr.reserved_bytes, rr.allocated_bytes) << RoleName(static_cast<Role>(r));
    reserved += rr.reserved_bytes;
  }
  EXPECT_EQ(pool->GetResidency(Role::kDefault).allocated_bytes, 0u);
  EXPECT_LE(reserved, static_cast<std::size_t>(pool->GetStats().reserved_bytes.current));
  for (void* p : blocks) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  ASSERT_TRUE(pool->Trim().ok());
  for (int r = 0; r < kNumRoles; ++r) {
    EXPECT_EQ(pool->GetResidency(static_cast<Role>(r)).allocated_bytes, 0u);
  }
}

}  // namespace
}  // namespace umpool
