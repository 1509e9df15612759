#include "src/backend/cuda_backend.h"

#include <cuda_runtime_api.h>
#include <sys/mman.h>

#include "absl/strings/str_cat.h"
#include "src/backend/cuda_status.h"

namespace umpool::internal {

ScopedDevice::ScopedDevice(int device) {
  int current = -1;
  status_ = CudaStatus(cudaGetDevice(&current), "cudaGetDevice");
  if (!status_.ok() || current == device) return;
  status_ = CudaStatus(cudaSetDevice(device), "cudaSetDevice");
  if (status_.ok()) previous_ = current;
}

ScopedDevice::~ScopedDevice() {
  if (previous_ >= 0) (void)cudaSetDevice(previous_);
}

absl::StatusOr<std::string> CudaDeviceName(int device) {
  int count = 0;
  UMPOOL_CUDA_TRY(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid CUDA device ", device, ": this machine has ", count,
                     " device(s)"));
  }
  cudaDeviceProp prop{};
  UMPOOL_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name);
}

RelaxedCaptureMode::RelaxedCaptureMode() {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  ok_ = cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess;
  previous_ = static_cast<int>(mode);
}

RelaxedCaptureMode::~RelaxedCaptureMode() {
  if (!ok_) return;
  auto mode = static_cast<cudaStreamCaptureMode>(previous_);
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
}

bool CudaBackend::IsCapturing(Stream stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}

CudaBackend::CudaBackend(int device, std::string device_name)
    : device_(device), device_name_(std::move(device_name)) {}

CudaBackend::~CudaBackend() {
  MutexLock lock(&side_mu_);
  if (side_ != nullptr) (void)cudaStreamDestroy(side_);
}

absl::StatusOr<Stream> CudaBackend::StreamOnce(Stream* slot, unsigned int flags) const {
  if (*slot == nullptr) {
    ScopedDevice guard(device_);
    if (!guard.status().ok()) return guard.status();
    cudaStream_t s = nullptr;
    UMPOOL_CUDA_TRY(cudaStreamCreateWithFlags(&s, flags));
    *slot = s;
  }
  return *slot;
}

absl::StatusOr<Stream> CudaBackend::SideStream() {
  MutexLock lock(&side_mu_);
  return StreamOnce(&side_, cudaStreamNonBlocking);
}

std::string CudaBackend::Describe() const {
  return absl::StrCat(BackendKindName(kind()), ": ", device_name_, " (device ", device_, ")");
}

absl::StatusOr<std::size_t> CudaBackend::AvailableBytes() {
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  std::size_t free_bytes = 0, total = 0;
  UMPOOL_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total));
  return free_bytes;
}

absl::StatusOr<std::size_t> CudaBackend::TotalBytes() {
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  std::size_t free_bytes = 0, total = 0;
  UMPOOL_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total));
  return total;
}

absl::StatusOr<Event> CudaBackend::CreateEvent() {
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  cudaEvent_t e = nullptr;
  UMPOOL_CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

void CudaBackend::DestroyEvent(Event event) { (void)cudaEventDestroy(event); }

absl::Status CudaBackend::RecordEvent(Event event, Stream stream) {
  counters_.event_records.fetch_add(1, std::memory_order_relaxed);
  UMPOOL_CUDA_TRY(cudaEventRecord(event, stream));
  return absl::OkStatus();
}

absl::StatusOr<bool> CudaBackend::QueryEvent(Event event) {
  counters_.event_queries.fetch_add(1, std::memory_order_relaxed);
  const cudaError_t err = cudaEventQuery(event);
  if (err == cudaSuccess) return true;
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();  // NotReady is not an error for our callers
    return false;
  }
  return CudaStatus(err, "cudaEventQuery");
}

absl::Status CudaBackend::SynchronizeEvent(Event event) {
  counters_.event_syncs.fetch_add(1, std::memory_order_relaxed);
  UMPOOL_CUDA_TRY(cudaEventSynchronize(event));
  return absl::OkStatus();
}

absl::Status CudaBackend::StreamWaitEvent(Stream stream, Event event) {
  counters_.stream_waits.fetch_add(1, std::memory_order_relaxed);
  UMPOOL_CUDA_TRY(cudaStreamWaitEvent(stream, event, 0));
  return absl::OkStatus();
}

absl::Status CudaBackend::Synchronize() {
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  UMPOOL_CUDA_TRY(cudaDeviceSynchronize());
  return absl::OkStatus();
}

absl::Status CudaBackend::Unmap(void* ptr, std::size_t) {
  RelaxedCaptureMode relaxed;
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  UMPOOL_CUDA_TRY(cudaFree(ptr));
  counters_.unmaps.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

// Pinning is what costs: cudaHostAlloc pinned 8 GiB in 5.5 s on the H200's
// host, mmap with transparent huge pages plus cudaHostRegister in 2.7 s (the
// copies run at the same 52 GB/s either way). So the latter, and
// cudaHostAlloc where registering fails.
absl::StatusOr<void*> CudaBackend::AllocateStaging(std::size_t bytes) {
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    // Mapped too: the vmm backend's wake has the SMs read it (sm_copy.h).
    if (cudaHostRegister(p, bytes, cudaHostRegisterPortable | cudaHostRegisterMapped) ==
        cudaSuccess) {
      counters_.staging_allocs.fetch_add(1, std::memory_order_relaxed);
      return p;
    }
    (void)cudaGetLastError();
    munmap(p, bytes);
  }
  p = nullptr;
  const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable | cudaHostAllocMapped);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaHostAlloc of ", bytes, " bytes of pinned staging memory failed"));
  }
  UMPOOL_CUDA_TRY(err);
  counters_.staging_allocs.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void CudaBackend::FreeStaging(void* ptr, std::size_t bytes) {
  if (cudaHostUnregister(ptr) == cudaSuccess) {
    munmap(ptr, bytes);
    return;
  }
  (void)cudaGetLastError();  // not registered: it came from cudaHostAlloc
  (void)cudaFreeHost(ptr);
}

absl::Status CudaBackend::CopyBySmsOrEngines(void* dst, const void* src, std::size_t bytes,
                                             Stream stream, SmCopyGrid grid) {
  if (bytes >= kSmCopyMinBytes) {
    ScopedDevice guard(device_);
    if (!guard.status().ok()) return guard.status();
    absl::Status st = CopyBySms(dst, src, bytes, device_, stream, grid);
    if (st.ok()) {
      counters_.copy_ops.fetch_add(1, std::memory_order_relaxed);
      counters_.copy_bytes.fetch_add(bytes, std::memory_order_relaxed);
      counters_.sm_copy_ops.fetch_add(1, std::memory_order_relaxed);
      return st;
    }
    if (!absl::IsUnimplemented(st)) return st;
  }
  return Copy(dst, src, bytes, stream);
}

absl::Status CudaBackend::Copy(void* dst, const void* src, std::size_t bytes, Stream stream) {
  counters_.copy_ops.fetch_add(1, std::memory_order_relaxed);
  counters_.copy_bytes.fetch_add(bytes, std::memory_order_relaxed);
  UMPOOL_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
  return absl::OkStatus();
}

}  // namespace umpool::internal
