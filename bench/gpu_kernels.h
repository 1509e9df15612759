// bench/gpu_kernels.h: kernels for the GPU-side benchmarks (built by nvcc in
// gpu_kernels.cu as C++17; the harness itself is C++20).
#ifndef UMPOOL_BENCH_GPU_KERNELS_H_
#define UMPOOL_BENCH_GPU_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstddef>

namespace umpool::bench {

// dst[i] = src[i] for n bytes (16-byte vectors; n a multiple of 16).
cudaError_t LaunchCopy(void* dst, const void* src, std::size_t n, cudaStream_t stream);
// Reads n bytes and writes one checksum word to *out (n a multiple of 16).
cudaError_t LaunchRead(const void* src, std::size_t n, unsigned long long* out,
                       cudaStream_t stream);

}  // namespace umpool::bench

#endif  // UMPOOL_BENCH_GPU_KERNELS_H_
