// GPU-only tests of eviction, fetching and residency: real kernels, real
// streams, real managed memory. Skipped (not failed) where no CUDA device is
// usable. Part of the gpu_test binary (fixture: tests/gpu_fixture.h).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gpu_fixture.h"
#include "tests/gpu_kernels.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

// Evicting a block to host memory and fetching it back keeps its address and
// its bytes; the driver reports where it was last prefetched to.
TEST_F(GpuTest, EvictThenFetchKeepsAddressAndBytes) {
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  for (std::size_t n : {std::size_t{1} << 20, std::size_t{8} << 20, std::size_t{96} << 20}) {
    SCOPED_TRACE(n);
    auto p = pool_->Allocate(n, a_, Role::kKv);
    ASSERT_TRUE(p.ok());
    CUDA_OK(testing::LaunchSpinThenFill(*p, n, 0x5A, 0, a_));
    ASSERT_TRUE(pool_->Evict(*p, a_).ok());
    CUDA_OK(cudaStreamSynchronize(a_));
    int last = -9;
    CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last), cudaMemRangeAttributeLastPrefetchLocation, *p, n));
    EXPECT_EQ(last, cudaCpuDeviceId) << "evicted to host memory";
    ASSERT_TRUE(pool_->Fetch(*p, a_).ok());
    CUDA_OK(cudaStreamSynchronize(a_));
    CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last), cudaMemRangeAttributeLastPrefetchLocation, *p, n));
    EXPECT_EQ(last, device) << "fetched back to the GPU";
    EXPECT_EQ(Mismatches(*p, n, 0x5A, a_), 0u) << "bytes changed across evict/fetch";
    ASSERT_TRUE(pool_->Deallocate(*p, a_).ok());
  }
}

// A paused request's KV blocks go to host memory and back in one batched call
// each (cudaMemPrefetchBatchAsync): same addresses, same bytes.
TEST_F(GpuTest, BatchedEvictAndFetchOfManyBlocks) {
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  constexpr std::size_t kBytes = std::size_t{2} << 20;
  std::vector<void*> kv;
  for (int i = 0; i < 40; ++i) {
    auto p = pool_->Allocate(kBytes, a_, Role::kKv);
    ASSERT_TRUE(p.ok());
    CUDA_OK(testing::LaunchSpinThenFill(*p, kBytes, static_cast<unsigned char>(i + 1), 0, a_));
    kv.push_back(*p);
  }
  const std::uint64_t ops = core()->backend().counters().prefetch_ops.load();
  ASSERT_TRUE(pool_->PrefetchBlocks(kv.data(), kv.size(), Location::kHost, a_).ok());
  CUDA_OK(cudaStreamSynchronize(a_));
  for (void* p : kv) {
    int last = -9;
    CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last), cudaMemRangeAttributeLastPrefetchLocation, p, kBytes));
    EXPECT_EQ(last, cudaCpuDeviceId);
  }
  ASSERT_TRUE(pool_->PrefetchBlocks(kv.data(), kv.size(), Location::kDevice, a_).ok());
  CUDA_OK(cudaStreamSynchronize(a_));
  EXPECT_EQ(core()->backend().counters().prefetch_ops.load(), ops + 2);
  for (int i = 0; i < 40; ++i) {
    int last = -9;
    CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last), cudaMemRangeAttributeLastPrefetchLocation, kv[i], kBytes));
    EXPECT_EQ(last, device);
    EXPECT_EQ(Mismatches(kv[i], kBytes, static_cast<unsigned char>(i + 1), a_), 0u) << i;
  }
  for (void* p : kv) ASSERT_TRUE(pool_->Deallocate(p, a_).ok());
}

// Residency statistics against the driver (issue 16): with a KV budget that
// forces evictions, a block fetched back, and a default-role block evicted by
// hand, the bytes GetResidency counts on the GPU and on the host agree, per
// role and within 2 MiB, with what cudaMemRangeGetAttribute reports as each
// live block's last prefetch location.
TEST_F(GpuTest, ResidencyAgreesWithTheDriversLastPrefetchLocation) {
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  constexpr std::size_t kMiB = std::size_t{1} << 20, kBlock = 4 * kMiB;
  PoolOptions o;
  o.backend = BackendKind::kManaged;
  o.capacity_bytes = 256 * kMiB;
  o.roles[static_cast<int>(Role::kKv)].hbm_budget_bytes = 24 * kMiB;
  auto made = Pool::Create(o);
  ASSERT_TRUE(made.ok()) << made.status();
  Pool& pool = **made;
  std::vector<void*> kv, other;
  for (int i = 0; i < 9; ++i) {  // three requests of 3 blocks: the first is evicted
    auto p = pool.Allocate(kBlock, a_, Role::kKv);
    ASSERT_TRUE(p.ok()) << p.status();
    CUDA_OK(cudaMemsetAsync(*p, i, kBlock, a_));
    kv.push_back(*p);
  }
  ASSERT_TRUE(pool.Fetch(kv[0], a_).ok());  // back on the GPU; the next oldest goes
  for (int i = 0; i < 3; ++i) {
    auto p = pool.Allocate(kBlock, a_, Role::kDefault);
    ASSERT_TRUE(p.ok()) << p.status();
    other.push_back(*p);
  }
  ASSERT_TRUE(pool.Evict(other[1], a_).ok());
  CUDA_OK(cudaStreamSynchronize(a_));

  auto driver = [&](const std::vector<void*>& blocks, std::size_t* gpu, std::size_t* host) {
    *gpu = *host = 0;
    for (void* p : blocks) {
      int last = -9;
      CUDA_OK(cudaMemRangeGetAttribute(&last, sizeof(last),
                                       cudaMemRangeAttributeLastPrefetchLocation, p, kBlock));
      if (last == device) *gpu += kBlock;
      if (last == cudaCpuDeviceId) *host += kBlock;
    }
  };
  auto near = [&](std::size_t a, std::size_t b) { return (a > b ? a - b : b - a) <= 2 * kMiB; };
  std::size_t gpu = 0, host = 0;
  driver(kv, &gpu, &host);
  const RoleResidency r = pool.GetResidency(Role::kKv);
  EXPECT_TRUE(near(r.resident_bytes, gpu)) << r.resident_bytes << " vs the driver's " << gpu;
  EXPECT_TRUE(near(r.host_bytes, host)) << r.host_bytes << " vs the driver's " << host;
  EXPECT_EQ(r.resident_bytes, 24 * kMiB) << "the budget is full";
  EXPECT_GT(host, 0u) << "the budget evicted blocks";
  driver(other, &gpu, &host);
  const RoleResidency d = pool.GetResidency(Role::kDefault);
  EXPECT_TRUE(near(d.host_bytes, host)) << d.host_bytes << " vs the driver's " << host;
  EXPECT_EQ(host, kBlock);
  for (void* p : kv) ASSERT_TRUE(pool.Deallocate(p, a_).ok());
  for (void* p : other) ASSERT_TRUE(pool.Deallocate(p, a_).ok());
  CUDA_OK(cudaStreamSynchronize(a_));
}

