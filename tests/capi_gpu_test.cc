// The C ABI on GPUs: one pool per device, frees with another device current or
// naming another device go back to the right pool. Skips without a GPU; the
// cross-device cases need two.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "umpool/umpool.h"

namespace {

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

TEST(CapiGpuTest, PoolPerDeviceAndFreesFindTheirPool) {
  if (!umpool::testing::HaveGpu()) GTEST_SKIP() << "no usable CUDA device: GPU tests skipped";
  ASSERT_EQ(umpool_configure("capacity:1GiB,stats_publish_bytes:0"), UMPOOL_OK) << umpool_last_error();
  const int n = std::min(DeviceCount(), 4);
  std::vector<void*> ptrs;
  for (int d = 0; d < n; ++d) {
    ASSERT_EQ(cudaSetDevice(d), cudaSuccess);
    void* p = umpool_malloc(1 << 20, d, nullptr);
    ASSERT_NE(p, nullptr) << umpool_last_error();
    cudaPointerAttributes attr{};
    ASSERT_EQ(cudaPointerGetAttributes(&attr, p), cudaSuccess);
    EXPECT_EQ(attr.type, cudaMemoryTypeManaged);
    int preferred = -9;
    ASSERT_EQ(cudaMemRangeGetAttribute(&preferred, sizeof(preferred),
                                       cudaMemRangeAttributePreferredLocation, p, 1 << 20),
              cudaSuccess);
    EXPECT_EQ(preferred, d) << "a device's pool advises its own GPU";
    ptrs.push_back(p);
  }
  for (int d = 0; d < n; ++d) {
    umpool_stats s{};
    ASSERT_EQ(umpool_get_stats(d, &s), UMPOOL_OK);
    EXPECT_EQ(s.allocated_bytes_current, 1 << 20) << "device " << d;
  }
  if (n < 2) GTEST_SKIP() << "one GPU: cross-device frees need two";
  // Free device 0's block with device 1 current and device 1 named.
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  umpool_clear_last_error();
  umpool_free(ptrs[0], 1 << 20, 1, nullptr);
  EXPECT_STREQ(umpool_last_error(), "");
  umpool_stats s0{}, s1{};
  ASSERT_EQ(umpool_get_stats(0, &s0), UMPOOL_OK);
  ASSERT_EQ(umpool_get_stats(1, &s1), UMPOOL_OK);
  EXPECT_EQ(s0.allocated_bytes_current, 0);
  EXPECT_EQ(s1.allocated_bytes_current, 1 << 20);
  // And device 1's block freed with device 0 current, naming device 1.
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  umpool_free(ptrs[1], 1 << 20, 1, nullptr);
  EXPECT_STREQ(umpool_last_error(), "");
  ASSERT_EQ(umpool_get_stats(1, &s1), UMPOOL_OK);
  EXPECT_EQ(s1.allocated_bytes_current, 0);
  for (int d = 2; d < n; ++d) umpool_free(ptrs[d], 1 << 20, d, nullptr);
  // The allocating device stays current-device independent: device 1's pool
  // serves device 1 even while device 0 is current.
  void* q = umpool_malloc(4096, 1, nullptr);
  ASSERT_NE(q, nullptr);
  int preferred = -9;
  ASSERT_EQ(cudaMemRangeGetAttribute(&preferred, sizeof(preferred),
                                     cudaMemRangeAttributePreferredLocation, q, 4096),
            cudaSuccess);
  EXPECT_EQ(preferred, 1);
  umpool_free(q, 4096, 1, nullptr);
}

}  // namespace
