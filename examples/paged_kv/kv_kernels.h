// examples/paged_kv/kv_kernels.h: the demo's kernels (nvcc, C++17).
#ifndef UMPOOL_EXAMPLES_PAGED_KV_KV_KERNELS_H_
#define UMPOOL_EXAMPLES_PAGED_KV_KV_KERNELS_H_

#include <cuda_runtime_api.h>

#include "examples/paged_kv/kv_layout.h"

namespace paged_kv {

// Value stored at float `i` of token `t` of request `r` (the check recomputes it).
__host__ __device__ inline float KvValue(int r, int t, int i) {
  return static_cast<float>((r * 131 + t * 7 + i) % 1021);
}

// The sum of token t's floats of request r (what a decode step adds for it).
inline double TokenSum(int r, int t) {
  // 2048 consecutive residues mod 1021: two whole cycles and 6 more.
  const int base = (r * 131 + t * 7) % 1021;
  double s = 2.0 * (1020.0 * 1021.0 / 2.0);
  for (int i = 0; i < kTokenFloats - 2 * 1021; ++i) s += (base + i) % 1021;
  return s;
}

// For each of `n` requests: appends token lengths[k] (if append) at its block
// table, then sums every float of tokens [0, lengths[k] + append) into sums[k]
// (split-KV: thread blocks of 16 tokens each over max_blocks KV blocks x n
// requests; max_blocks covers the longest request, new token included). tables[k] points to that
// request's block table (an array of block pointers).
cudaError_t LaunchDecodeStep(float* const* const* tables, const int* ids, const int* lengths,
                             int n, int max_blocks, bool append, double* sums, cudaStream_t stream);

// Writes tokens [0, n) of request r into its blocks (the prompt's prefill).
cudaError_t LaunchPrefill(float* const* table, int r, int n, cudaStream_t stream);

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_KV_KERNELS_H_
