// tests/gpu_fixture.h: the GPU tests' fixture (a managed pool of 2 GiB,
// three streams) shared by gpu_test.cc and gpu_residency_test.cc. Skips
// where no CUDA device is usable.
#ifndef UMPOOL_TESTS_GPU_FIXTURE_H_
#define UMPOOL_TESTS_GPU_FIXTURE_H_

#include <cuda_runtime_api.h>

#include <memory>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/gpu_kernels.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::HaveGpu()) GTEST_SKIP() << "no usable CUDA device: GPU tests skipped";
    PoolOptions o;
    o.backend = BackendKind::kManaged;
    o.capacity_bytes = std::size_t{2} << 30;
    auto pool = Pool::Create(o);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    for (cudaStream_t* s : {&a_, &b_, &c_}) CUDA_OK(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&bad_), sizeof(unsigned long long)));
  }
  void TearDown() override {
    if (!pool_) return;
    cudaDeviceSynchronize();
    for (cudaStream_t s : {a_, b_, c_}) cudaStreamDestroy(s);
    cudaFree(bad_);
    pool_.reset();
  }
  unsigned long long Mismatches(void* p, std::size_t n, unsigned char v, cudaStream_t s) {
    return testing::Mismatches(p, n, v, bad_, s);
  }
  internal::PoolCore* core() { return internal::PoolCore::Unwrap(*pool_); }

  std::unique_ptr<Pool> pool_;
  cudaStream_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  unsigned long long* bad_ = nullptr;
};

}  // namespace umpool

#endif  // UMPOOL_TESTS_GPU_FIXTURE_H_
