// The pool conformance suite, part 6: eviction by staging (blocks copied out
// to pinned host memory and their pages dropped, copied back on a fetch), by
// an engine and by a budget. Instantiated in pool_test.cc; the PoolStagingTest
// cases run on a host pool whose stream work they complete by hand.
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "tests/residency_helpers.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using ::umpool::testing::CheckPattern;
using ::umpool::testing::FillPattern;
using ::umpool::testing::FilledKv;
using ::umpool::testing::KvBlocks;
using ::umpool::testing::PrefetchOne;
using ::umpool::testing::WithKvStaging;

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Eviction by staging: the block is copied out and its pages dropped (the
// host backend's drop zeroes them), a fetch copies it back, whole, however it
// is asked (Evict/Fetch, PrefetchBlocks, the budget); freeing a block that is
// out gives its slot back.
TEST_P(PoolTest, EvictionByStagingCopiesBlocksOutAndFetchesBringThemBack) {
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "device memory cannot be evicted";
  auto pool = Make(WithKvStaging(0));
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  const std::vector<void*> kv = FilledKv(*pool, kind(), 3, 8 * kMiB, 70);
  ASSERT_EQ(kv.size(), 3u);
  const std::uint64_t copied = bc.copy_bytes.load(), prefetched = bc.prefetch_ops.load();
  const std::uint64_t by_sms = bc.sm_copy_ops.load();
  ASSERT_TRUE(pool->Evict(kv[0], s).ok());
  EXPECT_EQ(bc.copy_bytes.load() - copied, pool->BlockSize(kv[0]).value()) << "copied out";
  if (kind() == BackendKind::kManaged) {
    // By eight SMs (PoolOptions::staging_copies_by_sms): the copy engines
    // would hold up other streams' kernels while they copy managed memory.
    EXPECT_EQ(bc.sm_copy_ops.load(), by_sms + 1) << "copied out by the SMs";
  }
  EXPECT_EQ(bc.prefetch_ops.load(), prefetched) << "not migrated";
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, pool->BlockSize(kv[0]).value());
  if (kind() == BackendKind::kHost) {
    EXPECT_FALSE(CheckPattern(kind(), kv[0], 8 * kMiB, 70)) << "pages dropped";
  }
  ASSERT_TRUE(pool->Evict(kv[0], s).ok()) << "out already: nothing to do";
  // During a graph capture nothing is staged out, and a staged-out block
  // cannot come back (its copy cannot be captured): a clear error.
  pool->BeginCapture();
  const std::uint64_t copies_before = bc.copy_ops.load();
  ASSERT_TRUE(pool->Evict(kv[2], s).ok());
  EXPECT_EQ(bc.copy_ops.load(), copies_before);
  absl::Status in_capture = pool->Fetch(kv[0], s);
  EXPECT_TRUE(absl::IsFailedPrecondition(in_capture)) << in_capture;
  EXPECT_NE(in_capture.message().find("before capturing"), std::string::npos) << in_capture;
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, 2 * pool->BlockSize(kv[0]).value())
      << "the refused fetch left the counts alone";
  ASSERT_TRUE(pool->EndCapture().ok());
  ASSERT_TRUE(pool->Fetch(kv[2], s).ok());
  ASSERT_TRUE(pool->Fetch(kv[0], s).ok());
  ASSERT_TRUE(internal::PoolCore::Unwrap(*pool)->backend().Synchronize().ok());
  EXPECT_TRUE(CheckPattern(kind(), kv[0], 8 * kMiB, 70));
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, 0u);
  // Batched, and a block freed while out.
  const std::uint64_t prefetched_now = bc.prefetch_ops.load();
  ASSERT_TRUE(pool->PrefetchBlocks(const_cast<const void* const*>(&kv[1]), 2, Location::kHost, s).ok());
  EXPECT_EQ(bc.prefetch_ops.load(), prefetched_now);
  ASSERT_TRUE(pool->Deallocate(kv[1], s).ok());
  ASSERT_TRUE(PrefetchOne(*pool, kv[2], Location::kDevice, s).ok());
  ASSERT_TRUE(internal::PoolCore::Unwrap(*pool)->backend().Synchronize().ok());
  EXPECT_TRUE(CheckPattern(kind(), kv[2], 8 * kMiB, 72));
  EXPECT_TRUE(CheckPattern(kind(), kv[0], 8 * kMiB, 70)) << "another block untouched";
  auto again = pool->Allocate(8 * kMiB, s, Role::kKv);  // may reuse kv[1]'s dropped pages
  ASSERT_TRUE(again.ok());
  FillPattern(kind(), *again, 8 * kMiB, 79);
  EXPECT_TRUE(CheckPattern(kind(), *again, 8 * kMiB, 79));
  for (void* p : {kv[0], kv[2], *again}) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  ASSERT_TRUE(pool->Trim().ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// With staging_copies_by_sms off, evictions and fetches by staging copy by
// the copy engines (no SM copies on any backend), and the round trip keeps
// the block's contents.
TEST_P(PoolTest, EvictionByStagingByTheCopyEngines) {
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "device memory cannot be evicted";
  PoolOptions o = WithKvStaging(0);
  o.staging_copies_by_sms = false;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  const std::vector<void*> kv = FilledKv(*pool, kind(), 2, 8 * kMiB, 40);
  ASSERT_EQ(kv.size(), 2u);
  const std::uint64_t copies = bc.copy_ops.load(), by_sms = bc.sm_copy_ops.load();
  ASSERT_TRUE(pool->Evict(kv[0], s).ok());
  ASSERT_TRUE(pool->Fetch(kv[0], s).ok());
  ASSERT_TRUE(internal::PoolCore::Unwrap(*pool)->backend().Synchronize().ok());
  EXPECT_EQ(bc.copy_ops.load(), copies + 2) << "out and back";
  EXPECT_EQ(bc.sm_copy_ops.load(), by_sms);
  EXPECT_TRUE(CheckPattern(kind(), kv[0], 8 * kMiB, 40));
  EXPECT_TRUE(CheckPattern(kind(), kv[1], 8 * kMiB, 41)) << "its neighbour untouched";
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, s).ok());
}

