// tests/gpu_kernels.h: host-callable launchers for the GPU tests' kernels
// (compiled by nvcc in gpu_kernels.cu; the tests themselves are C++20).
#ifndef UMPOOL_TESTS_GPU_KERNELS_H_
#define UMPOOL_TESTS_GPU_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace umpool::testing {

// Spins for `ns` nanoseconds on the GPU, then fills `n` bytes at `p` with `value`.
cudaError_t LaunchSpinThenFill(void* p, std::size_t n, unsigned char value, std::uint64_t ns,
                               cudaStream_t stream);
// Adds the number of bytes != value in [p, p+n) to *bad (device memory).
cudaError_t LaunchCountMismatches(const void* p, std::size_t n, unsigned char value,
                                  unsigned long long* bad, cudaStream_t stream);
// The number of bytes != value in [p, p+n), counted on `stream` into the
// device counter *bad (zeroed first) and waited for; ~0 on a CUDA error.
unsigned long long Mismatches(const void* p, std::size_t n, unsigned char value,
                              unsigned long long* bad, cudaStream_t stream);

}  // namespace umpool::testing

#endif  // UMPOOL_TESTS_GPU_KERNELS_H_
