// The pool conformance suite, part 3: Sleep and Wake on every backend.
// Instantiated in pool_test.cc. On the managed backend the offloaded weights
// really leave the GPU and come back; their contents are checked.
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using ::umpool::testing::CheckPattern;
using ::umpool::testing::FillPattern;

SleepOptions OffloadWeightsDiscardKv() {
  SleepOptions o;
  o.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  o.roles[static_cast<int>(Role::kKv)] = SleepAction::kDiscard;
  return o;
}

// Weights offloaded (by `by`), KV discarded, activations kept: the same
// addresses after Wake, contents intact, one batched call per step.
void SleepAndWake(Pool& pool, BackendKind kind, OffloadBy by) {
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(pool)->backend().counters();
  std::vector<void*> weights, kv, acts;
  for (int i = 0; i < 4; ++i) {
    auto w = pool.Allocate(std::size_t{8} << 20, s, Role::kWeights);
    auto k = pool.Allocate(std::size_t{4} << 20, s, Role::kKv);
    auto a = pool.Allocate(std::size_t{1} << 20, s, Role::kActivations);
    ASSERT_TRUE(w.ok() && k.ok() && a.ok());
    FillPattern(kind, *w, std::size_t{8} << 20, 100 + i);
    FillPattern(kind, *a, std::size_t{1} << 20, 200 + i);
    weights.push_back(*w);
    kv.push_back(*k);
    acts.push_back(*a);
  }
  auto spare = pool.Allocate(std::size_t{16} << 20, s, Role::kKv);  // freed: cached
  ASSERT_TRUE(spare.ok());
  ASSERT_TRUE(pool.Deallocate(*spare, s).ok());
  const std::vector<BlockInfo> before = pool.LiveBlocks();
  const std::uint64_t prefetches = bc.prefetch_ops.load();
  const std::uint64_t discards = bc.discard_ops.load();
  const std::uint64_t copies = bc.copy_bytes.load();
  const std::int64_t reserved = pool.GetStats().reserved_bytes.current;
  const std::int64_t allocated = pool.GetStats().allocated_bytes.current;
  const bool staged = by == OffloadBy::kStaging;
  const std::size_t weight_bytes = 4 * (std::size_t{8} << 20);

  SleepOptions options = OffloadWeightsDiscardKv();
  options.offload_by = by;
  ASSERT_TRUE(pool.Sleep(options, s).ok());
  SleepState st = pool.GetSleepState();
  EXPECT_TRUE(st.asleep);
  EXPECT_EQ(st.blocks, 8u);
  EXPECT_EQ(st.offloaded_bytes, weight_bytes);
  EXPECT_EQ(st.staged_bytes, staged ? weight_bytes : 0);
  EXPECT_EQ(bc.copy_bytes.load() - copies, staged ? weight_bytes : 0);
  if (staged) EXPECT_GE(st.staging_bytes, weight_bytes);
  // Whole pages of the 4 MiB KV blocks, and of the staged weights.
  const std::size_t kv_pages_lo = 4 * (std::size_t{2} << 20), kv_pages_hi = 4 * (std::size_t{4} << 20);
  EXPECT_GE(st.discarded_bytes, kv_pages_lo + (staged ? weight_bytes / 2 : 0));
  EXPECT_LE(st.discarded_bytes, kv_pages_hi + (staged ? weight_bytes : 0));
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + (staged ? 0 : 1)) << "one batched eviction";
  EXPECT_EQ(bc.discard_ops.load(), discards + 1) << "one batched discard";
  EXPECT_LE(pool.GetStats().reserved_bytes.current, reserved)
      << "free cached memory went back to the backend first";
  EXPECT_EQ(pool.GetStats().allocated_bytes.current, allocated) << "live blocks stay live";

  // Sleep again: nothing moves.
  ASSERT_TRUE(pool.Sleep(options, s).ok());
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + (staged ? 0 : 1));
  EXPECT_EQ(bc.discard_ops.load(), discards + 1);
  // A block freed while asleep is skipped by Wake.
  ASSERT_TRUE(pool.Deallocate(kv[3], s).ok());

  // vmm: that free populated the block's dropped pages again (one refill).
  const std::uint64_t refills = kind == BackendKind::kVmm ? 1 : 0;
  EXPECT_EQ(bc.discard_ops.load(), discards + 1 + refills);

  ASSERT_TRUE(pool.Wake(s).ok());
  EXPECT_FALSE(pool.GetSleepState().asleep);
  // One batched repopulation of the discarded (and staged) pages; one
  // batched fetch of evicted blocks; the staged bytes copied back.
  EXPECT_EQ(bc.discard_ops.load(), discards + 2 + refills);
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + (staged ? 0 : 2));
  EXPECT_EQ(bc.copy_bytes.load() - copies, staged ? 2 * weight_bytes : 0);
  ASSERT_TRUE(pool.Wake(s).ok()) << "wake of a pool that is awake is a no-op";
  EXPECT_EQ(bc.discard_ops.load(), discards + 2 + refills);

  // Same addresses; weights and activations intact; KV writable again.
  std::vector<BlockInfo> after = pool.LiveBlocks();
  EXPECT_EQ(after.size(), before.size() - 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(CheckPattern(kind, weights[i], std::size_t{8} << 20, 100 + i)) << i;
    EXPECT_TRUE(CheckPattern(kind, acts[i], std::size_t{1} << 20, 200 + i)) << i;
  }
  for (int i = 0; i < 3; ++i) {
    FillPattern(kind, kv[i], std::size_t{4} << 20, 300 + i);
    EXPECT_TRUE(CheckPattern(kind, kv[i], std::size_t{4} << 20, 300 + i));
  }
  for (void* p : weights) ASSERT_TRUE(pool.Deallocate(p, s).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.Deallocate(kv[i], s).ok());
  for (void* p : acts) ASSERT_TRUE(pool.Deallocate(p, s).ok());
  internal::PoolCore::Unwrap(pool)->CheckInvariants();
}

