// The pool conformance suite: the same tests on every backend (part 1: the
// core pool; part 2, managed-memory features and traces: pool_features_test.cc).
// Host runs everywhere (ctest label cpu); managed and device need a GPU
// (label gpu) and skip cleanly without one.
#include <algorithm>
#include <cstdio>
#include <string>
#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "umpool/backend.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using ::umpool::testing::CheckPattern;
using ::umpool::testing::FillPattern;
using ::umpool::testing::MakeTestPool;
using ::umpool::testing::TestSeed;

TEST_P(PoolTest, SizeZeroReturnsNullAndFreeOfNullIsANoOp) {
  auto p = pool_->Allocate(0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, nullptr);
  EXPECT_TRUE(pool_->Deallocate(nullptr).ok());
  EXPECT_EQ(pool_->GetStats().allocations, 0u);
}

constexpr std::size_t kDefaultSlabMax = std::size_t{1} << 20;  // RolePolicy default role

TEST_P(PoolTest, EverySizeIsAlignedAndUsable) {
  const std::uint64_t seed = TestSeed(1);
  std::mt19937_64 rng(seed);
  std::vector<std::size_t> sizes = {1, 255, 256, 257, 4096, 65536, 1 << 20, (1 << 20) + 1,
                                    32u << 20, (32u << 20) + 1, 100u << 20};
  for (int i = 0; i < 64; ++i) sizes.push_back(1 + rng() % (8u << 20));
  std::vector<std::pair<void*, std::size_t>> live;
  for (std::size_t n : sizes) {
    auto p = pool_->Allocate(n);
    ASSERT_TRUE(p.ok()) << n << ": " << p.status();
    ASSERT_NE(*p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(*p) % kMinAlignment, 0u) << n;
    auto usable = pool_->BlockSize(*p);
    ASSERT_TRUE(usable.ok());
    EXPECT_GE(*usable, n);
    if (n <= kDefaultSlabMax) {
      EXPECT_EQ(*usable, pool_->RoundedSize(n)) << n;
    } else {
      // A large block keeps a free rest too small to split off (< 1 MiB).
      EXPECT_EQ(pool_->RoundedSize(n) % 512, 0u) << n;
      EXPECT_GE(*usable, pool_->RoundedSize(n)) << n;
      EXPECT_LT(*usable, pool_->RoundedSize(n) + (1u << 20)) << n;
    }
    FillPattern(kind(), *p, std::min<std::size_t>(n, 1 << 16), n);
    live.emplace_back(*p, n);
  }
  for (auto [p, n] : live) {
    EXPECT_TRUE(CheckPattern(kind(), p, std::min<std::size_t>(n, 1 << 16), n)) << n;
  }
  Check();
  for (auto [p, n] : live) ASSERT_TRUE(pool_->Deallocate(p).ok());
  Check();
}

TEST_P(PoolTest, LiveBlocksNeverOverlap) {
  const std::uint64_t seed = TestSeed(2);
  std::mt19937_64 rng(seed);
  struct Live {
    std::uintptr_t p;
    std::size_t n;    // usable (rounded) size
    std::size_t fill;  // bytes patterned
    std::uint64_t tag;
  };
  std::vector<Live> live;
  for (int step = 0; step < 4000; ++step) {
    // At most 40 live blocks, one in eight large: stays far below a GPU test
    // pool's 1 GiB cap.
    if (live.empty() || (live.size() < 40 && rng() % 3 != 0)) {
      const std::size_t n = rng() % 8 == 0 ? 1 + rng() % (40u << 20) : 1 + rng() % 70000;
      auto p = pool_->Allocate(n, kDefaultStream, static_cast<Role>(rng() % kNumRoles));
      ASSERT_TRUE(p.ok()) << p.status();
      const std::uint64_t tag = rng();
      const std::size_t fill = std::min<std::size_t>(n, 512);
      FillPattern(kind(), *p, fill, tag);
      live.push_back({reinterpret_cast<std::uintptr_t>(*p), *pool_->BlockSize(*p), fill, tag});
    } else {
      const std::size_t i = rng() % live.size();
      ASSERT_TRUE(CheckPattern(kind(), reinterpret_cast<void*>(live[i].p), live[i].fill,
                               live[i].tag))
          << "step " << step;
      ASSERT_TRUE(pool_->Deallocate(reinterpret_cast<void*>(live[i].p)).ok());
      live[i] = live.back();
      live.pop_back();
    }
    if (step % 500 == 0) {
      std::vector<Live> sorted = live;
      std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.p < b.p; });
      for (std::size_t i = 1; i < sorted.size(); ++i) {
        ASSERT_LE(sorted[i - 1].p + sorted[i - 1].n, sorted[i].p) << "overlap at step " << step;
      }
      Check();
    }
  }
  for (auto& l : live) ASSERT_TRUE(pool_->Deallocate(reinterpret_cast<void*>(l.p)).ok());
  Check();
}

