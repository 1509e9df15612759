// Host-side cost of the CUDA calls a PyTorch training step makes on its
// tensors, on managed memory (advised and prefetched as umpool's segments
// are) against cudaMalloc memory: cudaMemsetAsync (zeroing gradients and
// buffers), cudaMemcpyAsync from pageable host memory (small index and mask
// tensors), and a kernel launch taking the pointer. Prints microseconds per
// call, alternating the two memories over rounds, best of each.
//
//   nvcc -O2 -o managed_calls bench/probes/managed_calls.cu && ./managed_calls
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe_check.h"

__global__ void touch(char* p, size_t n) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) p[i] += 1;
}

using Clock = std::chrono::steady_clock;

template <class F>
double us_per_call(F f, int calls, cudaStream_t s) {
  CK(cudaStreamSynchronize(s));
  auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i) f();
  auto t1 = Clock::now();  // host-side cost: before the work drains
  CK(cudaStreamSynchronize(s));
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / calls;
}

int main() {
  int dev = 0;
  CK(cudaSetDevice(dev));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const size_t big = size_t{256} << 20;
  cudaMemLocation gpu{cudaMemLocationTypeDevice, dev};
  cudaMemLocation cpu{cudaMemLocationTypeHost, 0};
  // Managed memory three ways: umpool's advice (PreferredLocation = GPU,
  // AccessedBy = CPU), PreferredLocation only, no advice; all prefetched.
  char* managed[3] = {};
  for (int k = 0; k < 3; ++k) {
    CK(cudaMallocManaged(&managed[k], big));
    if (k < 2) CK(cudaMemAdvise(managed[k], big, cudaMemAdviseSetPreferredLocation, gpu));
    if (k < 1) CK(cudaMemAdvise(managed[k], big, cudaMemAdviseSetAccessedBy, cpu));
    CK(cudaMemPrefetchAsync(managed[k], big, gpu, 0, s));
  }
  char* device = nullptr;
  CK(cudaMalloc(&device, big));
  char* targets[4] = {managed[0], managed[1], managed[2], device};
  std::vector<char> host(1 << 16, 1);
  struct Row { const char* what; size_t bytes; int kind; };
  const Row rows[] = {{"memset", 4096, 0}, {"memset", 1 << 20, 0}, {"memset", 64 << 20, 0},
                      {"memcpy H2D pageable", 1024, 1}, {"memcpy H2D pageable", 65536, 1},
                      {"kernel launch", 4096, 2}};
  std::printf("| call | bytes | managed, umpool's advice (us) | managed, preferred GPU only | "
              "managed, no advice | cudaMalloc (us) |\n|---|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int round = 0; round < 10; ++round) {
      for (int m = 0; m < 4; ++m) {
        const int which = (round % 2 == 0) ? m : 3 - m;
        char* p = targets[which];
        auto f = [&] {
          if (r.kind == 0) CK(cudaMemsetAsync(p, 0, r.bytes, s));
          if (r.kind == 1) CK(cudaMemcpyAsync(p, host.data(), r.bytes, cudaMemcpyHostToDevice, s));
          if (r.kind == 2) touch<<<(r.bytes + 255) / 256, 256, 0, s>>>(p, r.bytes);
        };
        best[which] = std::min(best[which], us_per_call(f, 2000, s));
      }
    }
    std::printf("| %s | %zu | %.2f | %.2f | %.2f | %.2f |\n", r.what, r.bytes, best[0], best[1],
                best[2], best[3]);
  }
  for (char* m : managed) CK(cudaFree(m));
  CK(cudaFree(device));
  return 0;
}
