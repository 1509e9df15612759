// Slabs carved from a role's large space (RolePolicy::slab_space_max_bytes, 256 KiB for the
// default role here; off by default): 2 MiB-aligned ranges of its segments, out of LiveBlocks and counted once in
// the role's reserved bytes, served from free room the large blocks left, and given back to
// the large space once more than SlabAllocator::kEmptySlabBytesKept of a class are empty.
// Host backend; events complete only when the test says so.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/pool_core.h"
#include "src/pool/slab_allocator.h"
#include "tests/test_util.h"

namespace umpool {
namespace {

using testing::HostStream;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kKiB = std::size_t{1} << 10;

class LargeSpaceSlabsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PoolOptions o;
    o.roles[static_cast<int>(Role::kDefault)].slab_space_max_bytes = 256 * kKiB;
    pool_ = testing::MakeHostPool(o, &backend_, 0);
    ASSERT_NE(pool_, nullptr);
    backend_->SetManualCompletion(true);
  }
  void* Alloc(std::size_t n) {
    auto p = pool_->Allocate(n, a_);
    EXPECT_TRUE(p.ok()) << n << ": " << p.status();
    return p.ok() ? *p : nullptr;
  }
  void Free(void* p) { ASSERT_TRUE(pool_->Deallocate(p, a_).ok()); }
  // The segment holding `p`, and whether it is a slab space's.
  const SpanInfo* SegmentOf(const std::vector<SpanInfo>& spans, const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    for (const SpanInfo& s : spans) {
      if (!s.slab && a >= s.base && a < s.base + s.bytes) return &s;
    }
    return nullptr;
  }
  const SpanInfo* SlabOf(const std::vector<SpanInfo>& spans, const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    for (const SpanInfo& s : spans) {
      if (s.slab && a >= s.base && a < s.base + s.bytes) return &s;
    }
    return nullptr;
  }
  std::int64_t reserved() const { return pool_->GetStats().reserved_bytes.current; }
  void Check() { internal::PoolCore::Unwrap(*pool_)->CheckInvariants(); }

  internal::HostBackend* backend_ = nullptr;
  std::unique_ptr<Pool> pool_;
  const Stream a_ = HostStream(1);
};

TEST_F(LargeSpaceSlabsTest, ClassesAbove256KiBTakeAlignedRangesOfTheLargeSpace) {
  void* large = Alloc(5 * kMiB + 512);  // the default role's large space
  void* mid = Alloc(512 * kKiB);        // a class above 256 KiB: a slab in the large space
  void* small = Alloc(128 * kKiB);      // below: a slab in slab space
  const std::vector<SpanInfo> spans = pool_->Spans();
  const SpanInfo* mid_slab = SlabOf(spans, mid);
  const SpanInfo* small_slab = SlabOf(spans, small);
  ASSERT_NE(mid_slab, nullptr);
  ASSERT_NE(small_slab, nullptr);
  EXPECT_EQ(mid_slab->base % kMapGranularity, 0u);
  EXPECT_EQ(mid_slab->bytes % kMapGranularity, 0u);
  const SpanInfo* mid_seg = SegmentOf(spans, mid);
  const SpanInfo* small_seg = SegmentOf(spans, small);
  ASSERT_NE(mid_seg, nullptr);
  ASSERT_NE(small_seg, nullptr);
  EXPECT_FALSE(mid_seg->slab_space) << "the 512 KiB class's slab is in the large space";
  EXPECT_TRUE(small_seg->slab_space) << "the 128 KiB class's slab is in slab space";
  EXPECT_EQ(SegmentOf(spans, large), mid_seg) << "beside the large block";
  // The range is one live block of its segment's picture, named by no request.
  bool pictured = false;
  for (const SpanBlocks& b : mid_seg->blocks) {
    if (mid_seg->base + b.offset == mid_slab->base) {
      pictured = b.state == 'L' && b.bytes == mid_slab->bytes && b.requested == 0;
    }
  }
  EXPECT_TRUE(pictured);
  // Users see their three blocks, not the slab's range.
  const std::vector<BlockInfo> live = pool_->LiveBlocks();
  ASSERT_EQ(live.size(), 3u);
  for (const BlockInfo& b : live) {
    EXPECT_TRUE(b.ptr == large || b.ptr == mid || b.ptr == small) << b.ptr;
  }
  // Counted once: the pool's only role holds every reserved byte.
  EXPECT_EQ(static_cast<std::int64_t>(pool_->GetResidency(Role::kDefault).reserved_bytes),
            reserved());
  Check();
  for (void* p : {large, mid, small}) Free(p);
  Check();
}

