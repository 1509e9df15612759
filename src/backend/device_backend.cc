#include "src/backend/device_backend.h"

#include <cuda_runtime_api.h>

#include "src/backend/cuda_status.h"

namespace umpool::internal {

absl::StatusOr<std::unique_ptr<DeviceBackend>> DeviceBackend::Create(int device) {
  absl::StatusOr<std::string> name = CudaDeviceName(device);
  if (!name.ok()) return name.status();
  return std::unique_ptr<DeviceBackend>(new DeviceBackend(device, *std::move(name)));
}

absl::StatusOr<void*> DeviceBackend::Map(std::size_t bytes) {
  RelaxedCaptureMode relaxed;
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  void* p = nullptr;
  UMPOOL_CUDA_TRY(cudaMalloc(&p, bytes));
  counters_.maps.fetch_add(1, std::memory_order_relaxed);
  return p;
}

absl::Status DeviceBackend::Advise(void*, std::size_t, const Advice&) {
  counters_.advise_ops.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status DeviceBackend::Prefetch(void* const*, const std::size_t*, std::size_t, Location, Stream) {
  counters_.prefetch_ops.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status DeviceBackend::Discard(void* const*, const std::size_t*, std::size_t, DiscardMode,
                                    Stream) {
  counters_.discard_ops.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

}  // namespace umpool::internal
