// Stream rules on the host backend, whose events complete only when the test
// says so: a block freed on stream A reaches stream B only once B's work is
// ordered after A's work up to the free (A's work has completed, or, with
// reuse_pending_blocks, the pool made B wait for it on the device);
// same-stream reuse is immediate; RecordStream streams are waited for. Each
// test runs with and without thread caches and reuse_pending_blocks.
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/pool_core.h"
#include "tests/test_util.h"

namespace umpool {
namespace {

using testing::HostStream;

class StreamRulesTest : public ::testing::TestWithParam<std::tuple<bool, bool>> {
 protected:
  void SetUp() override {
    PoolOptions o;
    o.thread_cache = std::get<0>(GetParam());
    o.reuse_pending_blocks = reuse_pending_;
    // A fixed size: how large a segment's reserve is depends on it.
    pool_ = testing::MakeHostPool(o, &backend_, std::size_t{16} << 30);
    backend_->SetManualCompletion(true);
  }
  void Check() { internal::PoolCore::Unwrap(*pool_)->CheckInvariants(); }
  // Invariant 2 for memory `got` handed to stream `later` while work item
  // `ticket` of `earlier` may still use `used`: another block, or `later`'s
  // work runs after that item. Without reuse_pending_blocks, another block.
  bool SafeReuse(void* got, void* used, Stream later, Stream earlier, std::uint64_t ticket) {
    if (got != used) return true;
    return reuse_pending_ && backend_->IsOrderedAfter(later, earlier, ticket);
  }
  const bool reuse_pending_ = std::get<1>(GetParam());
  internal::HostBackend* backend_ = nullptr;
  std::unique_ptr<Pool> pool_;
  const Stream a_ = HostStream(1);
  const Stream b_ = HostStream(2);
  const Stream c_ = HostStream(3);
};

TEST_P(StreamRulesTest, SameStreamReuseIsImmediate) {
  auto p = pool_->Allocate(4096, a_);
  ASSERT_TRUE(p.ok());
  backend_->Submit(a_);  // a kernel on A still using the block
  ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  auto q = pool_->Allocate(4096, a_);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, *p);  // stream order makes this safe
  ASSERT_TRUE(pool_->Deallocate(*q, a_).ok());
}

TEST_P(StreamRulesTest, OtherStreamWaitsForTheFreeEvent) {
  for (std::size_t size : {std::size_t{4096}, std::size_t{4} << 20, std::size_t{64} << 20}) {
    SCOPED_TRACE(size);
    auto p = pool_->Allocate(size, a_);
    ASSERT_TRUE(p.ok());
    const std::uint64_t work = backend_->Submit(a_);  // still writing into *p
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
    // While A's work is incomplete, B never gets the block.
    std::vector<void*> got;
    for (int i = 0; i < 8; ++i) {
      auto q = pool_->Allocate(size, b_);
      ASSERT_TRUE(q.ok());
      EXPECT_TRUE(SafeReuse(*q, *p, b_, a_, work)) << "reused before stream A's work completed";
      got.push_back(*q);
    }
    EXPECT_FALSE(backend_->IsComplete(a_, work));
    for (void* q : got) ASSERT_TRUE(pool_->Deallocate(q, b_).ok());
    // Once A completes, B may reuse it (the free event is queried, not waited).
    backend_->Complete(a_);
    backend_->Complete(b_);
    bool reused = false;
    got.clear();
    for (int i = 0; i < 3000 && !reused; ++i) {
      auto q = pool_->Allocate(size, c_);
      ASSERT_TRUE(q.ok());
      reused = (*q == *p);
      got.push_back(*q);
    }
    EXPECT_TRUE(reused) << "block freed on A never reached stream C after A completed";
    for (void* q : got) ASSERT_TRUE(pool_->Deallocate(q, c_).ok());
    backend_->CompleteAll();
    Check();
  }
  EXPECT_GT(pool_->GetStats().cross_stream_reuses, 0u);
  EXPECT_GT(pool_->GetStats().events_recorded, 0u);
}

// With reuse_pending_blocks, a request that only a pending block serves gets
// it at once behind a stream wait (no growth, no host wait); without, the
// pool grows and the block waits for its event. Large blocks (default role)
// and a big size class's block (activations: slabs up to 32 MiB).
TEST_P(StreamRulesTest, APendingBlockIsReusedBehindAStreamWaitRatherThanGrowing) {
  const std::pair<std::size_t, Role> cases[] = {{std::size_t{64} << 20, Role::kDefault},
                                                {std::size_t{24} << 20, Role::kDefault},
                                                {std::size_t{24} << 20, Role::kActivations},
                                                {std::size_t{3} << 20, Role::kActivations}};
  for (auto [size, role] : cases) {
    SCOPED_TRACE(::testing::Message() << size << " role " << static_cast<int>(role));
    // A live neighbour keeps a slab of two 3 MiB blocks from going back to
    // slab space empty: the pending block stays in its class's bin.
    auto neighbour = pool_->Allocate(size, a_, role);
    ASSERT_TRUE(neighbour.ok());
    auto p = pool_->Allocate(size, a_, role);
    ASSERT_TRUE(p.ok());
    const std::uint64_t work = backend_->Submit(a_);
    ASSERT_TRUE(pool_->RecordStream(*p, c_).ok());
    const std::uint64_t reader = backend_->Submit(c_);
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
    const Stats before = pool_->GetStats();
    auto q = pool_->Allocate(size, b_, role);
    ASSERT_TRUE(q.ok());
    const Stats after = pool_->GetStats();
    EXPECT_FALSE(backend_->IsComplete(a_, work));
    EXPECT_FALSE(backend_->IsComplete(c_, reader));
    if (reuse_pending_) {
      EXPECT_EQ(*q, *p) << "the pending block was not reused";
      EXPECT_TRUE(backend_->IsOrderedAfter(b_, a_, work)) << "B does not wait for A's work";
      EXPECT_TRUE(backend_->IsOrderedAfter(b_, c_, reader)) << "B does not wait for C's reads";
      EXPECT_EQ(after.ordered_reuses, before.ordered_reuses + 1);
      EXPECT_EQ(after.reserved_bytes.current, before.reserved_bytes.current) << "grew";
    } else {
      EXPECT_NE(*q, *p);
      EXPECT_FALSE(backend_->IsOrderedAfter(b_, a_, work)) << "a wait nobody asked for";
      EXPECT_EQ(after.ordered_reuses, 0u);
      EXPECT_GT(after.reserved_bytes.current, before.reserved_bytes.current);
    }
    ASSERT_TRUE(pool_->Deallocate(*q, b_).ok());
    ASSERT_TRUE(pool_->Deallocate(*neighbour, a_).ok());
    backend_->CompleteAll();
    ASSERT_TRUE(pool_->Trim().ok());
    Check();
  }
}

TEST_P(StreamRulesTest, RecordStreamDelaysReuseUntilThatStreamCompletes) {
  for (std::size_t size : {std::size_t{4096}, std::size_t{64} << 20}) {
    SCOPED_TRACE(size);
    auto p = pool_->Allocate(size, a_);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(pool_->RecordStream(*p, b_).ok());
    ASSERT_TRUE(pool_->RecordStream(*p, b_).ok());  // idempotent
    const std::uint64_t consumer = backend_->Submit(b_);  // B reads the block
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
    // Not even stream A may reuse it while B's work is pending.
    std::vector<void*> got;
    for (int i = 0; i < 8; ++i) {
      auto q = pool_->Allocate(size, a_);
      ASSERT_TRUE(q.ok());
      EXPECT_TRUE(SafeReuse(*q, *p, a_, b_, consumer))
          << "recorded block reused before stream B completed";
      got.push_back(*q);
    }
    EXPECT_FALSE(backend_->IsComplete(b_, consumer));
    for (void* q : got) ASSERT_TRUE(pool_->Deallocate(q, a_).ok());
    backend_->CompleteAll();
    bool reused = false;
    got.clear();
    for (int i = 0; i < 3000 && !reused; ++i) {
      auto q = pool_->Allocate(size, a_);
      ASSERT_TRUE(q.ok());
      reused = (*q == *p);
      got.push_back(*q);
    }
    EXPECT_TRUE(reused);
    for (void* q : got) ASSERT_TRUE(pool_->Deallocate(q, a_).ok());
    Check();
  }
}

// A record_stream of the stream the block is freed on adds no wait: that
// stream's work is ordered before any reuse on it (PyTorch ignores a record
// of the allocation stream). Before, such a block waited for an event, and
// on the GPU its reuse depended on when the event completed (steady replays
// rewritten onto one stream diverged run to run).
TEST_P(StreamRulesTest, RecordStreamOfTheFreeingStreamAddsNoWait) {
  for (std::size_t size : {std::size_t{4096}, std::size_t{64} << 20}) {
    SCOPED_TRACE(size);
    auto p = pool_->Allocate(size, a_);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(pool_->RecordStream(*p, a_).ok());
    const std::uint64_t work = backend_->Submit(a_);  // A still uses the block
    const std::uint64_t events = pool_->GetStats().events_recorded;
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
    EXPECT_EQ(pool_->GetStats().events_recorded, events);
    auto q = pool_->Allocate(size, a_);
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(*q, *p) << "the same stream waited for its own work";
    ASSERT_TRUE(pool_->Deallocate(*q, a_).ok());
    // Another stream still waits for A's work.
    auto r = pool_->Allocate(size, b_);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(SafeReuse(*r, *p, b_, a_, work)) << "stream B got memory A's queued work may use";
    EXPECT_FALSE(backend_->IsComplete(a_, work));
    ASSERT_TRUE(pool_->Deallocate(*r, b_).ok());
    backend_->CompleteAll();
    Check();
  }
}

TEST_P(StreamRulesTest, TrimWaitsForPendingWorkBeforeReturningMemory) {
  auto p = pool_->Allocate(64u << 20, a_);
  ASSERT_TRUE(p.ok());
  const std::uint64_t work = backend_->Submit(a_);
  ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  ASSERT_TRUE(pool_->Trim().ok());
  // Trim may only unmap after the work that used the block finished: the host
  // backend models the host wait as completion.
  EXPECT_TRUE(backend_->IsComplete(a_, work));
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, 0);
  EXPECT_EQ(backend_->mapped_bytes(), 0u);
}

