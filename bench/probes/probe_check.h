// bench/probes/probe_check.h: what the standalone probes share: CK(x) exits
// with the file, line and CUDA runtime error when x fails (CU(x): driver API); now() is seconds on
// a steady clock. Probes are built by hand with nvcc, not by CMake.
#ifndef UMPOOL_BENCH_PROBES_PROBE_CHECK_H_
#define UMPOOL_BENCH_PROBES_PROBE_CHECK_H_

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#define CK(x)                                                                        \
  do {                                                                               \
    cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

// With <cuda.h> included first: CU(x) does the same for a driver API call.
#ifdef __cuda_cuda_h__
#define CU(x)                                                              \
  do {                                                                     \
    CUresult r_ = (x);                                                     \
    if (r_ != CUDA_SUCCESS) {                                              \
      const char* s_ = nullptr;                                            \
      cuGetErrorString(r_, &s_);                                           \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, s_ ? s_ : "?"); \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)
#endif

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#endif  // UMPOOL_BENCH_PROBES_PROBE_CHECK_H_
