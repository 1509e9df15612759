// examples/paged_kv/die.h: how the demo engine's parts fail: a failing pool
// or CUDA call prints what it was and why, and the demo exits (status 1).
#ifndef UMPOOL_EXAMPLES_PAGED_KV_DIE_H_
#define UMPOOL_EXAMPLES_PAGED_KV_DIE_H_

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"

namespace paged_kv {

[[noreturn]] inline void Die(const char* part, const char* what, const char* why) {
  std::fprintf(stderr, "%s: %s: %s\n", part, what, why);
  std::exit(1);
}
inline void CheckCuda(cudaError_t e, const char* part, const char* what) {
  if (e != cudaSuccess) Die(part, what, cudaGetErrorString(e));
}
inline void CheckPool(const absl::Status& st, const char* part, const char* what) {
  if (!st.ok()) Die(part, what, st.ToString().c_str());
}

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_DIE_H_
