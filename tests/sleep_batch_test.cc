// Sleep's and Wake's page and copy work (src/pool/sleep_batch.h) over a host
// backend, whose Discard really drops the pages (they read as zeros): Sleep
// drops whole pages only, the staged contents come back exactly (every copy
// ran after the refill of its pages), in whatever order blocks were added,
// with one batched call for the pages each way.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/sleep_batch.h"
#include "src/pool/staging.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

struct Block {
  std::uintptr_t ptr;
  std::size_t bytes;
  std::uintptr_t span;
  bool staged;
};

class SleepBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = testing::TestSeed(20261130);
    for (std::size_t bytes : {32 * kMiB, 16 * kMiB}) {
      absl::StatusOr<void*> p = backend_.Map(bytes);
      ASSERT_TRUE(p.ok()) << p.status();
      spans_.push_back(reinterpret_cast<std::uintptr_t>(*p));
    }
    const std::uintptr_t a = spans_[0], b = spans_[1];
    // Staged blocks in address order (edges off the 2 MiB pages, two
    // adjacent ones that make one copy), then discarded ones.
    blocks_ = {{a + 1 * kMiB, 5 * kMiB, a, true},
               {a + 6 * kMiB, 8 * kMiB, a, true},
               {a + 14 * kMiB + 512, 10 * kMiB, a, true},
               {b, 6 * kMiB, b, true},
               {a + 26 * kMiB, 6 * kMiB, a, false},
               {b + 8 * kMiB, 8 * kMiB, b, false}};
  }
  void TearDown() override {
    ASSERT_TRUE(backend_.Unmap(reinterpret_cast<void*>(spans_[0]), 32 * kMiB).ok());
    ASSERT_TRUE(backend_.Unmap(reinterpret_cast<void*>(spans_[1]), 16 * kMiB).ok());
  }
  void Fill() {
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      testing::FillPattern(BackendKind::kHost, reinterpret_cast<void*>(blocks_[i].ptr),
                           blocks_[i].bytes, seed_ + i);
    }
  }
  bool Intact(std::size_t i) const {
    return testing::CheckPattern(BackendKind::kHost, reinterpret_cast<void*>(blocks_[i].ptr),
                                 blocks_[i].bytes, seed_ + i);
  }
  // The blocks as Sleep adds them: staged ones in address order (the spans'
  // order is mmap's), then discarded ones.
  std::vector<std::size_t> InOrder() const {
    std::vector<std::size_t> order(blocks_.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
      if (blocks_[x].staged != blocks_[y].staged) return blocks_[x].staged;
      return blocks_[x].ptr < blocks_[y].ptr;
    });
    return order;
  }
  // Sleeps the blocks (staged ones copied out, all pages dropped) and
  // returns the batch Wake uses.
  SleepBatch SleepAll(Staging& staging, const std::vector<std::size_t>& order,
                      std::size_t group_bytes = kSleepGroupBytes) {
    std::size_t total = 0;
    for (const Block& b : blocks_) total += b.staged ? b.bytes : 0;
    absl::StatusOr<std::byte*> buffer = staging.Reserve(total, testing::HostStream(1));
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    SleepBatch batch;
    std::size_t offset = 0;
    for (std::size_t i : order) {
      const Block& b = blocks_[i];
      if (b.staged) {
        batch.AddStaged(b.ptr, b.bytes, offset, b.span);
        offset += b.bytes;
      } else {
        batch.AddPagesOnly(b.ptr, b.bytes, b.span);
      }
    }
    std::vector<std::size_t> discarded;
    EXPECT_TRUE(
        batch.Sleep(backend_, staging, testing::HostStream(1), &discarded, group_bytes).ok());
    EXPECT_EQ(std::accumulate(discarded.begin(), discarded.end(), std::size_t{0}),
              batch.page_bytes());
    return batch;
  }

  HostBackend backend_{std::size_t{1} << 30};
  std::uint64_t seed_ = 0;
  std::vector<std::uintptr_t> spans_;
  std::vector<Block> blocks_;
};

TEST_F(SleepBatchTest, SleepDropsWholePagesAndWakeBringsStagedContentsBack) {
  std::vector<std::size_t> in_order = InOrder(), discarded_first = InOrder();
  std::rotate(discarded_first.begin(), discarded_first.begin() + 4, discarded_first.end());
  for (const std::vector<std::size_t>& order : {in_order, discarded_first}) {
    Fill();
    Staging staging(&backend_);
    SleepBatch batch = SleepAll(staging, order);
    // Whole pages are gone: block 1 holds the page [a + 6, a + 8) MiB; the
    // partial page at block 0's start is kept.
    std::vector<char> zeros(2 * kMiB, 0);
    EXPECT_EQ(std::memcmp(reinterpret_cast<void*>(spans_[0] + 6 * kMiB), zeros.data(), zeros.size()), 0);
    EXPECT_FALSE(Intact(1));
    EXPECT_NE(std::memcmp(reinterpret_cast<void*>(spans_[0] + 1 * kMiB), zeros.data(), kMiB), 0);

    const std::uint64_t ops = backend_.counters().discard_ops.load();
    const std::uint64_t refilled = backend_.counters().refill_bytes.load();
    std::vector<std::size_t> discarded;
    ASSERT_TRUE(batch.Wake(backend_, staging, testing::HostStream(1), &discarded).ok());
    for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(Intact(i)) << "staged block " << i;
    EXPECT_EQ(backend_.counters().refill_bytes.load() - refilled, batch.page_bytes());
    EXPECT_EQ(std::accumulate(discarded.begin(), discarded.end(), std::size_t{0}),
              batch.page_bytes());
    EXPECT_EQ(backend_.counters().discard_ops.load() - ops, 1u) << "one batched refill";
    ASSERT_TRUE(staging.Release().ok());
  }
}