TEST_P(PoolTest, SleepStagesChosenRolesAndWakeBringsThemBackAtTheSameAddresses) {
  Pool* pool = pool_.get();
  SleepAndWake(*pool, kind(), OffloadBy::kStaging);
}

TEST_P(PoolTest, SleepEvictsChosenRolesAndWakeBringsThemBackAtTheSameAddresses) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  Pool* pool = pool_.get();
  SleepAndWake(*pool, kind(), OffloadBy::kEviction);
}

TEST_P(PoolTest, StagingIsKeptForTheNextSleepAndReleasedOnRequest) {
  Pool* pool = pool_.get();
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  auto w = pool->Allocate(std::size_t{6} << 20, s, Role::kWeights);
  ASSERT_TRUE(w.ok());
  FillPattern(kind(), *w, std::size_t{6} << 20, 7);
  SleepOptions options;
  options.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  const std::uint64_t allocs = bc.staging_allocs.load();
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(pool->Sleep(options, s).ok());
    EXPECT_EQ(pool->GetStats().allocated_bytes.current, std::int64_t{6} << 20);
    // Released while asleep: a no-op (the buffer holds the contents).
    ASSERT_TRUE(pool->ReleaseStaging().ok());
    EXPECT_GE(pool->GetSleepState().staging_bytes, std::size_t{6} << 20);
    ASSERT_TRUE(pool->Wake(s).ok());
    EXPECT_TRUE(CheckPattern(kind(), *w, std::size_t{6} << 20, 7)) << "round " << round;
    EXPECT_EQ(pool->GetSleepState().staging_bytes, std::size_t{6} << 20) << "kept while awake";
  }
  EXPECT_EQ(bc.staging_allocs.load(), allocs + 1) << "pinned once, reused by later sleeps";
  ASSERT_TRUE(pool->ReserveStaging(options).ok()) << "big enough: a no-op";
  EXPECT_EQ(bc.staging_allocs.load(), allocs + 1);
  ASSERT_TRUE(pool->ReleaseStaging().ok());
  EXPECT_EQ(pool->GetSleepState().staging_bytes, 0u);
  ASSERT_TRUE(pool->ReleaseStaging().ok()) << "nothing to release: a no-op";
  ASSERT_TRUE(pool->Deallocate(*w, s).ok());
}

TEST_P(PoolTest, ReserveStagingPinsBeforeTheFirstSleep) {
  Pool* pool = pool_.get();
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  SleepOptions options;
  options.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  ASSERT_TRUE(pool->ReserveStaging(options).ok()) << "nothing live: a no-op";
  EXPECT_EQ(pool->GetSleepState().staging_bytes, 0u);
  auto w = pool->Allocate(std::size_t{10} << 20, s, Role::kWeights);
  auto k = pool->Allocate(std::size_t{30} << 20, s, Role::kKv);  // not offloaded: not counted
  ASSERT_TRUE(w.ok() && k.ok());
  FillPattern(kind(), *w, std::size_t{10} << 20, 41);
  const std::uint64_t allocs = bc.staging_allocs.load();
  ASSERT_TRUE(pool->ReserveStaging(options).ok());
  EXPECT_EQ(bc.staging_allocs.load(), allocs + 1);
  EXPECT_EQ(pool->GetSleepState().staging_bytes, std::size_t{10} << 20);
  ASSERT_TRUE(pool->Sleep(options, s).ok());
  EXPECT_EQ(bc.staging_allocs.load(), allocs + 1) << "the sleep used the reserved buffer";
  EXPECT_EQ(pool->GetSleepState().staged_bytes, std::size_t{10} << 20);
  ASSERT_TRUE(pool->Wake(s).ok());
  EXPECT_TRUE(CheckPattern(kind(), *w, std::size_t{10} << 20, 41));
  ASSERT_TRUE(pool->Deallocate(*w, s).ok());
  ASSERT_TRUE(pool->Deallocate(*k, s).ok());
}