TEST_P(StreamRulesTest, InjectedBackendFailureIsRetriedThenReported) {
  // The first growth maps a segment with a reserve, then (refused) without.
  backend_->FailNextMaps(2);
  auto p = pool_->Allocate(4096, a_);  // both maps fail, release + retry succeeds
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(pool_->GetStats().alloc_retries, 1u);
  // A refused map is served from a reserve of the heap when one is large
  // enough: cut off the slab space's segment.
  backend_->FailNextMaps(2);
  auto small = pool_->Allocate(8u << 20, a_);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(pool_->GetStats().reserves_cut, 1u);
  // No reserve holds 4 GiB: the error names the request.
  backend_->FailNextMaps(4);
  const std::size_t big = std::size_t{4} << 30;
  auto q = pool_->Allocate(big, a_);
  EXPECT_TRUE(absl::IsResourceExhausted(q.status())) << q.status();
  EXPECT_NE(q.status().message().find("4294967296 bytes"), absl::string_view::npos) << q.status();
  EXPECT_EQ(pool_->GetStats().ooms, 1u);
  auto r = pool_->Allocate(big, a_);  // the pool is still usable
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  ASSERT_TRUE(pool_->Deallocate(*small, a_).ok());
  ASSERT_TRUE(pool_->Deallocate(*r, a_).ok());
  Check();
}