TEST_P(PoolTest, BadInputIsAClearErrorAndThePoolKeepsWorking) {
  auto p = pool_->Allocate(4096);
  ASSERT_TRUE(p.ok());
  char* c = static_cast<char*>(*p);

  // Interior pointer.
  absl::Status st = pool_->Deallocate(c + 256);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("interior"), absl::string_view::npos) << st;
  // Unknown pointer.
  int on_stack = 0;
  st = pool_->Deallocate(&on_stack);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("not allocated by this pool"), absl::string_view::npos) << st;
  // Absurd sizes.
  for (std::size_t n : {SIZE_MAX, SIZE_MAX / 2, static_cast<std::size_t>(-4096),
                        (std::size_t{1} << 47) + 1}) {
    auto q = pool_->Allocate(n);
    EXPECT_TRUE(absl::IsInvalidArgument(q.status())) << n << ": " << q.status();
  }
  // More than the cap: out of memory, with the request and the stats.
  auto big = pool_->Allocate(std::size_t{1} << 46);
  EXPECT_TRUE(absl::IsResourceExhausted(big.status())) << big.status();
  EXPECT_NE(big.status().message().find(std::to_string(std::size_t{1} << 46)),
            absl::string_view::npos);
  EXPECT_NE(big.status().message().find("reserved"), absl::string_view::npos);
  // Invalid role.
  EXPECT_TRUE(absl::IsInvalidArgument(pool_->Allocate(64, kDefaultStream, static_cast<Role>(9)).status()));
  // Double free.
  ASSERT_TRUE(pool_->Deallocate(c).ok());
  st = pool_->Deallocate(c);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("double free"), absl::string_view::npos);
  // record_stream on a freed block.
  EXPECT_TRUE(absl::IsFailedPrecondition(pool_->RecordStream(c, kDefaultStream)));
  // Large block: interior and double free.
  auto l = pool_->Allocate(64u << 20);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(pool_->Deallocate(static_cast<char*>(*l) + 4096)));
  ASSERT_TRUE(pool_->Deallocate(*l).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(pool_->Deallocate(*l)));
  Check();
  // Still serving, and the freed blocks are reused.
  auto again = pool_->Allocate(4096);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, c);
  ASSERT_TRUE(pool_->Deallocate(*again).ok());
  const Stats s = pool_->GetStats();
  EXPECT_EQ(s.allocations, s.frees);
  EXPECT_EQ(s.allocated_bytes.current, 0);
  Check();
}

TEST_P(PoolTest, SteadyStateMakesNoBackendCalls) {
  std::vector<std::size_t> sizes = {512, 4096, 100000, 3u << 20, 48u << 20};
  auto round = [&] {
    std::vector<void*> live;
    for (std::size_t n : sizes) {
      for (int r = 0; r < kNumRoles; ++r) {
        auto p = pool_->Allocate(n, kDefaultStream, static_cast<Role>(r));
        ASSERT_TRUE(p.ok());
        live.push_back(*p);
      }
    }
    for (void* p : live) ASSERT_TRUE(pool_->Deallocate(p).ok());
  };
  round();  // warm-up
  const Stats warm = pool_->GetStats();
  for (int i = 0; i < 200; ++i) round();
  const Stats after = pool_->GetStats();
  EXPECT_EQ(after.backend_allocations, warm.backend_allocations);
  EXPECT_EQ(after.backend_frees, warm.backend_frees);
  EXPECT_EQ(after.advise_calls, warm.advise_calls);
  EXPECT_EQ(after.cache_hits - warm.cache_hits, after.allocations - warm.allocations);
  EXPECT_EQ(after.reserved_bytes.peak, warm.reserved_bytes.peak);
}