TEST_F(LargeSpaceSlabsTest, SlabsFillTheRoomLargeBlocksLeft) {
  void* hole = Alloc(64 * kMiB);
  void* wall = Alloc(4 * kMiB);  // keeps the segment from being wholly free
  Free(hole);
  const std::int64_t before = reserved();
  const std::uint64_t maps = backend_->counters().maps.load();
  std::vector<void*> kv;
  for (int i = 0; i < 48; ++i) kv.push_back(Alloc(kMiB));  // 24 slabs of 2 MiB
  EXPECT_EQ(reserved(), before) << "48 MiB of slabs from the freed 64 MiB";
  EXPECT_EQ(backend_->counters().maps.load(), maps);
  const std::vector<SpanInfo> spans = pool_->Spans();
  for (void* p : kv) {
    const SpanInfo* seg = SegmentOf(spans, p);
    ASSERT_NE(seg, nullptr);
    EXPECT_FALSE(seg->slab_space);
  }
  Check();
  for (void* p : kv) Free(p);
  Free(wall);
  Check();
}

TEST_F(LargeSpaceSlabsTest, EmptySlabsGoBackBeyondAFewKept) {
  void* wall = Alloc(4 * kMiB);
  std::vector<void*> kv;
  for (int i = 0; i < 64; ++i) kv.push_back(Alloc(kMiB));  // 32 slabs of 2 MiB
  for (void* p : kv) Free(p);
  // The thread cache keeps two blocks (and their slabs); the bin keeps
  // kEmptySlabBytesKept of empty slabs; the rest went back to the large space.
  std::size_t slab_bytes = 0;
  for (const SpanInfo& s : pool_->Spans()) {
    if (s.slab && s.block_bytes == kMiB) slab_bytes += s.bytes;
  }
  EXPECT_LE(slab_bytes, internal::SlabAllocator::kEmptySlabBytesKept + 4 * kMiB);
  EXPECT_GE(slab_bytes, 2 * kMiB) << "one empty slab at least stays for the class";
  // The space has the rest as one free run: a 48 MiB block needs no growth.
  const std::int64_t before = reserved();
  void* big = Alloc(48 * kMiB);
  EXPECT_EQ(reserved(), before);
  Check();
  Free(big);
  Free(wall);
}

// The GPU test's pattern (gpu_test: BlockFreedWhileAKernelWritesIsNotReusedEarlyOnAnotherStream)
// on the host: a block freed on A while A's work runs goes to B only behind a stream wait.
TEST_F(LargeSpaceSlabsTest, ABlockFreedOnABusyStreamReachesAnotherOnlyBehindAWait) {
  const Stream b = HostStream(2);
  for (std::size_t size : {std::size_t{4096}, kMiB, 8 * kMiB, 64 * kMiB}) {
    SCOPED_TRACE(size);
    int rounds_reused = 0;
    for (int round = 0; round < 5; ++round) {
      SCOPED_TRACE(round);
      const Stats before = pool_->GetStats();
      void* x = Alloc(size);
      backend_->Submit(a_);  // A's kernel writes x, not done
      Free(x);
      std::vector<void*> ys;
      int reused = 0;
      for (int i = 0; i < 8; ++i) {
        auto y = pool_->Allocate(size, b);
        ASSERT_TRUE(y.ok()) << y.status();
        if (*y == x) ++reused;
        ys.push_back(*y);
      }
      rounds_reused += reused > 0 ? 1 : 0;
      if (reused > 0) {
        EXPECT_GT(pool_->GetStats().ordered_reuses, before.ordered_reuses)
            << "A's block went to B while A's work ran, not behind a stream wait";
      }
      backend_->CompleteAll();
      for (void* y : ys) ASSERT_TRUE(pool_->Deallocate(y, b).ok());
      backend_->CompleteAll();
      Check();
    }
    // The 1 MiB class's slab ranges: x's range, given back pending, comes
    // to B behind a wait (before the fix, by a growth over it, uncounted).
    if (size == kMiB) EXPECT_GT(rounds_reused, 0);
  }
}

}  // namespace
}  // namespace umpool