// An engine's eviction (PrefetchBlocks to the host) by staging does not make
// the host wait for its copies: the pages are dropped by a later staging
// call once the copies are done; a block fetched before that comes back
// without copies (its pages still hold it), and one freed gives its slot back.
TEST(PoolStagingTest, PrefetchToTheHostDefersTheDropUntilTheCopiesAreDone) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(0), &backend);
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const BackendCounters& bc = backend->counters();
  const std::vector<void*> kv = FilledKv(*pool, BackendKind::kHost, 4, 4 * kMiB, 90);
  ASSERT_EQ(kv.size(), 4u);
  const void* const* ptrs = const_cast<const void* const*>(kv.data());
  backend->SetManualCompletion(true);
  const std::uint64_t syncs = bc.event_syncs.load(), discards = bc.discard_ops.load();
  ASSERT_TRUE(pool->PrefetchBlocks(ptrs, 2, Location::kHost, s).ok());
  EXPECT_EQ(bc.event_syncs.load(), syncs) << "the host did not wait";
  EXPECT_EQ(bc.discard_ops.load(), discards) << "nothing dropped before the copies ran";
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, 2 * pool->BlockSize(kv[0]).value());
  backend->Complete(s);  // the copies out ran
  backend->Submit(s);    // work the next copies out queue behind
  ASSERT_TRUE(pool->PrefetchBlocks(ptrs + 2, 1, Location::kHost, s).ok());  // a later call drops them
  EXPECT_GT(bc.discard_ops.load(), discards);
  EXPECT_FALSE(CheckPattern(BackendKind::kHost, kv[0], 4 * kMiB, 90)) << "kv[0]'s pages dropped";
  // kv[2]'s copy has not run: fetched now, it needs no copy back.
  const std::uint64_t copied = bc.copy_bytes.load();
  ASSERT_TRUE(pool->PrefetchBlocks(ptrs + 2, 1, Location::kDevice, s).ok());
  EXPECT_EQ(bc.copy_bytes.load(), copied) << "kv[2] came back without a copy";
  EXPECT_TRUE(CheckPattern(BackendKind::kHost, kv[2], 4 * kMiB, 92));
  // kv[0] and kv[1] come back by copies; kv[3] freed while its drop waits.
  backend->Submit(s);
  ASSERT_TRUE(pool->PrefetchBlocks(ptrs + 3, 1, Location::kHost, s).ok());
  ASSERT_TRUE(pool->Deallocate(kv[3], s).ok());
  ASSERT_TRUE(pool->PrefetchBlocks(ptrs, 2, Location::kDevice, s).ok());
  backend->SetManualCompletion(false);
  backend->CompleteAll();
  EXPECT_TRUE(CheckPattern(BackendKind::kHost, kv[0], 4 * kMiB, 90));
  EXPECT_TRUE(CheckPattern(BackendKind::kHost, kv[1], 4 * kMiB, 91));
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, 0u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool->Deallocate(kv[i], s).ok());
  ASSERT_TRUE(pool->Trim().ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// The budget picks its victims itself, so the caller's stream is not
// ordered after their use: a victim still being written on the stream it was
// allocated for (a decode step on the compute stream) is copied out only
// after that work, though the allocation that evicts it runs on another
// stream (an engine's side stream).
TEST(PoolStagingTest, ABudgetVictimIsCopiedOutAfterTheWorkOnItsOwnStream) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(16 * kMiB), &backend);
  ASSERT_NE(pool, nullptr);
  const Stream compute = testing::HostStream(1);
  const Stream side = testing::HostStream(2);
  const BackendCounters& bc = backend->counters();
  const std::vector<void*> kv = KvBlocks(*pool, 2, compute);
  ASSERT_EQ(kv.size(), 2u);
  backend->SetManualCompletion(true);
  backend->Submit(compute);  // a step writing kv[0] and kv[1], not run yet
  const std::uint64_t step = backend->Submit(compute);
  const std::uint64_t waits = bc.stream_waits.load();
  // Past the budget: kv[0], the least recently allocated, goes out.
  auto third = pool->Allocate(8 * kMiB, side, Role::kKv);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(pool->GetResidency(Role::kKv).budget_evictions, 1u);
  EXPECT_GT(bc.stream_waits.load(), waits) << "the side stream waits for the compute stream";
  // The host waited for the copy out (a budget's victim is dropped at once),
  // which ran only after the step on the compute stream.
  EXPECT_TRUE(backend->IsComplete(compute, step));
  backend->SetManualCompletion(false);
  backend->CompleteAll();
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, compute).ok());
  ASSERT_TRUE(pool->Deallocate(*third, side).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// BlockLocation tells an engine which of its blocks the budget took.
TEST(PoolStagingTest, BlockLocationSaysWhatTheBudgetEvicted) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(16 * kMiB), &backend);
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const std::vector<void*> kv = KvBlocks(*pool, 3, s);  // the third evicts kv[0]
  ASSERT_EQ(kv.size(), 3u);
  auto where = [&](const void* p) {
    absl::StatusOr<Location> l = pool->BlockLocation(p);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *l : Location::kDevice;
  };
  EXPECT_EQ(where(kv[0]), Location::kHost);
  EXPECT_EQ(where(static_cast<char*>(kv[0]) + 12345), Location::kHost) << "an interior address";
  EXPECT_EQ(where(kv[1]), Location::kDevice);
  EXPECT_EQ(where(kv[2]), Location::kDevice);
  const void* first = kv[0];
  ASSERT_TRUE(pool->PrefetchBlocks(&first, 1, Location::kDevice, s).ok());  // evicts kv[1]
  EXPECT_EQ(where(kv[0]), Location::kDevice);
  EXPECT_EQ(where(kv[1]), Location::kHost);
  auto small = pool->Allocate(4096, s, Role::kKv);  // a slab block: never tracked
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(where(*small), Location::kDevice);
  EXPECT_EQ(pool->BlockLocation(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  int local = 0;
  EXPECT_EQ(pool->BlockLocation(&local).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(pool->Deallocate(*small, s).ok());
  EXPECT_FALSE(pool->BlockLocation(*small).ok()) << "a freed block";
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  EXPECT_FALSE(pool->BlockLocation(kv[1]).ok()) << "a freed block";
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// A victim RecordStream named for a third stream (an engine reading it
// there): its copy out and drop come after that stream's work too.
TEST(PoolStagingTest, ABudgetVictimWaitsForItsRecordedStreams) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(16 * kMiB), &backend);
  ASSERT_NE(pool, nullptr);
  const Stream compute = testing::HostStream(1);
  const Stream reader = testing::HostStream(2);
  const Stream side = testing::HostStream(3);
  const std::vector<void*> kv = KvBlocks(*pool, 2, compute);
  ASSERT_EQ(kv.size(), 2u);
  ASSERT_TRUE(pool->RecordStream(kv[0], reader).ok());
  backend->SetManualCompletion(true);
  const std::uint64_t read = backend->Submit(reader);  // reads kv[0], not run yet
  auto third = pool->Allocate(8 * kMiB, side, Role::kKv);  // evicts kv[0]
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(pool->GetResidency(Role::kKv).budget_evictions, 1u);
  EXPECT_TRUE(backend->IsComplete(reader, read)) << "kv[0] was copied out before the reader's work ran";
  backend->SetManualCompletion(false);
  backend->CompleteAll();
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, compute).ok());
  ASSERT_TRUE(pool->Deallocate(*third, side).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// A victim the pool fetched on a third stream: its copy in is queued there,
// not done, when another stream's allocation picks it. Its copy out and its
// drop come after that stream's work (before, the eviction ordered only
// after the stream the block was allocated for: the copy out read what the
// copy in had not written yet, and on vmm memory the queued copy in then
// wrote unmapped pages — an illegal address on the GPU).
TEST(PoolStagingTest, ABudgetVictimIsCopiedOutAfterTheStreamThatFetchedIt) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(16 * kMiB), &backend);
  ASSERT_NE(pool, nullptr);
  const Stream compute = testing::HostStream(1);
  const Stream fetcher = testing::HostStream(2);
  const Stream other = testing::HostStream(3);
  const std::vector<void*> kv = KvBlocks(*pool, 3, compute);  // the third evicts kv[0]
  ASSERT_EQ(kv.size(), 3u);
  ASSERT_EQ(pool->GetResidency(Role::kKv).budget_evictions, 1u);
  // kv[0] fetched on the fetcher's stream (evicting kv[1]); its copy in and
  // what follows it there have not run.
  backend->SetManualCompletion(true);
  const void* first = kv[0];
  ASSERT_TRUE(pool->PrefetchBlocks(&first, 1, Location::kDevice, fetcher).ok());
  const std::uint64_t copy_in = backend->Submit(fetcher);
  // kv[1] fetched on a third stream evicts kv[2]; a fourth block allocated
  // there then evicts kv[0], the least recently fetched.
  const void* second = kv[1];
  ASSERT_TRUE(pool->PrefetchBlocks(&second, 1, Location::kDevice, other).ok());
  auto fourth = pool->Allocate(8 * kMiB, other, Role::kKv);
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(pool->GetResidency(Role::kKv).budget_evictions, 4u);
  // kv[0] went out (the host waited for its copy out), after the fetcher's
  // queued work.
  EXPECT_TRUE(backend->IsComplete(fetcher, copy_in)) << "kv[0] was copied out before its copy in ran";
  backend->SetManualCompletion(false);
  backend->CompleteAll();
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, compute).ok());
  ASSERT_TRUE(pool->Deallocate(*fourth, other).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// A block evicted by staging and freed during a graph capture while its copy
// out still runs: the host cannot wait then, so its pinned slot is given back
// at EndCapture, once the copy ran (a later eviction on another stream could
// otherwise write the slot under the running copy).
TEST(PoolStagingTest, AFreeDuringACaptureKeepsTheSlotUntilTheCopyOutRan) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(0), &backend);
  ASSERT_NE(pool, nullptr);
  const std::vector<void*> kv = FilledKv(*pool, BackendKind::kHost, 2, 4 * kMiB, 50);
  ASSERT_EQ(kv.size(), 2u);
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2);
  backend->SetManualCompletion(true);
  const std::uint64_t copy = backend->Submit(s1);  // the copy out's fence stands here
  ASSERT_TRUE(PrefetchOne(*pool, kv[0], Location::kHost, s1).ok());
  pool->BeginCapture();
  ASSERT_TRUE(pool->Deallocate(kv[0], s1).ok());
  EXPECT_FALSE(backend->IsComplete(s1, copy)) << "nothing waited during the capture";
  ASSERT_TRUE(pool->EndCapture().ok());
  EXPECT_TRUE(backend->IsComplete(s1, copy)) << "the slot went back after the copy out";
  ASSERT_TRUE(PrefetchOne(*pool, kv[1], Location::kHost, s2).ok());
  backend->SetManualCompletion(false);
  backend->CompleteAll();
  ASSERT_TRUE(PrefetchOne(*pool, kv[1], Location::kDevice, s2).ok());
  EXPECT_TRUE(CheckPattern(BackendKind::kHost, kv[1], 4 * kMiB, 51));
  ASSERT_TRUE(pool->Deallocate(kv[1], s2).ok());
  ASSERT_TRUE(pool->Trim().ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// The same once the deferred drop was issued and has not run: the freed
// range stays out of the heap until EndCapture waited for the drop (a block
// allocated there on another stream during the capture would have its pages
// dropped under it).
TEST(PoolStagingTest, AFreeDuringACaptureWaitsForTheIssuedDropBeforeTheRangeIsReused) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(0), &backend);
  ASSERT_NE(pool, nullptr);
  const std::vector<void*> kv = FilledKv(*pool, BackendKind::kHost, 2, 4 * kMiB, 60);
  ASSERT_EQ(kv.size(), 2u);
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2);
  backend->SetManualCompletion(true);
  backend->Submit(s1);
  ASSERT_TRUE(PrefetchOne(*pool, kv[0], Location::kHost, s1).ok());
  backend->Complete(s1);                           // kv[0]'s copy out ran
  const std::uint64_t drop = backend->Submit(s1);  // the drop queues behind this
  ASSERT_TRUE(PrefetchOne(*pool, kv[1], Location::kHost, s1).ok());  // issues kv[0]'s drop
  pool->BeginCapture();
  ASSERT_TRUE(pool->Deallocate(kv[0], s2).ok());
  absl::StatusOr<void*> fresh = pool->Allocate(4 * kMiB, s2, Role::kKv);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_NE(*fresh, kv[0]) << "the range waits for its drop";
  EXPECT_FALSE(backend->IsComplete(s1, drop));
  ASSERT_TRUE(pool->EndCapture().ok());
  EXPECT_TRUE(backend->IsComplete(s1, drop)) << "EndCapture waited for the drop, then freed";
  backend->SetManualCompletion(false);
  backend->CompleteAll();
  ASSERT_TRUE(PrefetchOne(*pool, kv[1], Location::kDevice, s1).ok());
  EXPECT_TRUE(CheckPattern(BackendKind::kHost, kv[1], 4 * kMiB, 61));
  for (void* p : {kv[1], *fresh}) ASSERT_TRUE(pool->Deallocate(p, s2).ok());
  ASSERT_TRUE(pool->Trim().ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// Pinned chunks reserved ahead serve later evictions without pinning; a host
// that cannot pin gives a clear error and keeps what it pinned; Trim frees
// the chunks no evicted block uses.
TEST(PoolStagingTest, EvictionStagingCanBeReservedAhead) {
  internal::HostBackend* backend = nullptr;
  auto pool = testing::MakeHostPool(WithKvStaging(0), &backend);
  ASSERT_NE(pool, nullptr);
  const BackendCounters& bc = backend->counters();
  ASSERT_TRUE(pool->ReserveEvictionStaging(300 * kMiB).ok());
  EXPECT_EQ(bc.staging_allocs.load(), 2u) << "two 256 MiB chunks";
  ASSERT_TRUE(pool->ReserveEvictionStaging(100 * kMiB).ok()) << "held already: a no-op";
  EXPECT_EQ(bc.staging_allocs.load(), 2u);
  const std::vector<void*> kv = FilledKv(*pool, BackendKind::kHost, 3, 64 * kMiB, 40);
  ASSERT_EQ(kv.size(), 3u);
  ASSERT_TRUE(pool->PrefetchBlocks(const_cast<const void* const*>(kv.data()), 3, Location::kHost,
                                   kDefaultStream).ok());
  EXPECT_EQ(bc.staging_allocs.load(), 2u) << "the evictions used the reserved chunks";
  backend->FailNextStaging(1);
  absl::Status st = pool->ReserveEvictionStaging(1024 * kMiB);
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  ASSERT_TRUE(pool->PrefetchBlocks(const_cast<const void* const*>(kv.data()), 3, Location::kDevice,
                                   kDefaultStream).ok());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(CheckPattern(BackendKind::kHost, kv[i], 64 * kMiB, 40 + i));
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, kDefaultStream).ok());
  ASSERT_TRUE(pool->Trim().ok());
  EXPECT_TRUE(pool->ReserveEvictionStaging(256 * kMiB).ok());
  EXPECT_EQ(bc.staging_allocs.load(), 3u) << "Trim had freed the chunks";
}