// During a graph capture no event is recorded or queried: a block freed on A
// is reused on A only, even after A's work completed; other streams get it
// after EndCapture. A RecordStream'd free waits for EndCapture; Trim refuses.
TEST_P(StreamRulesTest, NoEventsDuringGraphCapture) {
  for (std::size_t size : {std::size_t{4096}, std::size_t{64} << 20}) {
    SCOPED_TRACE(size);
    auto p = pool_->Allocate(size, a_);
    auto r = pool_->Allocate(size, a_);
    ASSERT_TRUE(p.ok() && r.ok());
    ASSERT_TRUE(pool_->RecordStream(*r, b_).ok());
    const std::uint64_t events = pool_->GetStats().events_recorded;
    const std::uint64_t queries = backend_->counters().event_queries.load();
    pool_->BeginCapture();
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
    ASSERT_TRUE(pool_->Deallocate(*r, a_).ok());  // deferred: B may still use it
    EXPECT_FALSE(pool_->Deallocate(*r, a_).ok()) << "double free still detected";
    backend_->Complete(a_);
    backend_->Complete(b_);
    std::vector<void*> got;
    for (int i = 0; i < 4; ++i) {
      auto q = pool_->Allocate(size, b_);
      ASSERT_TRUE(q.ok()) << q.status();
      EXPECT_NE(*q, *p) << "moved to another stream during the capture";
      EXPECT_NE(*q, *r);
      got.push_back(*q);
    }
    auto same = pool_->Allocate(size, a_);
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(*same, *p) << "same-stream reuse still works";
    EXPECT_TRUE(absl::IsFailedPrecondition(pool_->Trim()));
    EXPECT_EQ(pool_->GetStats().events_recorded, events);
    EXPECT_EQ(backend_->counters().event_queries.load(), queries);
    ASSERT_TRUE(pool_->EndCapture().ok());
    // After the capture: the deferred block reaches B once its events complete.
    backend_->Complete(a_);
    backend_->Complete(b_);
    bool r_seen = false;
    for (int i = 0; i < 300 && !r_seen; ++i) {  // past any thread-cached batch
      auto q = pool_->Allocate(size, b_);
      ASSERT_TRUE(q.ok());
      r_seen = *q == *r;
      got.push_back(*q);
    }
    EXPECT_TRUE(r_seen) << "the deferred free completed at EndCapture";
    for (void* q : got) ASSERT_TRUE(pool_->Deallocate(q, b_).ok());
    ASSERT_TRUE(pool_->Deallocate(*same, a_).ok());
    backend_->Complete(a_);
    backend_->Complete(b_);
    ASSERT_TRUE(pool_->Trim().ok());
    Check();
  }
}

