// examples/paged_kv/die.h: how the demo engine's parts fail: a failing pool
// or CUDA call prints what it was and why, and the demo exits (status 1).
#ifndef UMPOOL_EXAMPLES_PAGED_KV_DIE_H_
#define UMPOOL_EXAMPLES_PAGED_KV_DIE_H_

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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
// The engine's and main's shorter forms (their messages: "umpool: why",
// "call: why"): the value of a pool call, or exit.
template <typename T>
T Check(absl::StatusOr<T> v) {
  if (!v.ok()) {
    std::fprintf(stderr, "umpool: %s\n", v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}
inline void Check(const absl::Status& st) {
  if (!st.ok()) {
    std::fprintf(stderr, "umpool: %s\n", st.ToString().c_str());
    std::exit(1);
  }
}
inline void CheckCudaCall(cudaError_t e, const char* call) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", call, cudaGetErrorString(e));
    std::exit(1);
  }
}

}  // namespace paged_kv

// A CUDA call that must succeed: prints the call and the error, and exits.
#define CHECK_CUDA(expr) ::paged_kv::CheckCudaCall((expr), #expr)

#endif  // UMPOOL_EXAMPLES_PAGED_KV_DIE_H_
