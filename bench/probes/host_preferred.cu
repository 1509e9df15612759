// bench/probes/host_preferred.cu: data the GPU reads once per step (issue 16's
// host-preferred roles). S bytes read by one kernel per step, placed four ways
// through umpool's C ABI, same card, same kernel, alternating rounds:
//   resident   a GPU-preferred block (role weights) on the GPU (the bound);
//   host-pref  a block of a role advised PreferredLocation=CPU, AccessedBy=GPU
//              (UMPOOL_CONF kv.preferred:cpu,kv.accessed_by:gpu): the kernel
//              reads host memory over the bus, nothing migrates, no GPU
//              memory is used for it;
//   prefetch   the GPU block evicted after each step and prefetched back
//              before the next (umpool_prefetch_blocks both ways, timed);
//   faulting   the GPU block evicted after each step and faulted back by the
//              kernel (no prefetch; the eviction timed too).
// Prints ms per step and GB/s of the kernel's reads; the sums are checked.
// Not part of the build:
//   nvcc -O2 -std=c++17 -arch=sm_90 -Iinclude bench/probes/host_preferred.cu -L.gpu-stage/lib \
//        -lumpool -o host_preferred && LD_LIBRARY_PATH=.gpu-stage/lib ./host_preferred 4 5
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "umpool/umpool.h"

static double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e)); std::exit(1); } } while (0)
#define UK(x) do { if ((x) != 0) { std::printf("%s: %s\n", #x, umpool_last_error()); std::exit(1); } } while (0)

__global__ void Fill(unsigned* p, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = i & 7;
}

__global__ void Sum(const uint4* p, size_t n, unsigned long long* out) {
  unsigned long long acc = 0;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint4 v = p[i];
    acc += v.x + v.y + v.z + v.w;
  }
  atomicAdd(out, acc);
}

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 4;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const size_t bytes = static_cast<size_t>(gib * (1 << 30)) & ~size_t{(1 << 21) - 1};
  if (bytes == 0 || rounds <= 0) {
    std::printf("usage: host_preferred [GiB > 0] [rounds > 0]\n");
    return 2;
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("host_preferred: no usable GPU\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  UK(umpool_configure("capacity:24GiB,kv.preferred:cpu,kv.accessed_by:gpu,kv.prefetch:never"));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void *gpu = nullptr, *host = nullptr;
  UK(umpool_alloc(bytes, 0, s, /*weights*/ 1, &gpu));
  UK(umpool_alloc(bytes, 0, s, /*kv: host-preferred*/ 2, &host));
  unsigned long long* sum = nullptr;
  CK(cudaMalloc(&sum, sizeof(*sum)));
  const size_t words = bytes / 4;
  Fill<<<1024, 256, 0, s>>>(static_cast<unsigned*>(gpu), words);
  Fill<<<1024, 256, 0, s>>>(static_cast<unsigned*>(host), words);
  CK(cudaStreamSynchronize(s));
  const unsigned long long expect = static_cast<unsigned long long>(words / 8) * 28;
  auto read = [&](void* p) {
    CK(cudaMemsetAsync(sum, 0, sizeof(*sum), s));
    Sum<<<prop.multiProcessorCount * 8, 256, 0, s>>>(static_cast<const uint4*>(p), bytes / 16, sum);
    unsigned long long got = 0;
    CK(cudaMemcpyAsync(&got, sum, sizeof(got), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    if (got != expect) {
      std::printf("wrong sum: %llu, expected %llu\n", got, expect);
      std::exit(1);
    }
  };
  const void* const blocks[] = {gpu};
  const char* names[] = {"resident", "host-pref", "prefetch", "faulting"};
  double total[4] = {0, 0, 0, 0};
  read(gpu);  // warm-up
  read(host);
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 4; ++k) {
      const int m = (k + r) % 4;  // alternate the order
      // Untimed: where the block starts (on the GPU for "resident", out for
      // the two that move it each step).
      if (m != 1) UK(umpool_prefetch_blocks(blocks, 1, m == 0 ? 1 : 0, s));
      CK(cudaStreamSynchronize(s));
      const double t0 = Now();
      switch (m) {
        case 0: read(gpu); break;
        case 1: read(host); break;
        case 2:  // fetched before the step, evicted after it
          UK(umpool_prefetch_blocks(blocks, 1, 1, s));
          read(gpu);
          UK(umpool_prefetch_blocks(blocks, 1, 0, s));
          CK(cudaStreamSynchronize(s));
          break;
        case 3:  // faulted in by the step, evicted after it
          read(gpu);
          UK(umpool_prefetch_blocks(blocks, 1, 0, s));
          CK(cudaStreamSynchronize(s));
          break;
      }
      total[m] += Now() - t0;
    }
  }
  std::printf("read-once data, %.2f GiB per step, %d rounds, %s\n\n", bytes / double(1 << 30), rounds,
              prop.name);
  std::printf("| placement | ms per step | GB/s |\n|---|---:|---:|\n");
  for (int m = 0; m < 4; ++m) {
    const double ms = total[m] / rounds * 1e3;
    std::printf("| %s | %.1f | %.1f |\n", names[m], ms, bytes / (ms * 1e-3) / 1e9);
  }
  UK(umpool_free_block(gpu));
  UK(umpool_free_block(host));
  CK(cudaFree(sum));
  return 0;
}