TEST_P(PoolTest, AdviceAndPrefetchOncePerSlabNotPerAllocation) {
  std::vector<void*> live;
  for (int i = 0; i < 1000; ++i) {  // 1000 x 4 KiB: two 2 MiB slabs
    auto p = pool_->Allocate(4096);
    ASSERT_TRUE(p.ok());
    live.push_back(*p);
  }
  Stats s = pool_->GetStats();
  EXPECT_EQ(s.slabs, 2);
  auto* core = internal::PoolCore::Unwrap(*pool_);
  if (kind() == BackendKind::kDevice) {  // cudaMalloc: no reserve, a segment per slab here
    EXPECT_EQ(s.backend_allocations, 2u);
    EXPECT_EQ(core->backend().counters().maps.load(), 2u);
  } else {  // one segment, advised once, grown into its reserve for the second slab
    EXPECT_EQ(s.backend_allocations, 1u);
    EXPECT_EQ(s.grown_in_place, 1u);
    EXPECT_EQ(s.advise_calls, 1u);
    EXPECT_EQ(s.prefetch_calls, 2u);  // default role: what is populated (< 2 GiB) is prefetched
    EXPECT_EQ(core->backend().counters().advise_ops.load(), 1u);
    EXPECT_EQ(core->backend().counters().maps.load(), 1u);
  }
  for (void* p : live) ASSERT_TRUE(pool_->Deallocate(p).ok());
}

TEST_P(PoolTest, TrimReturnsEmptySlabsAndLargeSegments) {
  std::vector<void*> live;
  for (std::size_t n : {4096u, 65536u, 1u << 20, 40u << 20, 100u << 20}) {
    auto p = pool_->Allocate(n);
    ASSERT_TRUE(p.ok());
    live.push_back(*p);
  }
  auto keep = pool_->Allocate(4096);
  ASSERT_TRUE(keep.ok());
  for (void* p : live) ASSERT_TRUE(pool_->Deallocate(p).ok());
  const Stats before = pool_->GetStats();
  ASSERT_TRUE(pool_->Trim().ok());
  const Stats after = pool_->GetStats();
  EXPECT_LT(after.reserved_bytes.current, before.reserved_bytes.current);
  EXPECT_EQ(after.slabs, 1);  // the slab holding `keep`
  EXPECT_EQ(after.large_segments, 1) << "only the segment that carries that slab";
  if (kind() == BackendKind::kDevice) {
    EXPECT_EQ(after.large_reserved_bytes.current, 0) << "all of it is the slab";
    EXPECT_EQ(after.reserved_bytes.current, 2 << 20);
  } else {
    // The slab's segment keeps what it populated for the other slabs.
    EXPECT_EQ(after.reserved_bytes.current, after.large_reserved_bytes.current + (2 << 20));
    EXPECT_LE(after.reserved_bytes.current, 6 << 20);
  }
  Check();
  ASSERT_TRUE(pool_->Deallocate(*keep).ok());
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, 0);
  Check();
}

TEST_P(PoolTest, LargeBlocksAreReusedBestFitWithSplitAndMerge) {
  auto a = pool_->Allocate(100u << 20);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool_->Deallocate(*a).ok());
  // Two 40 MiB requests fit in the freed 100 MiB segment (split).
  auto b = pool_->Allocate(40u << 20);
  auto c = pool_->Allocate(40u << 20);
  ASSERT_TRUE(b.ok() && c.ok());
  EXPECT_EQ(*b, *a);
  EXPECT_EQ(static_cast<char*>(*c), static_cast<char*>(*a) + (40u << 20));
  EXPECT_EQ(pool_->GetStats().large_segments, 1);
  Check();
  ASSERT_TRUE(pool_->Deallocate(*b).ok());
  ASSERT_TRUE(pool_->Deallocate(*c).ok());
  Check();
  // Merged back: the whole 100 MiB is one block again.
  auto d = pool_->Allocate(100u << 20);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, *a);
  EXPECT_EQ(pool_->GetStats().large_segments, 1);
  ASSERT_TRUE(pool_->Deallocate(*d).ok());
  Check();
}

