// src/backend/cuda_backend.h: what the managed and device backends share:
// events, stream waits, device selection and free-memory queries.
#ifndef UMPOOL_SRC_BACKEND_CUDA_BACKEND_H_
#define UMPOOL_SRC_BACKEND_CUDA_BACKEND_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "src/backend/sm_copy.h"
#include "src/base/mutex.h"
#include "umpool/backend.h"

namespace umpool::internal {

// Makes `device` current for the guard's lifetime and restores the previous
// device afterwards (only if it had to change it).
class ScopedDevice {
 public:
  explicit ScopedDevice(int device);
  ~ScopedDevice();
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;
  absl::Status status() const { return status_; }

 private:
  int previous_ = -1;
  absl::Status status_;
};

// Switches the calling thread to cudaStreamCaptureModeRelaxed for its
// lifetime, so that mapping memory (cudaMallocManaged, cudaMalloc, advice)
// while some stream is being captured into a CUDA graph does not invalidate
// that capture, as PyTorch's allocator does for cudaMalloc.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode();
  ~RelaxedCaptureMode();
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  int previous_;
  bool ok_;
};

class CudaBackend : public Backend {
 public:
  bool IsCapturing(Stream stream) override;
  int device() const override { return device_; }
  std::string Describe() const override;
  absl::StatusOr<std::size_t> AvailableBytes() override;
  absl::StatusOr<std::size_t> TotalBytes() override;

  absl::StatusOr<Event> CreateEvent() override;
  void DestroyEvent(Event event) override;
  absl::Status RecordEvent(Event event, Stream stream) override;
  absl::StatusOr<bool> QueryEvent(Event event) override;
  absl::Status SynchronizeEvent(Event event) override;
  absl::Status StreamWaitEvent(Stream stream, Event event) override;
  absl::Status Synchronize() override;

  absl::Status Unmap(void* ptr, std::size_t bytes) override;
  absl::StatusOr<void*> AllocateStaging(std::size_t bytes) override;
  void FreeStaging(void* ptr, std::size_t bytes) override;
  absl::Status Copy(void* dst, const void* src, std::size_t bytes, Stream stream) override;
  // A non-blocking stream on the backend's device, made at the first call.
  absl::StatusOr<Stream> SideStream() override;

 protected:
  CudaBackend(int device, std::string device_name);
  ~CudaBackend() override;  // destroys the side stream
  // *slot, or a stream with `flags` on the device made into it (the caller
  // holds whatever guards *slot).
  absl::StatusOr<Stream> StreamOnce(Stream* slot, unsigned int flags) const;
  // A copy by the SMs on `grid` (sm_copy.h), counted as one, when it is large
  // and aligned, one side is mapped pinned memory and the kernel loads; else
  // Copy (the copy engines).
  absl::Status CopyBySmsOrEngines(void* dst, const void* src, std::size_t bytes, Stream stream,
                                  SmCopyGrid grid);
  const int device_;
  const std::string device_name_;

 private:
  Mutex side_mu_;
  Stream side_ ABSL_GUARDED_BY(side_mu_) = nullptr;
};

// Validates `device` and reads its name. InvalidArgument for a bad ordinal,
// Unavailable when no GPU is usable.
absl::StatusOr<std::string> CudaDeviceName(int device);

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_CUDA_BACKEND_H_
