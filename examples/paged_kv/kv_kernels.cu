#include "examples/paged_kv/kv_kernels.h"

namespace paged_kv {
namespace {

// Split-KV decode: each request's cache is spread over many thread blocks
// (blockIdx.y: the request; blockIdx.x: a chunk of kChunkTokens tokens of one
// KV block), each reading its tokens with vector loads, so a step reads the
// KV at the memory's bandwidth. The chunk holding the new token appends it
// first. The values are small integers: summed as integers, added into
// sums[k] (zeroed before) exactly in any order.
constexpr int kChunkTokens = 16;
constexpr int kChunksPerBlock = kBlockTokens / kChunkTokens;
constexpr int kThreads = 256;

__global__ void DecodeStep(float* const* const* tables, const int* ids, const int* lengths,
                           bool append, double* sums) {
  const int k = blockIdx.y;
  const int b = blockIdx.x / kChunksPerBlock;
  const int first = blockIdx.x * kChunkTokens;  // the chunk's first token
  const int len = lengths[k];
  const int total = len + (append ? 1 : 0);
  if (first >= total) return;
  float* block = tables[k][b];
  const int in_block = first - b * kBlockTokens;
  if (append && len >= first && len < first + kChunkTokens) {
    float* tok = block + static_cast<size_t>(len % kBlockTokens) * kTokenFloats;
    const int r = ids[k];
    for (int i = threadIdx.x; i < kTokenFloats; i += blockDim.x) tok[i] = KvValue(r, len, i);
    __syncthreads();
  }
  const int n = min(total - first, kChunkTokens);
  const float4* v = reinterpret_cast<const float4*>(block + static_cast<size_t>(in_block) * kTokenFloats);
  constexpr int kVecPerToken = kTokenFloats / 4;
  long long acc = 0;
#pragma unroll 4
  for (int j = threadIdx.x; j < n * kVecPerToken; j += kThreads) {
    const float4 x = v[j];
    acc += static_cast<long long>(x.x) + static_cast<long long>(x.y) + static_cast<long long>(x.z) +
           static_cast<long long>(x.w);
  }
  __shared__ long long part[kThreads];
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(&sums[k], static_cast<double>(part[0]));
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
                             int n, int max_blocks, bool append, double* sums, cudaStream_t stream) {
  if (n == 0 || max_blocks <= 0) return cudaSuccess;
  if (cudaError_t e = cudaMemsetAsync(sums, 0, sizeof(double) * n, stream); e != cudaSuccess) return e;
  DecodeStep<<<dim3(max_blocks * kChunksPerBlock, n), kThreads, 0, stream>>>(tables, ids, lengths,
                                                                             append, sums);
  return cudaGetLastError();
}

}  // namespace paged_kv
