// src/backend/vmm_backend.h: GPU memory through CUDA's virtual memory
// management API (cuMemAddressReserve / cuMemCreate / cuMemMap).
//
// Map reserves address space only; Prefetch to the GPU and Discard(kRefill)
// populate it, Discard(kDrop) gives pages back to the driver (unmapped and
// released: cudaMemGetInfo, another allocator and other processes see them
// free) while the addresses stay reserved, so a block slept by Pool::Sleep
// comes back at the same address and CUDA graphs that captured it stay valid.
// Unlike managed memory, nothing populates on touch: a kernel that touches a
// released page fails with an illegal-address error, which ends the CUDA
// context (as with vLLM's and torch_memory_saver's cuMem sleep). The pool
// populates before it hands memory out (Backend::PopulatesOnTouch); the
// engine must not touch what it put to sleep.
//
// Physical memory comes in chunks: one cuMemCreate handle per run of pages
// populated together, cut at every kChunkBytes of the reservation (the
// driver costs ~50 us per handle to create and map and ~30-70 us to unmap
// and release, whatever its size up to 32 MiB, on the H200:
// bench/probes/vmm_chunks.cu; 2 MiB handles made a 16 GiB sleep 0.46 s).
// Pages are tracked one by one (live, dropped, unmapped): a dropped page
// keeps its chunk's memory until every page of the chunk is dropped, then
// the chunk is released; a refilled page that is still backed just becomes
// live again (contents undefined either way).
//
// Also: no advice (counted no-op), no migration (Prefetch to the host is
// FailedPrecondition, a no-op while the stream is captured: evict by staging
// instead), and the driver's costs of plain device memory (a small pageable
// cudaMemcpyAsync costs what it costs on cudaMalloc memory, not managed
// memory's 3x: bench/results/H200-2026-11-30-session11). The driver entry
// points are looked up at run time (cudaGetDriverEntryPointByVersion): no
// link against libcuda.
//
// Thread safety: every method may be called from any thread (one mutex, held
// across the driver calls that change mappings).
#ifndef UMPOOL_SRC_BACKEND_VMM_BACKEND_H_
#define UMPOOL_SRC_BACKEND_VMM_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "src/backend/cuda_backend.h"
#include "src/base/mutex.h"

namespace umpool::internal {

struct VmmDriver;  // the cuMem* entry points (vmm_backend.cc)

class VmmBackend final : public CudaBackend {
 public:
  // Unavailable where the driver lacks the VMM API or the device does not
  // support it (CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED).
  static absl::StatusOr<std::unique_ptr<VmmBackend>> Create(int device);
  ~VmmBackend() override;  // releases whatever is still mapped or reserved

  BackendKind kind() const override { return BackendKind::kVmm; }
  bool PopulatesOnTouch() const override { return false; }
  absl::StatusOr<void*> Map(std::size_t bytes) override;
  absl::Status Unmap(void* ptr, std::size_t bytes) override;
  absl::Status Advise(void* ptr, std::size_t bytes, const Advice& advice) override;
  absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                        Location where, Stream stream) override;
  using Backend::Prefetch;
  // kDrop waits on the host for `stream` (queued work may still read the
  // pages), then unmaps and releases the pages wholly inside each range;
  // FailedPrecondition while `stream` is being captured. kRefill populates
  // every page a range touches (at once: mapping is not stream-ordered).
  absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                       DiscardMode mode, Stream stream) override;

  // By the SMs when the run is large and aligned and the kernel loads
  // (sm_copy.h: the wake is not slowed by the driver's scrub of memory another
  // allocator just freed); else Copy.
  absl::Status CopyBack(void* dst, const void* src, std::size_t bytes, Stream stream) override;

  // Bytes of physical memory held now (chunks with a live page included).
  std::size_t populated_bytes() const;

  // The largest chunk (a multiple of 2 MiB).
  static constexpr std::size_t kChunkBytes = std::size_t{32} << 20;

 private:
  using Handle = unsigned long long;  // CUmemGenericAllocationHandle
  enum PageState : std::uint8_t { kUnmapped = 0, kLive = 1, kDropped = 2 };
  struct Chunk {
    Handle handle = 0;
    std::size_t pages = 0;
    std::size_t live = 0;  // pages not dropped
  };
  struct Reservation {
    std::size_t bytes = 0;
    std::vector<std::uint8_t> pages;      // PageState per 2 MiB page
    std::map<std::size_t, Chunk> chunks;  // first page -> its chunk
  };

  VmmBackend(int device, std::string name, const VmmDriver& driver);
  // With `guard` holding the device current: makes its primary context
  // current on the calling thread (the cuMem calls need one), even on a
  // thread that has not used the CUDA runtime yet.
  absl::Status Bind(const ScopedDevice& guard);
  // The reservation holding [lo, hi) (its start in *base); InvalidArgument if none.
  absl::StatusOr<Reservation*> Find(std::uintptr_t lo, std::uintptr_t hi, std::uintptr_t* base)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every page each range touches live (Prefetch to the device, Discard
  // kRefill): binds the device and takes mu_.
  absl::Status PopulateRanges(void* const* ptrs, const std::size_t* sizes, std::size_t count)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Every page of [lo, hi) live (page-aligned bounds): dropped pages become
  // live again, unmapped runs get new chunks.
  absl::Status Populate(std::uintptr_t lo, std::uintptr_t hi) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Chunks for the unmapped pages [first, end) of `r`, mapped and made accessible.
  absl::Status MapRun(Reservation& r, std::uintptr_t base, std::size_t first, std::size_t end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every live page of [lo, hi) dropped; chunks left with no live page released.
  absl::Status Drop(std::uintptr_t lo, std::uintptr_t hi) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReleaseChunk(Reservation& r, std::uintptr_t base, std::size_t first)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases every chunk of `r` (Unmap, the destructor).
  absl::Status ReleaseAll(Reservation& r, std::uintptr_t base) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const VmmDriver& driver_;
  mutable Mutex mu_;
  std::map<std::uintptr_t, Reservation> reservations_ ABSL_GUARDED_BY(mu_);
  std::size_t populated_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_VMM_BACKEND_H_