// The budget's victims leave by staging too: fetching the evicted block back
// (the engine resuming a request) evicts the least recently fetched one.
TEST_P(PoolTest, KvBudgetEvictsByStaging) {
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "device memory cannot be evicted";
  auto pool = Make(WithKvStaging(20 * kMiB));
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  const std::vector<void*> kv = FilledKv(*pool, kind(), 3, 8 * kMiB, 80);
  ASSERT_EQ(kv.size(), 3u);
  // The third allocation took the role past 20 MiB: the first went out.
  RoleResidency r = pool->GetResidency(Role::kKv);
  EXPECT_EQ(r.budget_evictions, 1u);
  EXPECT_EQ(r.host_bytes, pool->BlockSize(kv[0]).value());
  const std::uint64_t prefetched = bc.prefetch_ops.load();
  ASSERT_TRUE(PrefetchOne(*pool, kv[0], Location::kDevice, s).ok());
  ASSERT_TRUE(internal::PoolCore::Unwrap(*pool)->backend().Synchronize().ok());
  EXPECT_TRUE(CheckPattern(kind(), kv[0], 8 * kMiB, 80));
  r = pool->GetResidency(Role::kKv);
  EXPECT_EQ(r.budget_evictions, 2u) << "the least recently fetched (kv[1]) made room";
  EXPECT_EQ(r.host_bytes, pool->BlockSize(kv[1]).value());
  EXPECT_EQ(bc.prefetch_ops.load(), prefetched) << "everything moved by copies";
  ASSERT_TRUE(pool->Fetch(kv[1], s).ok());
  ASSERT_TRUE(internal::PoolCore::Unwrap(*pool)->backend().Synchronize().ok());
  EXPECT_TRUE(CheckPattern(kind(), kv[1], 8 * kMiB, 81));
  for (void* p : kv) ASSERT_TRUE(pool->Deallocate(p, s).ok());
}

