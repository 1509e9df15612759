// GPU-only tests of the vmm backend (CUDA's virtual memory API) with real
// kernels: what Sleep gives back is really free on the device, comes back at
// the same addresses with its contents, a CUDA graph captured before the
// sleep replays after it, and a block freed while asleep is usable at once.
// Skipped (not failed) where no CUDA device is usable.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/vmm_backend.h"
#include "src/pool/pool_core.h"
#include "tests/gpu_kernels.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

constexpr std::size_t kMiB = std::size_t{1} << 20;

class VmmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::HaveGpu()) GTEST_SKIP() << "no usable CUDA device: GPU tests skipped";
    PoolOptions o;
    o.backend = BackendKind::kVmm;
    o.capacity_bytes = std::size_t{2} << 30;
    auto pool = Pool::Create(o);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    CUDA_OK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&bad_), sizeof(unsigned long long)));
  }
  void TearDown() override {
    if (!pool_) return;
    cudaDeviceSynchronize();
    cudaStreamDestroy(s_);
    cudaFree(bad_);
    pool_.reset();
  }
  unsigned long long Mismatches(void* p, std::size_t n, unsigned char v) {
    return testing::Mismatches(p, n, v, bad_, s_);
  }
  std::size_t DeviceFree() {
    std::size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    return free_bytes;
  }
  internal::PoolCore* core() { return internal::PoolCore::Unwrap(*pool_); }
  std::size_t populated() {
    return static_cast<internal::VmmBackend&>(core()->backend()).populated_bytes();
  }
  void* Fill(std::size_t n, Role role, unsigned char v) {
    auto p = pool_->Allocate(n, s_, role);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    EXPECT_EQ(testing::LaunchSpinThenFill(*p, n, v, 0, s_), cudaSuccess);
    return *p;
  }

  std::unique_ptr<Pool> pool_;
  cudaStream_t s_ = nullptr;
  unsigned long long* bad_ = nullptr;
};

SleepOptions OffloadWeightsDiscardKv() {
  SleepOptions o;
  o.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  o.roles[static_cast<int>(Role::kKv)] = SleepAction::kDiscard;
  return o;
}

// What Sleep drops is free for the driver (cudaMemGetInfo and the backend
// agree); Wake maps it again at the same addresses with the weights' contents.
TEST_F(VmmTest, SleepGivesThePagesToTheDriverAndWakeRestoresThem) {
  std::vector<void*> weights;
  for (int i = 0; i < 4; ++i) weights.push_back(Fill(64 * kMiB, Role::kWeights, 10 + i));
  void* kv = Fill(32 * kMiB, Role::kKv, 50);
  void* small = Fill(4096, Role::kActivations, 60);
  CUDA_OK(cudaStreamSynchronize(s_));
  const std::size_t free0 = DeviceFree(), populated0 = populated();
  ASSERT_TRUE(pool_->Sleep(OffloadWeightsDiscardKv(), s_).ok());
  const std::size_t slept = 4 * 64 * kMiB + 32 * kMiB;
  EXPECT_GE(populated0 - populated(), slept - 4 * kMiB) << "whole pages of the slept blocks";
  EXPECT_GE(DeviceFree() - free0, slept - 8 * kMiB) << "the device sees them free";
  // Another allocator can take them while the pool sleeps.
  void* other = nullptr;
  CUDA_OK(cudaMalloc(&other, slept - 8 * kMiB));
  CUDA_OK(cudaFree(other));
  const BackendCounters& bc = core()->backend().counters();
  const std::uint64_t sm_copies = bc.sm_copy_ops.load();
  ASSERT_TRUE(pool_->Wake(s_).ok());
  EXPECT_EQ(populated(), populated0);
  // The weights came back by the SMs (sm_copy.h), byte for byte.
  EXPECT_GT(bc.sm_copy_ops.load(), sm_copies);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Mismatches(weights[i], 64 * kMiB, 10 + i), 0u) << i;
  EXPECT_EQ(Mismatches(small, 4096, 60), 0u) << "kept roles are untouched";
  // The discarded KV block is mapped again: a kernel can write it.
  CUDA_OK(testing::LaunchSpinThenFill(kv, 32 * kMiB, 51, 0, s_));
  EXPECT_EQ(Mismatches(kv, 32 * kMiB, 51), 0u);
  for (void* p : weights) ASSERT_TRUE(pool_->Deallocate(p, s_).ok());
  ASSERT_TRUE(pool_->Deallocate(kv, s_).ok());
  ASSERT_TRUE(pool_->Deallocate(small, s_).ok());
  core()->CheckInvariants();
}

