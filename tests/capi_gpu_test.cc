// The C ABI on GPUs: one pool per device, frees with another device current or
// naming another device go back to the right pool. Skips without a GPU; the
// cross-device cases need two.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gpu_kernels.h"
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

namespace {

int IsStream(void* ctx, umpool_stream_t s) { return s == static_cast<umpool_stream_t>(ctx); }

}  // namespace

// A real CUDA graph capture (global mode) through the C ABI's private pools:
// allocations during the capture grow the private pool (cudaMallocManaged
// under relaxed capture mode) without invalidating the capture; a main-pool
// allocation and free on another stream meanwhile records and queries no
// event; the graph replays correctly three times; its blocks are not handed
// to other allocations while it lives.
TEST(CapiGpuTest, GraphCaptureUsesAPrivatePool) {
  if (!umpool::testing::HaveGpu()) GTEST_SKIP() << "no usable CUDA device: GPU tests skipped";
  (void)umpool_configure("capacity:1GiB,stats_publish_bytes:0");  // refused if a pool exists
  umpool_clear_last_error();
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t s = nullptr, other = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  constexpr std::size_t kBytes = std::size_t{48} << 20;
  // A main-pool block freed on `s` before the capture.
  void* warm = umpool_malloc(kBytes, 0, s);
  ASSERT_NE(warm, nullptr);
  umpool_free(warm, kBytes, 0, s);

  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 42, 0, IsStream, s), UMPOOL_OK) << umpool_last_error();
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  void* a = umpool_malloc(kBytes, 0, s);     // grows the private pool during the capture
  void* b = umpool_malloc(4096, 0, s);
  ASSERT_TRUE(a != nullptr && b != nullptr) << umpool_last_error();
  EXPECT_NE(a, warm) << "a capture never takes the main pool's blocks";
  ASSERT_EQ(umpool::testing::LaunchSpinThenFill(a, kBytes, 0x6B, 1000, s), cudaSuccess);
  ASSERT_EQ(umpool::testing::LaunchSpinThenFill(b, 4096, 0x2D, 0, s), cudaSuccess);
  void* side = umpool_malloc(kBytes, 0, other);  // another stream, main pool, meanwhile
  ASSERT_NE(side, nullptr);
  umpool_free(side, kBytes, 0, other);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess) << "the capture was invalidated";
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 42, 0), UMPOOL_OK) << umpool_last_error();
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  // While the graph lives its blocks stay out of other allocations' reach.
  std::vector<void*> others;
  for (int i = 0; i < 4; ++i) {
    void* q = umpool_malloc(kBytes, 0, s);
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, a);
    others.push_back(q);
  }
  for (int rep = 0; rep < 3; ++rep) {
    ASSERT_EQ(cudaMemsetAsync(a, 0, kBytes, s), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    std::vector<unsigned char> host(4096);
    ASSERT_EQ(cudaMemcpy(host.data(), static_cast<char*>(a) + kBytes - 4096, 4096, cudaMemcpyDefault),
              cudaSuccess);
    EXPECT_EQ(std::count(host.begin(), host.end(), 0x6B), 4096) << "replay " << rep;
  }
  for (void* q : others) umpool_free(q, kBytes, 0, s);
  ASSERT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  umpool_free(a, kBytes, 0, s);
  umpool_free(b, 4096, 0, s);
  ASSERT_EQ(umpool_release_pool(0, 42, 0), UMPOOL_OK) << umpool_last_error();
  EXPECT_EQ(umpool_graph_pool_count(0), 0) << "released and empty: its memory went back";
  EXPECT_STREQ(umpool_last_error(), "");
  cudaStreamDestroy(s);
  cudaStreamDestroy(other);
}