TEST_P(PoolTest, CapIsNeverExceededAndCachedMemoryIsReleasedOnPressure) {
  PoolOptions o;
  o.capacity_bytes = 64u << 20;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  // Fill the cap with 4 MiB blocks (4 MiB class: one per 4 MiB slab).
  std::vector<void*> live;
  for (;;) {
    auto p = pool->Allocate(4u << 20);
    if (!p.ok()) {
      EXPECT_TRUE(absl::IsResourceExhausted(p.status())) << p.status();
      break;
    }
    live.push_back(*p);
  }
  Stats s = pool->GetStats();
  EXPECT_LE(s.reserved_bytes.peak, 64 << 20);
  EXPECT_EQ(s.ooms, 1u);
  // Free everything: cached, not returned. A different class must still fit:
  // the pool releases the cached slabs and retries.
  for (void* p : live) ASSERT_TRUE(pool->Deallocate(p).ok());
  auto big = pool->Allocate(60u << 20);
  ASSERT_TRUE(big.ok()) << big.status();
  s = pool->GetStats();
  EXPECT_GE(s.alloc_retries, 1u);
  EXPECT_LE(s.reserved_bytes.peak, 64 << 20);
  ASSERT_TRUE(pool->Deallocate(*big).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST_P(PoolTest, ManyThreadsEachOnItsOwnStream) {
  const std::uint64_t seed = TestSeed(7);
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Stream s = GetParam() == BackendKind::kHost ? testing::HostStream(t) : kDefaultStream;
      failures += testing::RunPatternWorker(*pool_, kind(), s, seed + t, {});
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const Stats st = pool_->GetStats();
  EXPECT_EQ(st.allocations, st.frees);
  EXPECT_EQ(st.allocated_bytes.current, 0);
  Check();
}

TEST_P(PoolTest, FreeFromAnotherThreadIsFine) {
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) {
    auto p = pool_->Allocate(8192);
    ASSERT_TRUE(p.ok());
    blocks.push_back(*p);
  }
  std::thread other([&] {
    for (void* p : blocks) ASSERT_TRUE(pool_->Deallocate(p).ok());
  });
  other.join();  // the thread's cache is flushed back to the pool at exit
  Check();
  const Stats s = pool_->GetStats();
  EXPECT_EQ(s.allocations, s.frees);
  EXPECT_EQ(s.allocated_bytes.current, 0);
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, 0);
}

TEST_P(PoolTest, StatsAreConsistent) {
  PoolOptions o;
  o.stats_publish_bytes = 0;  // exact peaks
  auto pool = Make(o);
  std::vector<void*> live;
  std::size_t expect = 0;
  for (std::size_t n : {1000u, 5000u, 200000u, 50u << 20}) {  // three size classes, one large
    auto p = pool->Allocate(n);
    ASSERT_TRUE(p.ok());
    live.push_back(*p);
    expect += pool->RoundedSize(n);
  }
  Stats s = pool->GetStats();
  EXPECT_EQ(s.allocated_bytes.current, static_cast<std::int64_t>(expect));
  EXPECT_EQ(s.allocated_bytes.peak, static_cast<std::int64_t>(expect));
  EXPECT_EQ(s.allocations, 4u);
  EXPECT_GE(s.reserved_bytes.current, s.allocated_bytes.current);
  EXPECT_EQ(s.large_reserved_bytes.current, 50 << 20);
  EXPECT_FALSE(s.classes.empty());
  EXPECT_NE(s.ToString().find("class"), std::string::npos);
  for (void* p : live) ASSERT_TRUE(pool->Deallocate(p).ok());
  s = pool->GetStats();
  EXPECT_EQ(s.allocated_bytes.current, 0);
  EXPECT_EQ(s.allocated_bytes.peak, static_cast<std::int64_t>(expect));
  pool->ResetPeaks();
  s = pool->GetStats();
  EXPECT_EQ(s.allocated_bytes.peak, 0);
  EXPECT_EQ(s.reserved_bytes.peak, s.reserved_bytes.current);
}

TEST_P(PoolTest, WorksWithThreadCachesOff) {
  PoolOptions o;
  o.thread_cache = false;
  auto pool = Make(o);
  for (int i = 0; i < 100; ++i) {
    auto p = pool->Allocate(3900 + i);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(pool->Deallocate(*p).ok());
  }
  EXPECT_EQ(pool->GetStats().backend_allocations, 1u);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

INSTANTIATE_TEST_SUITE_P(Backends, PoolTest, AllBackends(), BackendTestName);

}  // namespace
}  // namespace umpool