// A block freed while asleep gets its pages back before anyone can reuse it:
// a new allocation over it is written by a kernel while the pool still sleeps.
TEST_F(VmmTest, ABlockFreedWhileAsleepIsUsableAtOnce) {
  void* kv = Fill(32 * kMiB, Role::kKv, 1);
  void* w = Fill(16 * kMiB, Role::kWeights, 2);
  ASSERT_TRUE(pool_->Sleep(OffloadWeightsDiscardKv(), s_).ok());
  ASSERT_TRUE(pool_->Deallocate(kv, s_).ok());
  auto again = pool_->Allocate(32 * kMiB, s_, Role::kKv);
  ASSERT_TRUE(again.ok()) << again.status();
  CUDA_OK(testing::LaunchSpinThenFill(*again, 32 * kMiB, 3, 0, s_));
  EXPECT_EQ(Mismatches(*again, 32 * kMiB, 3), 0u);
  ASSERT_TRUE(pool_->Wake(s_).ok());
  EXPECT_EQ(Mismatches(*again, 32 * kMiB, 3), 0u) << "Wake leaves the new owner's data alone";
  EXPECT_EQ(Mismatches(w, 16 * kMiB, 2), 0u);
  ASSERT_TRUE(pool_->Deallocate(*again, s_).ok());
  ASSERT_TRUE(pool_->Deallocate(w, s_).ok());
  core()->CheckInvariants();
}

// A graph captured before the sleep, writing into the weights, replays after
// the wake: the addresses it captured are mapped again.
TEST_F(VmmTest, AGraphCapturedBeforeSleepReplaysAfterWake) {
  void* w = Fill(32 * kMiB, Role::kWeights, 7);
  CUDA_OK(cudaStreamSynchronize(s_));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CUDA_OK(cudaStreamBeginCapture(s_, cudaStreamCaptureModeGlobal));
  CUDA_OK(testing::LaunchSpinThenFill(w, 32 * kMiB, 8, 0, s_));
  CUDA_OK(cudaStreamEndCapture(s_, &graph));
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  EXPECT_EQ(Mismatches(w, 32 * kMiB, 7), 0u) << "captured, not run";
  ASSERT_TRUE(pool_->Sleep(OffloadWeightsDiscardKv(), s_).ok());
  ASSERT_TRUE(pool_->Wake(s_).ok());
  EXPECT_EQ(Mismatches(w, 32 * kMiB, 7), 0u);
  CUDA_OK(cudaGraphLaunch(exec, s_));
  EXPECT_EQ(Mismatches(w, 32 * kMiB, 8), 0u);
  CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaGraphDestroy(graph));
  ASSERT_TRUE(pool_->Deallocate(w, s_).ok());
}

// What vmm memory cannot do is a clear error, and the pool goes on.
TEST_F(VmmTest, MigrationIsRefusedClearly) {
  void* w = Fill(8 * kMiB, Role::kWeights, 5);
  absl::Status st = pool_->Evict(w, s_);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("cannot be evicted by migration"), std::string::npos) << st;
  SleepOptions by_eviction = OffloadWeightsDiscardKv();
  by_eviction.offload_by = OffloadBy::kEviction;
  st = pool_->Sleep(by_eviction, s_);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_FALSE(pool_->GetSleepState().asleep);
  EXPECT_EQ(Mismatches(w, 8 * kMiB, 5), 0u) << "nothing moved";
  ASSERT_TRUE(pool_->Deallocate(w, s_).ok());
  core()->CheckInvariants();
}

}  // namespace
}  // namespace umpool
