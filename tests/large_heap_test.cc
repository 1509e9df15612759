// A large heap (src/pool/large_heap.h) on its own, over made-up addresses
// (it keeps the books; the populate and drop callbacks stand in for the
// backend): the cases a pool's timing reaches only now and then.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/fence.h"
#include "src/pool/large_heap.h"
#include "src/pool/segment.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Growing a segment in place over a bare tail (pages given back, refilled
// for the growth) that sits after a larger block freed on another stream:
// the grown block is the caller's. Before 2b1e048 the refilled tail and the
// growth were merged on into that block, taking its stream's terms
// (model_test's concurrent phase hit it now and then: "a grown segment's
// tail is not the caller's").
TEST(LargeHeapTest, GrowingOverABareTailKeepsTheGrowthForTheCaller) {
  HostBackend backend;
  Fencer fencer{backend};
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2);
  const std::uintptr_t base = std::uintptr_t{1} << 40;  // never touched
  // Before the heap, which reads its segments as it goes.
  Segment seg(base, 1024 * kMiB, Role::kDefault, reinterpret_cast<void*>(base), 1024 * kMiB);
  seg.populated = 68 * kMiB;
  LargeHeap heap(512, kMiB, /*holds_slabs=*/false);
  // A: 64 MiB live on s1; the 4 MiB after it, the segment's free tail.
  LargeHeap::Taken a = heap.AddSegmentAndTake(&seg, 64 * kMiB, s1, 64 * kMiB);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(a.ptr), base);
  // The tail's pages given back: a bare block, which merges with no other.
  absl::StatusOr<std::size_t> dropped = heap.Depopulate(
      s1, /*own_stream=*/false, 4 * kMiB, /*keep_tails=*/false, LargeHeap::PageRange{},
      [](const std::vector<LargeHeap::PageRange>&) { return absl::OkStatus(); });
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  ASSERT_EQ(*dropped, 4 * kMiB);
  // A freed on s1, its work not done: reusable on s1 only.
  backend.SetManualCompletion(true);
  backend.Submit(s1);
  ASSERT_TRUE(heap.Free(base, s1, fencer).ok());
  // 8 MiB on s2: A is not reusable there; the tail is refilled and grown.
  std::vector<std::pair<std::uintptr_t, std::size_t>> populated;
  LargeHeap::Taken b = heap.ExtendAndTake(
      8 * kMiB, s2, 8 * kMiB, /*step=*/2 * kMiB,
      [&](Segment*, std::uintptr_t addr, std::size_t n) {
        populated.emplace_back(addr, n);
        return absl::OkStatus();
      },
      nullptr);
  ASSERT_NE(b.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.ptr), base + 64 * kMiB) << "the old tail's address";
  EXPECT_EQ(b.bytes, 8 * kMiB);
  ASSERT_EQ(populated.size(), 1u);
  EXPECT_EQ(populated[0].first, base + 64 * kMiB) << "the bare tail refilled with the growth";
  EXPECT_EQ(populated[0].second, 8 * kMiB);
  EXPECT_EQ(seg.populated, 72 * kMiB);
  backend.CompleteAll();
  ASSERT_TRUE(heap.Free(reinterpret_cast<std::uintptr_t>(b.ptr), s2, fencer).ok());
  heap.CheckInvariants();
}

}  // namespace
}  // namespace umpool::internal