// A stream destroyed after ReleaseStream is never used again: the blocks
// freed on it (in a thread cache, a central bin, a large space, another
// thread's cache) go to other streams with no event recorded on it. The host
// backend fails (and counts) an event recorded on a destroyed stream, where
// CUDA would crash.
TEST_P(StreamRulesTest, ReleasedStreamsAreNeverFencedAgain) {
  const std::size_t sizes[] = {4096, std::size_t{6} << 20, std::size_t{64} << 20};
  std::vector<void*> freed;
  for (std::size_t n : sizes) {
    auto p = pool_->Allocate(n, a_);
    ASSERT_TRUE(p.ok());
    freed.push_back(*p);
  }
  // Another thread frees a block on A: it sits in that thread's cache.
  auto other = pool_->Allocate(8192, a_);
  ASSERT_TRUE(other.ok());
  std::thread([&] { ASSERT_TRUE(pool_->Deallocate(*other, a_).ok()); }).join();
  const std::uint64_t work = backend_->Submit(a_);  // A's kernels still run
  for (void* p : freed) ASSERT_TRUE(pool_->Deallocate(p, a_).ok());
  ASSERT_TRUE(pool_->ReleaseStream(a_).ok());
  EXPECT_TRUE(backend_->IsComplete(a_, work)) << "ReleaseStream waits for the stream's work";
  backend_->DestroyStream(a_);
  // Everything A held is anybody's now: B gets it without the pool growing
  // (its large blocks merged, so not necessarily at the same addresses).
  const Stats before = pool_->GetStats();
  std::vector<void*> got;
  for (std::size_t n : sizes) {
    auto q = pool_->Allocate(n, b_);
    ASSERT_TRUE(q.ok()) << q.status();
    got.push_back(*q);
  }
  const Stats after = pool_->GetStats();
  EXPECT_EQ(after.reserved_bytes.current, before.reserved_bytes.current);
  EXPECT_EQ(after.backend_allocations + after.grown_in_place,
            before.backend_allocations + before.grown_in_place);
  for (void* q : got) ASSERT_TRUE(pool_->Deallocate(q, b_).ok());
  // The other thread's cache flushes at its next call, and Trim fences every list.
  std::thread([&] { ASSERT_TRUE(pool_->Allocate(1 << 20, c_).ok()); }).join();
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(backend_->destroyed_stream_uses(), 0u);
  EXPECT_EQ(pool_->GetStats().streams_released, 1u);
  Check();
}