// contents_unchanged: the same blocks staged into the kept buffer again are
// not copied (a write made meanwhile, breaking the promise, is undone at
// Wake, which shows the copy was skipped); a new layout or no promise copies.
TEST_P(PoolTest, SleepWithUnchangedContentsReusesTheStagedCopy) {
  Pool* pool = pool_.get();
  const Stream s = kDefaultStream;
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  constexpr std::size_t kBytes = std::size_t{6} << 20;
  auto w = pool->Allocate(kBytes, s, Role::kWeights);
  ASSERT_TRUE(w.ok());
  FillPattern(kind(), *w, kBytes, 31);
  SleepOptions options;
  options.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  options.contents_unchanged = true;
  std::size_t reused = 0;  // SleepState::reused_bytes while asleep
  auto cycle = [&](std::uint64_t* copied) {
    const std::uint64_t before = bc.copy_bytes.load();
    ASSERT_TRUE(pool->Sleep(options, s).ok());
    reused = pool->GetSleepState().reused_bytes;
    ASSERT_TRUE(pool->Wake(s).ok());
    *copied = bc.copy_bytes.load() - before;
  };
  std::uint64_t copied = 0;
  cycle(&copied);  // first sleep: nothing staged before, copied out and back
  EXPECT_EQ(copied, 2 * kBytes);
  EXPECT_EQ(reused, 0u);
  EXPECT_TRUE(CheckPattern(kind(), *w, kBytes, 31));
  FillPattern(kind(), *w, kBytes, 32);  // breaks the promise
  cycle(&copied);
  EXPECT_EQ(copied, kBytes) << "copied back only";
  EXPECT_EQ(reused, kBytes);
  EXPECT_TRUE(CheckPattern(kind(), *w, kBytes, 31)) << "the copy of the last sleep came back";
  // Without the promise the block is copied again.
  options.contents_unchanged = false;
  FillPattern(kind(), *w, kBytes, 33);
  cycle(&copied);
  EXPECT_EQ(copied, 2 * kBytes);
  EXPECT_TRUE(CheckPattern(kind(), *w, kBytes, 33));
  // Another block staged too: a new layout, copied whatever the promise.
  options.contents_unchanged = true;
  auto w2 = pool->Allocate(kBytes, s, Role::kWeights);
  ASSERT_TRUE(w2.ok());
  FillPattern(kind(), *w2, kBytes, 34);
  cycle(&copied);
  EXPECT_EQ(copied, 4 * kBytes);
  EXPECT_TRUE(CheckPattern(kind(), *w, kBytes, 33));
  EXPECT_TRUE(CheckPattern(kind(), *w2, kBytes, 34));
  // The buffer released: nothing to reuse.
  ASSERT_TRUE(pool->ReleaseStaging().ok());
  cycle(&copied);
  EXPECT_EQ(copied, 4 * kBytes);
  EXPECT_EQ(reused, 0u);
  ASSERT_TRUE(pool->Deallocate(*w, s).ok());
  ASSERT_TRUE(pool->Deallocate(*w2, s).ok());
}

TEST_P(PoolTest, WakeRestoresStagedContentsOverWritesMadeWhileAsleep) {
  // A tensor written while its memory sleeps: the write is lost at Wake (the
  // staged contents are copied back); reads meanwhile see undefined data.
  if (kind() == BackendKind::kVmm) {
    GTEST_SKIP() << "on vmm memory a sleeping block's pages are unmapped: touching them is an "
                    "illegal-address error that ends the CUDA context (docs/residency.md)";
  }
  Pool* pool = pool_.get();
  const Stream s = kDefaultStream;
  auto w = pool->Allocate(std::size_t{4} << 20, s, Role::kWeights);
  ASSERT_TRUE(w.ok());
  FillPattern(kind(), *w, std::size_t{4} << 20, 11);
  SleepOptions options;
  options.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  ASSERT_TRUE(pool->Sleep(options, s).ok());
  FillPattern(kind(), *w, std::size_t{4} << 20, 12);
  ASSERT_TRUE(pool->Wake(s).ok());
  EXPECT_TRUE(CheckPattern(kind(), *w, std::size_t{4} << 20, 11));
  ASSERT_TRUE(pool->Deallocate(*w, s).ok());
}

