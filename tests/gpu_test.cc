// GPU-only tests: real kernels, real streams, real managed memory.
// Skipped (not failed) where no CUDA device is usable.
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/gpu_fixture.h"
#include "tests/gpu_kernels.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

// A kernel still writing into a block when it is freed on stream A is never
// overwritten by work on stream B that reuses the block: B gets another
// block, or (reuse_pending_blocks, the default) the block once the pool made
// B wait for A's kernel on the device. B's fill must survive either way.
TEST_F(GpuTest, BlockFreedWhileAKernelWritesIsNotReusedEarlyOnAnotherStream) {
  const std::uint64_t seed = testing::TestSeed(11);
  for (std::size_t size : {std::size_t{4096}, std::size_t{1} << 20, std::size_t{8} << 20,
                           std::size_t{64} << 20}) {
    SCOPED_TRACE(size);
    for (int round = 0; round < 5; ++round) {
      const Stats before = pool_->GetStats();
      int reused_behind_a_wait = 0;
      auto x = pool_->Allocate(size, a_);
      ASSERT_TRUE(x.ok()) << x.status();
      const unsigned char va = static_cast<unsigned char>(seed + round);
      const unsigned char vb = static_cast<unsigned char>(va + 101);
      CUDA_OK(testing::LaunchSpinThenFill(*x, size, va, 20'000'000, a_));
      CUDA_OK(cudaGetLastError());
      ASSERT_TRUE(pool_->Deallocate(*x, a_).ok());  // kernel still running
      std::vector<void*> ys;
      for (int i = 0; i < 8; ++i) {
        auto y = pool_->Allocate(size, b_);
        ASSERT_TRUE(y.ok()) << y.status();
        if (*y == *x) ++reused_behind_a_wait;
        CUDA_OK(testing::LaunchSpinThenFill(*y, size, vb, 0, b_));
        ys.push_back(*y);
      }
      if (reused_behind_a_wait > 0) {
        EXPECT_GT(pool_->GetStats().ordered_reuses, before.ordered_reuses)
            << "A's block went to B while A's kernel ran, not behind a stream wait";
      }
      CUDA_OK(cudaDeviceSynchronize());
      for (void* y : ys) {
        EXPECT_EQ(Mismatches(y, size, vb, b_), 0u) << "B's block was overwritten";
        ASSERT_TRUE(pool_->Deallocate(y, b_).ok());
      }
      CUDA_OK(cudaDeviceSynchronize());
    }
    // Now that A is idle, B can take A's blocks (event completed, queried).
    bool reused = false;
    std::vector<void*> got;
    auto x = pool_->Allocate(size, a_);
    ASSERT_TRUE(x.ok());
    ASSERT_TRUE(pool_->Deallocate(*x, a_).ok());
    CUDA_OK(cudaStreamSynchronize(a_));
    for (int i = 0; i < 3000 && !reused; ++i) {
      auto y = pool_->Allocate(size, c_);
      ASSERT_TRUE(y.ok());
      reused = (*y == *x);
      got.push_back(*y);
    }
    EXPECT_TRUE(reused) << "an idle stream's free block never reached another stream";
    for (void* y : got) ASSERT_TRUE(pool_->Deallocate(y, c_).ok());
    core()->CheckInvariants();
  }
  EXPECT_GT(pool_->GetStats().events_recorded, 0u);
}

// RecordStream: a consumer stream's reads finish before the block is reused.
TEST_F(GpuTest, RecordStreamProtectsAConsumerStream) {
  const std::size_t size = 1 << 20;
  auto x = pool_->Allocate(size, a_);
  ASSERT_TRUE(x.ok());
  CUDA_OK(testing::LaunchSpinThenFill(*x, size, 7, 0, a_));
  cudaEvent_t ready;
  CUDA_OK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  CUDA_OK(cudaEventRecord(ready, a_));
  CUDA_OK(cudaStreamWaitEvent(b_, ready, 0));
  // B reads slowly: spin, then count.
  CUDA_OK(testing::LaunchSpinThenFill(nullptr, 0, 0, 20'000'000, b_));
  cudaMemsetAsync(bad_, 0, sizeof(*bad_), b_);
  testing::LaunchCountMismatches(*x, size, 7, bad_, b_);
  ASSERT_TRUE(pool_->RecordStream(*x, b_).ok());
  ASSERT_TRUE(pool_->Deallocate(*x, a_).ok());
  // Reuse on A must not overwrite what B is still reading: another block, or
  // x once the pool made A wait for B's reads (reuse_pending_blocks).
  const Stats before = pool_->GetStats();
  std::vector<void*> got;
  for (int i = 0; i < 16; ++i) {
    auto y = pool_->Allocate(size, a_);
    ASSERT_TRUE(y.ok());
    if (*y == *x) EXPECT_GT(pool_->GetStats().ordered_reuses, before.ordered_reuses);
    CUDA_OK(testing::LaunchSpinThenFill(*y, size, 9, 0, a_));
    got.push_back(*y);
  }
  unsigned long long h = ~0ull;
  CUDA_OK(cudaMemcpyAsync(&h, bad_, sizeof(h), cudaMemcpyDeviceToHost, b_));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(h, 0u) << "the consumer read overwritten data";
  for (void* y : got) ASSERT_TRUE(pool_->Deallocate(y, a_).ok());
  cudaEventDestroy(ready);
}