// The same sequence without ReleaseStream records on the destroyed stream:
// the test above would see it.
TEST_P(StreamRulesTest, WithoutReleaseStreamADestroyedStreamIsFenced) {
  auto p = pool_->Allocate(std::size_t{64} << 20, a_);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  backend_->DestroyStream(a_);
  auto q = pool_->Allocate(std::size_t{64} << 20, b_);
  ASSERT_TRUE(q.ok());
  EXPECT_NE(*q, *p);
  EXPECT_GT(backend_->destroyed_stream_uses(), 0u);
  EXPECT_GT(pool_->GetStats().fence_errors, 0u) << "counted, and the pool grew instead";
  backend_->CreateStream(a_);
  ASSERT_TRUE(pool_->Deallocate(*q, b_).ok());
}

// CUDA reuses handle values: a released handle passed to the pool again is a
// live stream, with the usual rules; a block allocated on the old stream and
// freed "on its own stream" after the release is free for anyone.
TEST_P(StreamRulesTest, AReleasedHandleUsedAgainIsALiveStream) {
  auto old_block = pool_->Allocate(4096, a_);
  ASSERT_TRUE(old_block.ok());
  ASSERT_TRUE(pool_->ReleaseStream(a_).ok());
  ASSERT_TRUE(pool_->Deallocate(*old_block).ok());  // its allocation stream, released
  backend_->DestroyStream(a_);
  backend_->CreateStream(a_);  // a new stream with the same handle
  auto p = pool_->Allocate(std::size_t{64} << 20, a_);
  ASSERT_TRUE(p.ok());
  const std::uint64_t work = backend_->Submit(a_);
  ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  for (int i = 0; i < 4; ++i) {
    auto q = pool_->Allocate(std::size_t{64} << 20, b_);
    ASSERT_TRUE(q.ok());
    EXPECT_TRUE(SafeReuse(*q, *p, b_, a_, work)) << "the new stream's pending work is waited for";
  }
  auto mine = pool_->Allocate(4096, b_);
  ASSERT_TRUE(mine.ok());
  if (*mine != *old_block) {  // freed once: a second free is an error (its slab may be gone)
    absl::Status again = pool_->Deallocate(*old_block);
    EXPECT_TRUE(absl::IsFailedPrecondition(again) || absl::IsInvalidArgument(again)) << again;
  }
  ASSERT_TRUE(pool_->Deallocate(*mine, b_).ok());
  backend_->CompleteAll();
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(backend_->destroyed_stream_uses(), 0u);
}

INSTANTIATE_TEST_SUITE_P(ThreadCacheAndReusePending, StreamRulesTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "CacheOn" : "CacheOff") +
                                  (std::get<1>(info.param) ? "ReusePending" : "WaitPending");
                         });

}  // namespace
}  // namespace umpool
