// src/backend/cuda_status.h: the one way CUDA errors become absl::Status.
//
// Every CUDA runtime call in umpool goes through UMPOOL_CUDA_TRY (return the
// error as a Status) or CudaStatus (convert). Out-of-memory becomes
// ResourceExhausted, its own kind, so the pool can release cache and retry;
// the runtime's "last error" is cleared so that a caller such as PyTorch does
// not later trip over an error we already handled.
#ifndef UMPOOL_SRC_BACKEND_CUDA_STATUS_H_
#define UMPOOL_SRC_BACKEND_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace umpool::internal {

// OK for cudaSuccess; otherwise a Status naming `what`, the CUDA error name and
// its description. ResourceExhausted for cudaErrorMemoryAllocation,
// InvalidArgument for cudaErrorInvalidDevice/InvalidValue, Unavailable for
// "no device"/"insufficient driver", Internal otherwise.
absl::Status CudaStatus(cudaError_t err, absl::string_view what);

}  // namespace umpool::internal

#define UMPOOL_CUDA_TRY(expr)                                                  \
  do {                                                                         \
    const cudaError_t umpool_cuda_err_ = (expr);                               \
    if (umpool_cuda_err_ != cudaSuccess)                                       \
      return ::umpool::internal::CudaStatus(umpool_cuda_err_, #expr);          \
  } while (0)

#endif  // UMPOOL_SRC_BACKEND_CUDA_STATUS_H_