TEST_P(PoolTest, WakeLeavesABlockFreedAndReallocatedWhileAsleepAlone) {
  Pool* pool = pool_.get();
  const Stream s = kDefaultStream;
  std::vector<void*> blocks;
  for (std::size_t bytes : {std::size_t{4} << 20, std::size_t{64} << 10}) {
    auto w = pool->Allocate(bytes, s, Role::kWeights);
    ASSERT_TRUE(w.ok());
    FillPattern(kind(), *w, bytes, 21);
    blocks.push_back(*w);
  }
  SleepOptions options;
  options.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  ASSERT_TRUE(pool->Sleep(options, s).ok());
  // Freed while asleep and allocated again (the same address is likely):
  // the new owner's contents survive Wake.
  std::vector<void*> again;
  int same = 0;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const std::size_t bytes = i == 0 ? std::size_t{4} << 20 : std::size_t{64} << 10;
    ASSERT_TRUE(pool->Deallocate(blocks[i], s).ok());
    auto w = pool->Allocate(bytes, s, Role::kWeights);
    ASSERT_TRUE(w.ok());
    same += *w == blocks[i];
    FillPattern(kind(), *w, bytes, 22);
    again.push_back(*w);
  }
  ASSERT_TRUE(pool->Wake(s).ok());
  EXPECT_TRUE(CheckPattern(kind(), again[0], std::size_t{4} << 20, 22));
  EXPECT_TRUE(CheckPattern(kind(), again[1], std::size_t{64} << 10, 22));
  EXPECT_GT(same, 0) << "the test meant to reuse an address";
  for (void* p : again) ASSERT_TRUE(pool->Deallocate(p, s).ok());
}

TEST_P(PoolTest, SleepEvictsWhenTheHostCannotPinStaging) {
  if (kind() != BackendKind::kHost) GTEST_SKIP() << "fault injection is the host backend's";
  Pool* pool = pool_.get();
  const Stream s = kDefaultStream;
  auto& backend = static_cast<internal::HostBackend&>(internal::PoolCore::Unwrap(*pool)->backend());
  auto w = pool->Allocate(std::size_t{4} << 20, s, Role::kWeights);
  ASSERT_TRUE(w.ok());
  FillPattern(kind(), *w, std::size_t{4} << 20, 31);
  SleepOptions options;
  options.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  const std::uint64_t prefetches = backend.counters().prefetch_ops.load();
  backend.FailNextStaging(1);
  ASSERT_TRUE(pool->Sleep(options, s).ok());
  const SleepState st = pool->GetSleepState();
  EXPECT_EQ(st.offloaded_bytes, std::size_t{4} << 20);
  EXPECT_EQ(st.staged_bytes, 0u);
  EXPECT_EQ(st.staging_bytes, 0u);
  EXPECT_EQ(backend.counters().prefetch_ops.load(), prefetches + 1) << "evicted instead";
  ASSERT_TRUE(pool->Wake(s).ok());
  EXPECT_EQ(backend.counters().prefetch_ops.load(), prefetches + 2) << "fetched back";
  EXPECT_TRUE(CheckPattern(kind(), *w, std::size_t{4} << 20, 31));
  ASSERT_TRUE(pool->Deallocate(*w, s).ok());
}

TEST_P(PoolTest, SleepRefusesGraphCapturesAndDeviceMemoryRoles) {
  PoolOptions o;
  o.capacity_bytes = std::size_t{1} << 30;
  if (kind() != BackendKind::kDevice) o.roles[static_cast<int>(Role::kActivations)].device_memory = true;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = stream_for_discard();
  pool->BeginCapture();
  EXPECT_TRUE(absl::IsFailedPrecondition(pool->Sleep(OffloadWeightsDiscardKv(), s)));
  EXPECT_TRUE(absl::IsFailedPrecondition(pool->Wake(s)));
  ASSERT_TRUE(pool->EndCapture().ok());
  if (kind() != BackendKind::kDevice) {
    SleepOptions bad;
    bad.roles[static_cast<int>(Role::kActivations)] = SleepAction::kOffload;
    absl::Status st = pool->Sleep(bad, s);
    EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
    EXPECT_NE(st.message().find("activations"), std::string::npos) << st;
    EXPECT_FALSE(pool->GetSleepState().asleep);
  }
  ASSERT_TRUE(pool->Sleep(SleepOptions{}, s).ok()) << "keeping everything is a valid sleep";
  EXPECT_TRUE(pool->GetSleepState().asleep);
  ASSERT_TRUE(pool->Wake(s).ok());
}

}  // namespace
}  // namespace umpool