TEST_F(SleepBatchTest, SleepWaitsForItsCopiesBeforeDroppingPages) {
  // The host backend's copies run at once; what is checked is the order of
  // calls: one event recorded and waited for between the copy and the drop.
  Fill();
  Staging staging(&backend_);
  const std::uint64_t syncs = backend_.counters().event_syncs.load();
  SleepBatch batch = SleepAll(staging, InOrder());
  EXPECT_EQ(backend_.counters().event_syncs.load() - syncs, 1u);
  std::vector<std::size_t> discarded;
  ASSERT_TRUE(batch.Wake(backend_, staging, testing::HostStream(1), &discarded).ok());
  for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(Intact(i)) << "staged block " << i;
  ASSERT_TRUE(staging.Release().ok());
}

// With groups smaller than the staged pages, Sleep and Wake pipeline their
// page work on the backend's side stream: each group dropped only after its
// copies were seen done, each refilled before its copies back (the host
// backend's drop zeroes pages, so a wrong order loses contents).
TEST_F(SleepBatchTest, PipelinedSleepAndWakeKeepEveryCopyOnTheRightSideOfItsPageWork) {
  std::vector<std::size_t> in_order = InOrder(), discarded_first = InOrder();
  std::rotate(discarded_first.begin(), discarded_first.begin() + 4, discarded_first.end());
  for (const std::vector<std::size_t>& order : {in_order, discarded_first}) {
    Fill();
    Staging staging(&backend_);
    const std::uint64_t ops = backend_.counters().discard_ops.load();
    const std::uint64_t syncs = backend_.counters().event_syncs.load();
    SleepBatch batch = SleepAll(staging, order, 4 * kMiB);
    // Staged whole pages: [a+2, a+14), [a+16, a+24), [b, b+6) MiB: 26 MiB in 7 groups,
    // each waited for and dropped, plus one drop of the discarded blocks.
    EXPECT_EQ(backend_.counters().discard_ops.load() - ops, 8u);
    EXPECT_EQ(backend_.counters().event_syncs.load() - syncs, 7u);
    EXPECT_FALSE(Intact(1));
    EXPECT_FALSE(Intact(4)) << "discarded block dropped";
    std::vector<std::size_t> discarded;
    ASSERT_TRUE(
        batch.Wake(backend_, staging, testing::HostStream(1), &discarded, 4 * kMiB).ok());
    for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(Intact(i)) << "staged block " << i;
    EXPECT_EQ(std::accumulate(discarded.begin(), discarded.end(), std::size_t{0}),
              batch.page_bytes());
    EXPECT_EQ(backend_.counters().discard_ops.load() - ops, 16u) << "7 groups and 1 each way";
    ASSERT_TRUE(staging.Release().ok());
  }
}

}  // namespace
}  // namespace umpool::internal

namespace umpool::internal {
namespace {

std::vector<std::pair<std::uintptr_t, std::size_t>> Ranges(const PageBatch& b) {
  std::vector<std::pair<std::uintptr_t, std::size_t>> out;
  for (std::size_t i = 0; i < b.ptrs.size(); ++i) {
    out.emplace_back(reinterpret_cast<std::uintptr_t>(b.ptrs[i]), b.sizes[i]);
  }
  return out;
}

// Blocks adjacent in one span make one run: the page they share is dropped
// with them. A gap, or another span, starts a new run. Outward (refills
// where pages populate only when asked), every page a run touches, a page
// shared by two runs given once.
TEST(PageBatchTest, AdjacentBlocksMakeOneRunAndOutwardCoversEveryTouchedPage) {
  const std::uintptr_t base = std::uintptr_t{1} << 40, other = base + 64 * kMiB;
  using R = std::vector<std::pair<std::uintptr_t, std::size_t>>;
  PageBatch inward;
  inward.Add(base + kMiB, 3 * kMiB, base);          // [1, 4) MiB
  inward.Add(base + 4 * kMiB, 3 * kMiB, base);      // [4, 7): the same run, [1, 7)
  inward.Add(base + 7 * kMiB + 512, kMiB, base);    // a gap: a run of no whole page
  inward.Add(base + 10 * kMiB, 6 * kMiB, base);     // [10, 16)
  inward.Add(base + 16 * kMiB, 2 * kMiB, other);    // contiguous, but another span: apart
  EXPECT_EQ(Ranges(inward), (R{{base + 2 * kMiB, 4 * kMiB}, {base + 10 * kMiB, 6 * kMiB},
                               {base + 16 * kMiB, 2 * kMiB}}));
  EXPECT_EQ(inward.bytes, 12 * kMiB);
  PageBatch outward(/*outward_pages=*/true);
  outward.Add(base + kMiB, 3 * kMiB, base);
  outward.Add(base + 4 * kMiB + 512, kMiB, base);   // shares page [4, 6) with the first
  outward.Add(base + 9 * kMiB, kMiB, base);
  EXPECT_EQ(Ranges(outward),
            (R{{base, 4 * kMiB}, {base + 4 * kMiB, 2 * kMiB}, {base + 8 * kMiB, 2 * kMiB}}));
  EXPECT_EQ(outward.bytes, 8 * kMiB);
}

}  // namespace
}  // namespace umpool::internal
