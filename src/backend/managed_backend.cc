#include "src/backend/managed_backend.h"

#include <cuda_runtime_api.h>

#include <cstdio>

#include "src/backend/cuda_status.h"

namespace umpool::internal {
namespace {

cudaMemLocation DeviceLocation(int device) {
  cudaMemLocation loc{};
  loc.type = cudaMemLocationTypeDevice;
  loc.id = device;
  return loc;
}

cudaMemLocation HostLocation() {
  cudaMemLocation loc{};
  loc.type = cudaMemLocationTypeHost;
  loc.id = 0;
  return loc;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ManagedBackend>> ManagedBackend::Create(int device) {
  absl::StatusOr<std::string> name = CudaDeviceName(device);
  if (!name.ok()) return name.status();
  return std::unique_ptr<ManagedBackend>(new ManagedBackend(device, *std::move(name)));
}

absl::StatusOr<void*> ManagedBackend::Map(std::size_t bytes) {
  RelaxedCaptureMode relaxed;
  ScopedDevice guard(device_);
  if (!guard.status().ok()) return guard.status();
  void* p = nullptr;
  UMPOOL_CUDA_TRY(cudaMallocManaged(&p, bytes, cudaMemAttachGlobal));
  counters_.maps.fetch_add(1, std::memory_order_relaxed);
  return p;
}

absl::Status ManagedBackend::Advise(void* ptr, std::size_t bytes, const Advice& advice) {
  RelaxedCaptureMode relaxed;
  counters_.advise_ops.fetch_add(1, std::memory_order_relaxed);
  counters_.raw_advise_calls.fetch_add(1, std::memory_order_relaxed);
  UMPOOL_CUDA_TRY(cudaMemAdvise(ptr, bytes, cudaMemAdviseSetPreferredLocation,
                                advice.preferred == Location::kDevice ? DeviceLocation(device_)
                                                                      : HostLocation()));
  if (advice.read_mostly) {
    counters_.raw_advise_calls.fetch_add(1, std::memory_order_relaxed);
    UMPOOL_CUDA_TRY(cudaMemAdvise(ptr, bytes, cudaMemAdviseSetReadMostly, DeviceLocation(device_)));
  }
  if (advice.accessed_by == AccessedBy::kNone) return absl::OkStatus();
  const cudaMemLocation who =
      advice.accessed_by == AccessedBy::kCpu ? HostLocation() : DeviceLocation(device_);
  counters_.raw_advise_calls.fetch_add(1, std::memory_order_relaxed);
  UMPOOL_CUDA_TRY(cudaMemAdvise(ptr, bytes, cudaMemAdviseSetAccessedBy, who));
  return absl::OkStatus();
}

absl::Status ManagedBackend::Prefetch(void* const* ptrs, const std::size_t* sizes,
                                      std::size_t count, Location where, Stream stream) {
  if (count == 0) return absl::OkStatus();
  // A prefetch cannot be captured into a graph: skip it (it is only a hint).
  if (IsCapturing(stream)) return absl::OkStatus();
  counters_.prefetch_ops.fetch_add(1, std::memory_order_relaxed);
  cudaMemLocation loc = where == Location::kDevice ? DeviceLocation(device_) : HostLocation();
  if (batch_prefetch_.load(std::memory_order_relaxed)) {
    absl::StatusOr<Stream> s = OrderedStream(stream);
    if (!s.ok()) return s.status();
    std::size_t first = 0;  // one location, applying from operation 0 on
    const cudaError_t err = cudaMemPrefetchBatchAsync(const_cast<void**>(ptrs),
                                                      const_cast<std::size_t*>(sizes), count,
                                                      &loc, &first, 1, 0, *s);
    if (err == cudaSuccess) return absl::OkStatus();
    (void)cudaGetLastError();
    if (err != cudaErrorNotSupported && err != cudaErrorInvalidValue) {
      return CudaStatus(err, "cudaMemPrefetchBatchAsync");
    }
    if (batch_prefetch_.exchange(false)) {
      std::fprintf(stderr,
                   "umpool: warning: cudaMemPrefetchBatchAsync refused (%s); prefetching "
                   "range by range from now on\n",
                   cudaGetErrorString(err));
    }
  }
  for (std::size_t i = 0; i < count; ++i) {
    UMPOOL_CUDA_TRY(cudaMemPrefetchAsync(ptrs[i], sizes[i], loc, 0, stream));
  }
  return absl::OkStatus();
}

absl::Status ManagedBackend::Copy(void* dst, const void* src, std::size_t bytes, Stream stream) {
  absl::StatusOr<Stream> s = OrderedStream(stream);
  if (!s.ok()) return s.status();
  return CudaBackend::Copy(dst, src, bytes, *s);
}

absl::Status ManagedBackend::CopyBeside(void* dst, const void* src, std::size_t bytes,
                                        Stream stream) {
  absl::StatusOr<Stream> s = OrderedStream(stream);
  if (!s.ok()) return s.status();
  return CopyBySmsOrEngines(dst, src, bytes, *s, SmCopyGrid::kFewSms);
}

ManagedBackend::~ManagedBackend() {
  MutexLock lock(&stream_mu_);
  if (legacy_ordered_ != nullptr) (void)cudaStreamDestroy(legacy_ordered_);
}

absl::StatusOr<Stream> ManagedBackend::OrderedStream(Stream stream) {
  if (stream != nullptr) return stream;
  MutexLock lock(&stream_mu_);
  return StreamOnce(&legacy_ordered_, cudaStreamDefault);
}

absl::Status ManagedBackend::Discard(void* const* ptrs, const std::size_t* sizes,
                                     std::size_t count, DiscardMode mode, Stream stream) {
  if (count == 0) return absl::OkStatus();
  if (IsCapturing(stream)) return absl::UnavailableError("the stream is being captured into a CUDA graph");
  absl::StatusOr<Stream> ordered = OrderedStream(stream);
  if (!ordered.ok()) return ordered.status();
  stream = *ordered;
  const bool refill = mode == DiscardMode::kRefill;
  cudaError_t err;
  if (refill) {
    // Every range to one location: this backend's GPU.
    cudaMemLocation gpu = DeviceLocation(device_);
    std::size_t first = 0;
    err = cudaMemDiscardAndPrefetchBatchAsync(const_cast<void**>(ptrs),
                                              const_cast<std::size_t*>(sizes), count, &gpu,
                                              &first, 1, 0, stream);
  } else {
    err = cudaMemDiscardBatchAsync(const_cast<void**>(ptrs), const_cast<std::size_t*>(sizes),
                                   count, 0, stream);
  }
  if (err != cudaSuccess) {
    absl::Status st = CudaStatus(err, refill ? "cudaMemDiscardAndPrefetchBatchAsync"
                                             : "cudaMemDiscardBatchAsync");
    if (err == cudaErrorNotSupported || err == cudaErrorInvalidValue ||
        err == cudaErrorInvalidDevice) {
      return absl::UnimplementedError(st.message());
    }
    return st;
  }
  counters_.discard_ops.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    counters_.discard_bytes.fetch_add(sizes[i], std::memory_order_relaxed);
    if (refill) counters_.refill_bytes.fetch_add(sizes[i], std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

}  // namespace umpool::internal
