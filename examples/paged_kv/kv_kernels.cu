#include "examples/paged_kv/kv_kernels.h"

namespace paged_kv {
namespace {

// One thread block per request: append, then read back all of its KV.
__global__ void DecodeStep(float* const* const* tables, const int* ids, const int* lengths,
                           bool append, double* sums) {
  const int k = blockIdx.x;
  float* const* table = tables[k];
  const int r = ids[k];
  const int len = lengths[k];
  if (append) {
    float* block = table[len / kBlockTokens];
    float* tok = block + static_cast<size_t>(len % kBlockTokens) * kTokenFloats;
    for (int i = threadIdx.x; i < kTokenFloats; i += blockDim.x) tok[i] = KvValue(r, len, i);
    __syncthreads();
  }
  const int total = len + (append ? 1 : 0);
  double acc = 0;
  for (int t = 0; t < total; ++t) {
    const float* tok = table[t / kBlockTokens] + static_cast<size_t>(t % kBlockTokens) * kTokenFloats;
    for (int i = threadIdx.x; i < kTokenFloats; i += blockDim.x) acc += tok[i];
  }
  __shared__ double part[256];
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[k] = part[0];
}

__global__ void Prefill(float* const* table, int r, int n) {
  for (int t = blockIdx.x; t < n; t += gridDim.x) {
    float* tok = table[t / kBlockTokens] + static_cast<size_t>(t % kBlockTokens) * kTokenFloats;
    for (int i = threadIdx.x; i < kTokenFloats; i += blockDim.x) tok[i] = KvValue(r, t, i);
  }
}

}  // namespace

cudaError_t LaunchPrefill(float* const* table, int r, int n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  Prefill<<<128, 256, 0, stream>>>(table, r, n);
  return cudaGetLastError();
}

cudaError_t LaunchDecodeStep(float* const* const* tables, const int* ids, const int* lengths,
                             int n, bool append, double* sums, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  DecodeStep<<<n, 256, 0, stream>>>(tables, ids, lengths, append, sums);
  return cudaGetLastError();
}

}  // namespace paged_kv