// Threads evicting, fetching and freeing their own blocks by staging at
// once (the slots and the staged-out map are shared): every block comes back
// intact. Under TSan in CI.
TEST_P(PoolTest, EvictionByStagingFromManyThreads) {
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "device memory cannot be evicted";
  auto pool = Make(WithKvStaging(0));
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  Backend& backend = internal::PoolCore::Unwrap(*pool)->backend();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 12; ++round) {
        const std::uint64_t seed = 1000 + 100 * t + round;
        std::vector<void*> kv = FilledKv(*pool, kind(), 2, 4 * kMiB, seed);
        if (kv.size() != 2) {
          ++bad;
          return;
        }
        const void* const* ptrs = const_cast<const void* const*>(kv.data());
        if (!pool->PrefetchBlocks(ptrs, 2, Location::kHost, s).ok()) ++bad;
        if (round % 3 == 0) {  // one freed while out
          if (!pool->Deallocate(kv[1], s).ok()) ++bad;
          kv.pop_back();
        }
        if (!pool->PrefetchBlocks(ptrs, kv.size(), Location::kDevice, s).ok()) ++bad;
        if (!backend.Synchronize().ok()) ++bad;
        for (std::size_t i = 0; i < kv.size(); ++i) {
          if (!CheckPattern(kind(), kv[i], 4 * kMiB, seed + i)) ++bad;
          if (!pool->Deallocate(kv[i], s).ok()) ++bad;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, 0u);
  ASSERT_TRUE(pool->Trim().ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST(PoolOptionsTest, EvictionByStagingNeedsDiscard) {
  PoolOptions o;
  o.backend = BackendKind::kHost;
  o.roles[static_cast<int>(Role::kKv)].evict_by_staging = true;
  absl::Status st = o.Validate();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("needs discard_on_free"), std::string::npos) << st;
}

TEST(PoolOptionsTest, BudgetOnDeviceMemoryIsRefused) {
  PoolOptions o;
  o.backend = BackendKind::kHost;
  o.roles[static_cast<int>(Role::kActivations)].device_memory = true;
  o.roles[static_cast<int>(Role::kActivations)].hbm_budget_bytes = 64 * kMiB;
  absl::Status st = o.Validate();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("hbm_budget"), std::string::npos) << st;
}

}  // namespace
}  // namespace umpool
