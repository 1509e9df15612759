// src/backend/managed_backend.h: CUDA managed memory, advised and prefetched.
//
// Map = cudaMallocManaged(cudaMemAttachGlobal). Advise = PreferredLocation on
// the pool's GPU plus AccessedBy (CPU, GPU or none, per role policy): two
// cudaMemAdvise calls, once per slab. Prefetch = cudaMemPrefetchAsync on the
// caller's stream. CUDA 13 cudaMemLocation structs throughout.
#ifndef UMPOOL_SRC_BACKEND_MANAGED_BACKEND_H_
#define UMPOOL_SRC_BACKEND_MANAGED_BACKEND_H_

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
  absl::Status Advise(void* ptr, std::size_t bytes, const RolePolicy& policy) override;
  absl::Status Prefetch(void* ptr, std::size_t bytes, Location where, Stream stream) override;
  absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                       Stream stream) override;

 private:
  using CudaBackend::CudaBackend;
  // cudaMemDiscardBatchAsync refuses the legacy NULL stream. A *blocking*
  // stream is ordered against the legacy stream both ways, so a discard on it
  // runs after the legacy stream's earlier work and before its later work.
  absl::StatusOr<Stream> LegacyOrderedStream();
  Mutex stream_mu_;
  Stream legacy_ordered_ ABSL_GUARDED_BY(stream_mu_) = nullptr;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_MANAGED_BACKEND_H_