// cudaMemRangeGetAttribute confirms the advice and the prefetch per slab.
TEST_F(GpuTest, PreferredAndLastPrefetchLocationsAreTheGpu) {
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  for (std::size_t size : {std::size_t{4096}, std::size_t{3} << 20, std::size_t{100} << 20}) {
    SCOPED_TRACE(size);
    auto p = pool_->Allocate(size, a_);
    ASSERT_TRUE(p.ok());
    CUDA_OK(cudaStreamSynchronize(a_));
    int preferred = -9, last = -9;
    CUDA_OK(cudaMemRangeGetAttribute(&preferred, sizeof(preferred),
                                     cudaMemRangeAttributePreferredLocation, *p, size));
    CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last),
                                     cudaMemRangeAttributeLastPrefetchLocation, *p, size));
    EXPECT_EQ(preferred, device);
    EXPECT_EQ(last, device);
    int accessed_by[4] = {-9, -9, -9, -9};
    CUDA_OK(cudaMemRangeGetAttribute(accessed_by, sizeof(accessed_by),
                                     cudaMemRangeAttributeAccessedBy, *p, size));
    EXPECT_EQ(accessed_by[0], cudaCpuDeviceId) << "AccessedBy should name the CPU";
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  }
  // A role that never prefetches leaves the range unprefetched.
  PoolOptions o;
  o.backend = BackendKind::kManaged;
  o.capacity_bytes = std::size_t{256} << 20;
  o.roles[static_cast<int>(Role::kKv)].prefetch = PrefetchMode::kNever;
  o.roles[static_cast<int>(Role::kKv)].accessed_by = AccessedBy::kNone;
  auto pool = Pool::Create(o);
  ASSERT_TRUE(pool.ok());
  auto kv = (*pool)->Allocate(1 << 20, a_, Role::kKv);
  ASSERT_TRUE(kv.ok());
  int last = -9;
  CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last), cudaMemRangeAttributeLastPrefetchLocation,
                                   *kv, 1 << 20));
  EXPECT_EQ(last, cudaInvalidDeviceId);
  EXPECT_EQ((*pool)->GetStats().prefetch_calls, 0u);
  ASSERT_TRUE((*pool)->Deallocate(*kv, a_).ok());
}

// One advice operation per segment (two cudaMemAdvise calls: PreferredLocation
// and AccessedBy), whatever the number of allocations: the second slab is
// populated in the first segment's reserve.
TEST_F(GpuTest, AdviceIsPerSlabAndSteadyStateMakesNoCudaAllocations) {
  const auto& counters = core()->backend().counters();
  std::vector<void*> live;
  for (int i = 0; i < 2000; ++i) {  // 2000 x 2 KiB = 4 MiB: 2 slabs of 2 MiB
    auto p = pool_->Allocate(2048, a_);
    ASSERT_TRUE(p.ok());
    live.push_back(*p);
  }
  const Stats s = pool_->GetStats();
  EXPECT_EQ(s.slabs, 2);
  EXPECT_EQ(s.advise_calls, 1u);
  EXPECT_EQ(s.grown_in_place, 1u);
  EXPECT_EQ(counters.advise_ops.load(), 1u);
  EXPECT_EQ(counters.raw_advise_calls.load(), 2u);
  EXPECT_EQ(counters.maps.load(), 1u);
  for (void* p : live) ASSERT_TRUE(pool_->Deallocate(p, a_).ok());
  // Warm loop with kernels touching the memory: no backend call at all.
  const std::uint64_t maps = counters.maps.load();
  for (int i = 0; i < 1000; ++i) {
    auto p = pool_->Allocate(4096 + (i % 7) * 1000, a_);
    ASSERT_TRUE(p.ok());
    CUDA_OK(testing::LaunchSpinThenFill(*p, 4096, 1, 0, a_));
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  }
  CUDA_OK(cudaStreamSynchronize(a_));
  const std::uint64_t warm = counters.maps.load();
  EXPECT_LE(warm - maps, 7u);  // at most the first slab of each of the 7 classes
  for (int i = 0; i < 1000; ++i) {
    auto p = pool_->Allocate(4096 + (i % 7) * 1000, a_);
    ASSERT_TRUE(p.ok());
    CUDA_OK(testing::LaunchSpinThenFill(*p, 4096, 1, 0, a_));
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  }
  CUDA_OK(cudaStreamSynchronize(a_));
  EXPECT_EQ(counters.maps.load(), warm);
  EXPECT_EQ(counters.unmaps.load(), 0u);
}

