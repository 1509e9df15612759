// src/backend/device_backend.h: plain device memory (cudaMalloc).
//
// For comparisons and for roles that need memory the driver never migrates.
// Advice and prefetch are no-ops (counted as advise/prefetch ops so the pool's
// once-per-slab accounting reads the same on every backend).
#ifndef UMPOOL_SRC_BACKEND_DEVICE_BACKEND_H_
#define UMPOOL_SRC_BACKEND_DEVICE_BACKEND_H_

#include <memory>

#include "src/backend/cuda_backend.h"

namespace umpool::internal {

class DeviceBackend final : public CudaBackend {
 public:
  static absl::StatusOr<std::unique_ptr<DeviceBackend>> Create(int device);

  BackendKind kind() const override { return BackendKind::kDevice; }
  absl::StatusOr<void*> Map(std::size_t bytes) override;
  absl::Status Advise(void* ptr, std::size_t bytes, const Advice& advice) override;
  absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                        Location where, Stream stream) override;
  using Backend::Prefetch;
  absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                       DiscardMode mode, Stream stream) override;

 private:
  using CudaBackend::CudaBackend;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_DEVICE_BACKEND_H_
