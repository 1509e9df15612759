// src/backend/managed_backend.h: CUDA managed memory, advised and prefetched.
//
// Map = cudaMallocManaged(cudaMemAttachGlobal). Advise = PreferredLocation on
// the pool's GPU plus AccessedBy (CPU, GPU or none, per role policy): two
// cudaMemAdvise calls, once per slab. Prefetch = cudaMemPrefetchBatchAsync
// (all ranges in one call) on the caller's stream, or cudaMemPrefetchAsync per
// range where the driver refuses the batch API (said once on stderr).
// Discard = cudaMemDiscardBatchAsync (kDrop) or cudaMemDiscardAndPrefetchBatchAsync
// to the pool's GPU (kRefill). The batch APIs refuse the legacy NULL
// stream, so its work goes to an internal blocking stream ordered with it.
// CopyBeside moves large copies by a few SMs (kernels on other streams wait
// for copy-engine copies of managed memory).
// CUDA 13 cudaMemLocation structs throughout.
#ifndef UMPOOL_SRC_BACKEND_MANAGED_BACKEND_H_
#define UMPOOL_SRC_BACKEND_MANAGED_BACKEND_H_

#include <atomic>
#include <memory>

#include "src/backend/cuda_backend.h"
#include "src/base/mutex.h"

namespace umpool::internal {

class ManagedBackend final : public CudaBackend {
 public:
  static absl::StatusOr<std::unique_ptr<ManagedBackend>> Create(int device);
  ~ManagedBackend() override;

  BackendKind kind() const override { return BackendKind::kManaged; }
  absl::StatusOr<void*> Map(std::size_t bytes) override;
  absl::Status Advise(void* ptr, std::size_t bytes, const Advice& advice) override;
  absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                        Location where, Stream stream) override;
  using Backend::Prefetch;
  absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                       DiscardMode mode, Stream stream) override;
  // On the NULL stream: the stream the discards of NULL-stream work run on
  // (a copy ordered after a discard on another stream faults page by page).
  absl::Status Copy(void* dst, const void* src, std::size_t bytes, Stream stream) override;
  // Runs of 1 MiB or more, 16-byte aligned, between pinned host memory mapped
  // for the device and this backend's memory: by eight SMs
  // (SmCopyGrid::kFewSms; sm_copy.h says why). Anything else: Copy.
  absl::Status CopyBeside(void* dst, const void* src, std::size_t bytes, Stream stream) override;

 private:
  using CudaBackend::CudaBackend;
  std::atomic<bool> batch_prefetch_{true};  // false once the driver refused it
  // cudaMem*BatchAsync refuse the legacy NULL stream. A *blocking*
  // stream is ordered against the legacy stream both ways, so a discard on it
  // runs after the legacy stream's earlier work and before its later work.
  // `stream`, or for the NULL stream that blocking stream (made once).
  absl::StatusOr<Stream> OrderedStream(Stream stream);
  Mutex stream_mu_;
  Stream legacy_ordered_ ABSL_GUARDED_BY(stream_mu_) = nullptr;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_MANAGED_BACKEND_H_