// Stress: kernels still writing when blocks are freed and reused across 4
// streams; every block is checked on its own stream (stream-ordered, no host
// sync) before it is freed. Any early reuse shows up as mismatched bytes.
// UMPOOL_STRESS_ROUNDS (default 10000).
TEST_F(GpuTest, StressCrossStreamReuseCorruptsNothing) {
  const std::uint64_t seed = testing::TestSeed(12);
  std::uint64_t rounds = 10000;
  if (const char* e = std::getenv("UMPOOL_STRESS_ROUNDS"); e != nullptr) rounds = std::strtoull(e, nullptr, 0);
  std::mt19937_64 rng(seed);
  cudaStream_t streams[4] = {a_, b_, c_, nullptr};
  CUDA_OK(cudaStreamCreateWithFlags(&streams[3], cudaStreamNonBlocking));
  CUDA_OK(cudaMemset(bad_, 0, sizeof(*bad_)));
  struct LiveBlock {
    void* p;
    std::size_t n;
    unsigned char v;
    cudaStream_t s;
  };
  std::vector<LiveBlock> live;
  std::uint64_t bytes_checked = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    if (live.size() >= 24) {
      const std::size_t k = rng() % live.size();
      LiveBlock b = live[k];
      live[k] = live.back();
      live.pop_back();
      CUDA_OK(testing::LaunchCountMismatches(b.p, b.n, b.v, bad_, b.s));
      bytes_checked += b.n;
      ASSERT_TRUE(pool_->Deallocate(b.p, b.s).ok());
    }
    const std::size_t sizes[] = {4096, 65536, 1 << 20, 3 << 20, 40 << 20};
    const std::size_t n = sizes[rng() % 5] - (rng() % 8) * 256;
    cudaStream_t s = streams[rng() % 4];
    auto p = pool_->Allocate(n, s);
    ASSERT_TRUE(p.ok()) << p.status();
    const auto v = static_cast<unsigned char>(rng());
    CUDA_OK(testing::LaunchSpinThenFill(*p, n, v, rng() % 50'000, s));
    live.push_back({*p, n, v, s});
  }
  for (const LiveBlock& b : live) {
    CUDA_OK(testing::LaunchCountMismatches(b.p, b.n, b.v, bad_, b.s));
    bytes_checked += b.n;
    ASSERT_TRUE(pool_->Deallocate(b.p, b.s).ok());
  }
  CUDA_OK(cudaDeviceSynchronize());
  unsigned long long corrupted = ~0ull;
  CUDA_OK(cudaMemcpy(&corrupted, bad_, sizeof(corrupted), cudaMemcpyDeviceToHost));
  const Stats st = pool_->GetStats();
  std::printf("stress: %llu rounds, %.1f GiB checked, %llu corrupted bytes, %llu cross-stream reuses, "
              "%llu behind stream waits, %llu events\n", static_cast<unsigned long long>(rounds),
              static_cast<double>(bytes_checked) / (1 << 30), corrupted,
              static_cast<unsigned long long>(st.cross_stream_reuses),
              static_cast<unsigned long long>(st.ordered_reuses),
              static_cast<unsigned long long>(st.events_recorded));
  EXPECT_EQ(corrupted, 0u);
  // Memory crossed streams: after a completed fence, or behind a stream wait
  // (reuse_pending_blocks: the GPU's events are rarely complete this soon).
  EXPECT_GT(st.cross_stream_reuses + st.ordered_reuses, 0u);
  cudaStreamDestroy(streams[3]);
}

// KV blocks are evicted to host memory, freed, and reused by a new request
// (fetched to the GPU and written): the new contents are right with discard on
// and off, and the discard covered the blocks. Both timings are printed.
TEST_F(GpuTest, DiscardOnFreeAvoidsMigratingDeadKv) {
  constexpr int kBlocks = 32;
  constexpr std::size_t kBytes = std::size_t{16} << 20;  // 512 MiB of KV
  double ms[2] = {0, 0};
  for (int discard = 0; discard < 2; ++discard) {
    PoolOptions o;
    o.backend = BackendKind::kManaged;
    o.capacity_bytes = std::size_t{2} << 30;
    o.roles[static_cast<int>(Role::kKv)].discard_on_free = discard != 0;
    auto pool = Pool::Create(o);
    ASSERT_TRUE(pool.ok());
    for (int rep = 0; rep < 2; ++rep) {  // the first round warms the pool up
      std::vector<void*> kv;
      for (int i = 0; i < kBlocks; ++i) {
        auto p = (*pool)->Allocate(kBytes, a_, Role::kKv);
        ASSERT_TRUE(p.ok()) << p.status();
        CUDA_OK(testing::LaunchSpinThenFill(*p, kBytes, 1, 0, a_));
        kv.push_back(*p);
      }
      for (void* p : kv) ASSERT_TRUE((*pool)->Evict(p, a_).ok());  // a paused request
      CUDA_OK(cudaStreamSynchronize(a_));
      for (void* p : kv) ASSERT_TRUE((*pool)->Deallocate(p, a_).ok());  // it finishes
      CUDA_OK(cudaStreamSynchronize(a_));
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<void*> again;
      for (int i = 0; i < kBlocks; ++i) {  // a new request takes the same blocks
        auto p = (*pool)->Allocate(kBytes, a_, Role::kKv);
        ASSERT_TRUE(p.ok());
        ASSERT_TRUE((*pool)->Fetch(*p, a_).ok());
        CUDA_OK(testing::LaunchSpinThenFill(*p, kBytes, 2, 0, a_));
        again.push_back(*p);
      }
      CUDA_OK(cudaStreamSynchronize(a_));
      const auto t1 = std::chrono::steady_clock::now();
      if (rep == 1) ms[discard] = std::chrono::duration<double, std::milli>(t1 - t0).count();
      for (void* p : again) {
        EXPECT_EQ(Mismatches(p, kBytes, 2, a_), 0u);
        ASSERT_TRUE((*pool)->Deallocate(p, a_).ok());
      }
      CUDA_OK(cudaStreamSynchronize(a_));
    }
    const Stats s = (*pool)->GetStats();
    if (discard != 0 && s.discard_calls == 0) {
      GTEST_SKIP() << "the driver refused cudaMemDiscardBatchAsync (see the warning above)";
    }
    if (discard != 0) {
      EXPECT_GE(s.discard_bytes, 2ull * kBlocks * (kBytes - (2u << 20)));
      // The evicted KV of each round (its replacement stays resident and is
      // not discarded).
      EXPECT_EQ(s.discarded_blocks, 2ull * kBlocks);
      EXPECT_EQ(s.discard_calls, 2u) << "frees are discarded in batches, not one call each";
      std::printf("discard: %llu calls for %llu blocks\n",
                  static_cast<unsigned long long>(s.discard_calls),
                  static_cast<unsigned long long>(s.discarded_blocks));
    }
  }
  // Timings are reported, not asserted (speed lives in benchmarks:
  // BM_EvictedKvReuse in bench/pool_benchmark).
  std::printf("reuse of 512 MiB of evicted KV: %.2f ms without discard, %.2f ms with discard\n",
              ms[0], ms[1]);
}

// Sleep offloads 1 GiB of weights (by staging, then by eviction) and
// discards KV; while asleep a kernel may still touch a weight (by eviction
// its pages fault back with their contents; by staging it reads undefined
// data and its writes are lost at Wake) and another allocator's cudaMalloc
// works; Wake brings everything back at the same addresses with the weights
// intact. Times are printed (speed lives in benchmarks).
TEST_F(GpuTest, SleepAndWakeKeepAddressesAndWeights) {
  constexpr int kWeights = 8;
  constexpr std::size_t kW = std::size_t{128} << 20, kK = std::size_t{64} << 20;
  std::vector<void*> w, kv;
  for (int i = 0; i < kWeights; ++i) {
    auto p = pool_->Allocate(kW, a_, Role::kWeights);
    ASSERT_TRUE(p.ok()) << p.status();
    CUDA_OK(testing::LaunchSpinThenFill(*p, kW, static_cast<unsigned char>(10 + i), 0, a_));
    w.push_back(*p);
  }
  for (int i = 0; i < 4; ++i) {
    auto p = pool_->Allocate(kK, a_, Role::kKv);
    ASSERT_TRUE(p.ok()) << p.status();
    CUDA_OK(testing::LaunchSpinThenFill(*p, kK, 7, 0, a_));
    kv.push_back(*p);
  }
  CUDA_OK(cudaStreamSynchronize(a_));
  const std::vector<BlockInfo> before = pool_->LiveBlocks();
  for (OffloadBy by : {OffloadBy::kStaging, OffloadBy::kEviction}) {
    const bool staged = by == OffloadBy::kStaging;
    SCOPED_TRACE(staged ? "staging" : "eviction");
    SleepOptions o;
    o.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
    o.roles[static_cast<int>(Role::kKv)] = SleepAction::kDiscard;
    o.offload_by = by;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(pool_->Sleep(o, a_).ok());
    CUDA_OK(cudaStreamSynchronize(a_));
    auto t1 = std::chrono::steady_clock::now();
    const SleepState st = pool_->GetSleepState();
    EXPECT_TRUE(st.asleep);
    EXPECT_EQ(st.offloaded_bytes, kWeights * kW);
    EXPECT_EQ(st.staged_bytes, staged ? kWeights * kW : 0);
    const std::size_t kv_pages = 4 * (kK - (std::size_t{4} << 20));  // whole pages only
    EXPECT_GE(st.discarded_bytes, kv_pages + (staged ? kWeights * (kW - (std::size_t{4} << 20)) : 0));
    // Touched while asleep.
    const std::size_t wrong = Mismatches(w[0], kW, 10, a_);
    if (!staged) EXPECT_EQ(wrong, 0u) << "evicted pages fault back with their contents";
    if (staged) CUDA_OK(testing::LaunchSpinThenFill(w[1], kW, 99, 0, a_));  // lost at Wake
    // Another allocator works meanwhile (well under the card's free memory).
    void* other = nullptr;
    CUDA_OK(cudaMalloc(&other, std::size_t{512} << 20));
    CUDA_OK(cudaMemset(other, 1, std::size_t{512} << 20));
    CUDA_OK(cudaFree(other));  // given back before umpool wakes
    auto t2 = std::chrono::steady_clock::now();
    ASSERT_TRUE(pool_->Wake(a_).ok());
    CUDA_OK(cudaStreamSynchronize(a_));
    auto t3 = std::chrono::steady_clock::now();
    EXPECT_FALSE(pool_->GetSleepState().asleep);
    const std::vector<BlockInfo> after = pool_->LiveBlocks();
    ASSERT_EQ(after.size(), before.size());
    for (std::size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].ptr, before[i].ptr);
    for (int i = 0; i < kWeights; ++i) {
      EXPECT_EQ(Mismatches(w[i], kW, static_cast<unsigned char>(10 + i), a_), 0u) << i;
    }
    for (void* p : kv) {  // discarded: writable again
      CUDA_OK(testing::LaunchSpinThenFill(p, kK, 9, 0, a_));
      EXPECT_EQ(Mismatches(p, kK, 9, a_), 0u);
    }
    std::printf("sleep by %s (1 GiB offloaded, 256 MiB discarded): %.1f ms; wake: %.1f ms\n",
                staged ? "staging" : "eviction",
                std::chrono::duration<double, std::milli>(t1 - t0).count(),
                std::chrono::duration<double, std::milli>(t3 - t2).count());
  }
  for (void* p : w) ASSERT_TRUE(pool_->Deallocate(p, a_).ok());
  for (void* p : kv) ASSERT_TRUE(pool_->Deallocate(p, a_).ok());
}

TEST_F(GpuTest, DefaultCapIsTheGpusFreeMemory) {
  std::size_t free_bytes = 0, total = 0;
  CUDA_OK(cudaMemGetInfo(&free_bytes, &total));
  PoolOptions o;
  o.backend = BackendKind::kManaged;
  auto pool = Pool::Create(o);
  ASSERT_TRUE(pool.ok());
  const std::size_t cap = (*pool)->GetStats().capacity_bytes;
  EXPECT_LE(cap, total);
  EXPECT_GT(cap, free_bytes - (std::size_t{1} << 30));
  // Asking for more than is free without opting in is refused.
  o.capacity_bytes = total * 2;
  auto over = Pool::Create(o);
  EXPECT_TRUE(absl::IsInvalidArgument(over.status())) << over.status();
  std::printf("device: %s, free %.1f GiB, cap %.1f GiB\n", (*pool)->Describe().c_str(),
              free_bytes / double(1 << 30), cap / double(1 << 30));
}

}  // namespace
}  // namespace umpool
