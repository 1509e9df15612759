// Creates backends by kind; the only file that knows which backends exist and
// whether CUDA was compiled in (UMPOOL_HAVE_CUDA).
#include <memory>

#include "absl/strings/str_cat.h"
#include "umpool/backend.h"
#include "src/backend/host_backend.h"

#if UMPOOL_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "src/backend/device_backend.h"
#include "src/backend/managed_backend.h"
#include "src/backend/vmm_backend.h"
#endif

namespace umpool {

using internal::HostBackend;

bool CudaAvailable() {
#if UMPOOL_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendKind kind, int device) {
  switch (kind) {
    case BackendKind::kHost:
      if (device != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("host backend has only device 0, got device ", device));
      }
      return std::unique_ptr<Backend>(new HostBackend());
    case BackendKind::kManaged:
    case BackendKind::kDevice:
    case BackendKind::kVmm: {
#if UMPOOL_HAVE_CUDA
      if (!CudaAvailable()) {
        return absl::UnavailableError(absl::StrCat(
            BackendKindName(kind), " backend: no usable CUDA device on this machine"));
      }
      if (kind == BackendKind::kManaged) {
        auto b = internal::ManagedBackend::Create(device);
        if (!b.ok()) return b.status();
        return std::unique_ptr<Backend>(std::move(*b));
      }
      if (kind == BackendKind::kVmm) {
        auto b = internal::VmmBackend::Create(device);
        if (!b.ok()) return b.status();
        return std::unique_ptr<Backend>(std::move(*b));
      }
      auto b = internal::DeviceBackend::Create(device);
      if (!b.ok()) return b.status();
      return std::unique_ptr<Backend>(std::move(*b));
#else
      return absl::UnavailableError(absl::StrCat(
          BackendKindName(kind), " backend: umpool was built without CUDA"));
#endif
    }
  }
  return absl::InvalidArgumentError("unknown backend kind");
}

std::unique_ptr<Backend> CreateHostBackend(std::size_t capacity_bytes, bool populate_on_request) {
  return std::make_unique<HostBackend>(capacity_bytes, populate_on_request);
}

}  // namespace umpool
