// bench/probes/probe_check.h: what the standalone probes share: CK(x) exits
// with the file, line and CUDA runtime error when x fails; now() is seconds on
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

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#endif  // UMPOOL_BENCH_PROBES_PROBE_CHECK_H_
