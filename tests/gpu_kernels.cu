#include "tests/gpu_kernels.h"

namespace umpool::testing {
namespace {

__device__ std::uint64_t GlobalNs() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void SpinThenFill(unsigned char* p, std::size_t n, unsigned char value,
                             std::uint64_t ns) {
  if (ns > 0) {
    const std::uint64_t start = GlobalNs();
    while (GlobalNs() - start < ns) {
    }
  }
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    p[i] = value;
  }
}

__global__ void CountMismatches(const unsigned char* p, std::size_t n, unsigned char value,
                                unsigned long long* bad) {
  unsigned long long local = 0;
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    local += (p[i] != value);
  }
  if (local) atomicAdd(bad, local);
}

}  // namespace

cudaError_t LaunchSpinThenFill(void* p, std::size_t n, unsigned char value, std::uint64_t ns,
                               cudaStream_t stream) {
  SpinThenFill<<<132, 256, 0, stream>>>(static_cast<unsigned char*>(p), n, value, ns);
  return cudaGetLastError();
}

cudaError_t LaunchCountMismatches(const void* p, std::size_t n, unsigned char value,
                                  unsigned long long* bad, cudaStream_t stream) {
  CountMismatches<<<264, 256, 0, stream>>>(static_cast<const unsigned char*>(p), n, value, bad);
  return cudaGetLastError();
}

unsigned long long Mismatches(const void* p, std::size_t n, unsigned char value,
                              unsigned long long* bad, cudaStream_t stream) {
  unsigned long long h = ~0ull;
  if (cudaMemsetAsync(bad, 0, sizeof(*bad), stream) != cudaSuccess ||
      LaunchCountMismatches(p, n, value, bad, stream) != cudaSuccess ||
      cudaMemcpyAsync(&h, bad, sizeof(h), cudaMemcpyDeviceToHost, stream) != cudaSuccess ||
      cudaStreamSynchronize(stream) != cudaSuccess) {
    return ~0ull;
  }
  return h;
}

}  // namespace umpool::testing