// activations.device_memory: the blocks are cudaMalloc memory that kernels use
// normally; other roles stay managed.
TEST_F(GpuTest, DeviceMemoryActivationsArePlainDeviceMemory) {
  PoolOptions o;
  o.backend = BackendKind::kManaged;
  o.capacity_bytes = std::size_t{1} << 30;
  o.roles[static_cast<int>(Role::kActivations)].device_memory = true;
  auto pool = Pool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  for (std::size_t n : {std::size_t{4096}, std::size_t{8} << 20, std::size_t{96} << 20}) {
    auto act = (*pool)->Allocate(n, a_, Role::kActivations);
    auto kv = (*pool)->Allocate(n, a_, Role::kKv);
    ASSERT_TRUE(act.ok() && kv.ok());
    cudaPointerAttributes attr{};
    CUDA_OK(cudaPointerGetAttributes(&attr, *act));
    EXPECT_EQ(attr.type, cudaMemoryTypeDevice) << n;
    CUDA_OK(cudaPointerGetAttributes(&attr, *kv));
    EXPECT_EQ(attr.type, cudaMemoryTypeManaged) << n;
    CUDA_OK(testing::LaunchSpinThenFill(*act, n, 0x3C, 0, a_));
    EXPECT_EQ(Mismatches(*act, n, 0x3C, a_), 0u);
    EXPECT_TRUE(absl::IsFailedPrecondition((*pool)->Evict(*act, a_)));
    ASSERT_TRUE((*pool)->Deallocate(*act, a_).ok());
    ASSERT_TRUE((*pool)->Deallocate(*kv, a_).ok());
  }
  CUDA_OK(cudaStreamSynchronize(a_));
  ASSERT_TRUE((*pool)->Trim().ok());
  EXPECT_EQ((*pool)->GetStats().reserved_bytes.current, 0);
}

// Weights above 2 GiB are prefetched at allocation (the seed's 2 GiB rule
// left them to page-fault); ReadMostly is applied when asked for.
TEST_F(GpuTest, WeightsAboveTwoGiBAreResidentAfterAllocation) {
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  std::size_t free_b = 0, total = 0;
  CUDA_OK(cudaMemGetInfo(&free_b, &total));
  if (free_b < (std::size_t{12} << 30)) GTEST_SKIP() << "needs 12 GiB free";
  PoolOptions o;
  o.backend = BackendKind::kManaged;
  o.capacity_bytes = std::size_t{8} << 30;
  o.roles[static_cast<int>(Role::kWeights)].read_mostly = true;
  auto pool = Pool::Create(o);
  ASSERT_TRUE(pool.ok());
  const std::size_t n = std::size_t{5} << 29;  // 2.5 GiB
  auto w = (*pool)->Allocate(n, a_, Role::kWeights);
  auto d = (*pool)->Allocate(n, a_, Role::kDefault);
  ASSERT_TRUE(w.ok() && d.ok());
  CUDA_OK(cudaStreamSynchronize(a_));
  int last_w = -9, last_d = -9, read_mostly = -9;
  CUDA_OK(cudaMemRangeGetAttribute(&last_w, sizeof(int), cudaMemRangeAttributeLastPrefetchLocation, *w, n));
  CUDA_OK(cudaMemRangeGetAttribute(&last_d, sizeof(int), cudaMemRangeAttributeLastPrefetchLocation, *d, n));
  CUDA_OK(cudaMemRangeGetAttribute(&read_mostly, sizeof(int), cudaMemRangeAttributeReadMostly, *w, n));
  EXPECT_EQ(last_w, device) << "weights role: prefetched whatever the size";
  EXPECT_EQ(last_d, cudaInvalidDeviceId) << "default role keeps the seed's 2 GiB threshold";
  EXPECT_EQ(read_mostly, 1);
  std::printf("2.5 GiB weights: last prefetch location %d; default role: %d\n", last_w, last_d);
  ASSERT_TRUE((*pool)->Deallocate(*w, a_).ok());
  ASSERT_TRUE((*pool)->Deallocate(*d, a_).ok());
}

}  // namespace
}  // namespace umpool
