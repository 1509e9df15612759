// The stream-ordering engine (src/pool/stream_lists.h) on its own, with host
// events the test completes: the order of the search, when other streams'
// items become available, fence errors and graph captures. Both lists use it:
// a size class's BlockStack and a large heap's best-fit set (large_space_test
// covers the latter through LargeHeap).
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/fence.h"
#include "src/pool/stream_lists.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

using testing::HostStream;

void* Block(int i) { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(0x10000 * (i + 1))); }

class StreamListsTest : public ::testing::Test {
 protected:
  StreamListsTest() : fencer_(backend_) { backend_.SetManualCompletion(true); }

  // What the pool's CentralBin does: the caller's stream first, then ready.
  int Take(Stream s, std::vector<void*>* out, bool fenced = false) {
    void* buf[16];
    auto pick = [&](BlockStack* own, BlockStack& ready) {
      return own != nullptr && !own->empty() ? own->TakeInto(buf, 16) : ready.TakeInto(buf, 16);
    };
    auto to_ready = [&](BlockStack&& b) { lists_.ready().Splice(std::move(b)); };
    status_ = absl::OkStatus();
    const int n = fenced ? lists_.TakeFenced(s, fencer_, pick, to_ready, &status_)
                         : lists_.TakeReusable(s, fencer_, pick, to_ready, &status_);
    out->assign(buf, buf + n);
    return n;
  }
  void Put(Stream s, int i) { lists_.OnStream(s, fencer_.Stamp()).Add(Block(i)); }

  HostBackend backend_;
  Fencer fencer_;
  StreamLists<BlockStack> lists_;
  absl::Status status_;
  const Stream a_ = HostStream(1), b_ = HostStream(2), c_ = HostStream(3);
};

TEST_F(StreamListsTest, OwnStreamIsReusableAtOnceOthersNeedNoFenceYet) {
  backend_.Submit(a_);  // A's kernel still uses the block
  Put(a_, 0);
  std::vector<void*> got;
  EXPECT_EQ(Take(b_, &got), 0) << "step 1 never looks at other streams";
  EXPECT_EQ(Take(a_, &got), 1) << "same stream: immediate";
  EXPECT_EQ(got[0], Block(0));
  EXPECT_EQ(backend_.counters().event_records.load(), 0u) << "no fence was needed";
}

TEST_F(StreamListsTest, OtherStreamsAreFencedLastAndOnlyTakenWhenDone) {
  const std::uint64_t work = backend_.Submit(a_);
  Put(a_, 0);
  std::vector<void*> got;
  EXPECT_EQ(Take(b_, &got, /*fenced=*/true), 0) << "A's work is not done";
  EXPECT_TRUE(status_.ok()) << status_;
  EXPECT_EQ(backend_.counters().event_records.load(), 1u);
  EXPECT_TRUE(lists_.has_pending());
  EXPECT_EQ(Take(a_, &got), 0) << "a fenced group is no longer A's to reuse at once";
  backend_.Complete(a_);
  ASSERT_TRUE(backend_.IsComplete(a_, work));
  EXPECT_EQ(Take(b_, &got), 1) << "step 1 polls pending fences";
  EXPECT_EQ(got[0], Block(0));
  EXPECT_FALSE(lists_.has_pending());
}

TEST_F(StreamListsTest, ReadyComesBeforeFencingAndOneFenceServesAGroup) {
  lists_.ready().Add(Block(9));
  for (int i = 0; i < 4; ++i) Put(a_, i);
  std::vector<void*> got;
  EXPECT_EQ(Take(b_, &got), 1);
  EXPECT_EQ(got[0], Block(9)) << "ready items first, no event";
  EXPECT_EQ(backend_.counters().event_records.load(), 0u);
  EXPECT_EQ(Take(b_, &got, true), 4) << "A is idle: its whole group at once";
  EXPECT_EQ(backend_.counters().event_records.load(), 1u) << "one event for four blocks";
}

TEST_F(StreamListsTest, AFenceErrorLeavesItsGroupAndTheOthersProceed) {
  Put(a_, 0);
  Put(c_, 1);
  backend_.DestroyStream(a_);  // recording on A now fails
  std::vector<void*> got;
  EXPECT_EQ(Take(b_, &got, true), 1) << "C's group still comes through";
  EXPECT_EQ(got[0], Block(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(status_)) << status_;
  EXPECT_EQ(lists_.size(), 1u) << "A's block stayed where it was";
  EXPECT_NE(lists_.Own(a_), nullptr);
  EXPECT_EQ(lists_.Own(a_)->size(), 1u);
}

TEST_F(StreamListsTest, DuringACaptureNothingIsFencedOrPolled) {
  Put(a_, 0);
  fencer_.CaptureBegan();
  std::vector<void*> got;
  EXPECT_EQ(Take(b_, &got, true), 0);
  EXPECT_TRUE(absl::IsUnavailable(status_)) << status_;
  EXPECT_EQ(backend_.counters().event_records.load(), 0u);
  EXPECT_EQ(Take(a_, &got), 1) << "own-stream reuse needs no event";
  fencer_.CaptureEnded();
}

TEST_F(StreamListsTest, WaitAllMakesEverythingReadyAndReadyStreamNeedsNoFence) {
  backend_.Submit(a_);
  backend_.Submit(b_);
  Put(a_, 0);
  Put(b_, 1);
  auto to_ready = [&](BlockStack&& b) { lists_.ready().Splice(std::move(b)); };
  lists_.ReadyStream(b_, to_ready);  // the caller waited for B (ReleaseStream)
  EXPECT_EQ(lists_.ready().size(), 1u);
  EXPECT_EQ(lists_.Own(b_), nullptr) << "B's group is forgotten";
  ASSERT_TRUE(lists_.WaitAll(fencer_, to_ready).ok());  // host-blocking: completes A's work
  EXPECT_EQ(lists_.ready().size(), 2u);
  EXPECT_EQ(lists_.size(), 2u);
  lists_.EraseIf([](void* b) { return b == Block(0); });
  EXPECT_EQ(lists_.size(), 1u);
}

TEST_F(StreamListsTest, GroupsRememberTheirNewestStamp) {
  Put(a_, 0);
  const std::uint64_t first = lists_.StampOf(a_);
  Put(a_, 1);
  EXPECT_GT(lists_.StampOf(a_), first);
  int groups = 0;
  lists_.ForEachGroup([&](const BlockStack& items, auto where, Stream s, std::uint64_t seq,
                          const Fences*) {
    using W = std::decay_t<decltype(where)>;
    if (where == W::kStream) {
      ++groups;
      EXPECT_EQ(s, a_);
      EXPECT_EQ(seq, lists_.StampOf(a_));
      EXPECT_EQ(items.size(), 2u);
    }
  });
  EXPECT_EQ(groups, 1);
}

}  // namespace
}  // namespace umpool::internal
