// src/backend/backend.h: the contract between the pool and its memory source.
//
// A Backend maps and unmaps large ranges (slabs and segments), applies
// placement advice and prefetches, and provides the stream/event primitives
// the pool orders reuse with. It knows nothing of size classes or blocks.
// Layer rule: src/backend includes only include/umpool and third-party
// headers, never src/pool (tools/check-layers enforces it).
#ifndef UMPOOL_SRC_BACKEND_BACKEND_H_
#define UMPOOL_SRC_BACKEND_BACKEND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "umpool/options.h"
#include "umpool/types.h"

namespace umpool::internal {

// What the backend actually did, counted by the backend itself (so tests can
// compare the pool's view with the backend's). Relaxed atomics.
struct BackendCounters {
  std::atomic<std::uint64_t> maps{0};
  std::atomic<std::uint64_t> unmaps{0};
  std::atomic<std::uint64_t> advise_ops{0};       // Advise() calls that advised
  std::atomic<std::uint64_t> raw_advise_calls{0};  // cudaMemAdvise calls made
  std::atomic<std::uint64_t> prefetch_ops{0};
  std::atomic<std::uint64_t> discard_ops{0};
  std::atomic<std::uint64_t> discard_bytes{0};
  std::atomic<std::uint64_t> event_records{0};
  std::atomic<std::uint64_t> event_queries{0};
  std::atomic<std::uint64_t> event_syncs{0};
  std::atomic<std::uint64_t> stream_waits{0};
};

// Thread safety: every method may be called concurrently from any thread.
class Backend {
 public:
  virtual ~Backend() = default;

  virtual BackendKind kind() const = 0;
  virtual int device() const = 0;
  // e.g. "managed: NVIDIA H100 80GB HBM3 (device 0)".
  virtual std::string Describe() const = 0;

  // Bytes this backend may reasonably hand out now (the default cap):
  // the GPU's free memory, or half of host memory for the host backend.
  virtual absl::StatusOr<std::size_t> AvailableBytes() = 0;

  // Maps `bytes` (a multiple of 2 MiB) of fresh memory, aligned to >= 256 B.
  // ResourceExhausted when the source is out of memory.
  virtual absl::StatusOr<void*> Map(std::size_t bytes) = 0;
  // Returns a range from Map. No queued GPU work may still touch it: the pool
  // guarantees that before calling.
  virtual absl::Status Unmap(void* ptr, std::size_t bytes) = 0;

  // Applies `policy`'s advice to the range (managed backend: PreferredLocation
  // = the pool's GPU, AccessedBy per policy). A no-op that still counts as an
  // advise op on the other backends.
  virtual absl::Status Advise(void* ptr, std::size_t bytes, const RolePolicy& policy) = 0;
  // Stream-ordered prefetch of `count` ranges to `where`, in one batch where
  // the driver has one (cudaMemPrefetchBatchAsync), else range by range.
  // Counted as one prefetch op. No-op (counted) on device/host.
  virtual absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                                Location where, Stream stream) = 0;
  absl::Status Prefetch(void* ptr, std::size_t bytes, Location where, Stream stream) {
    return Prefetch(&ptr, &bytes, 1, where, stream);
  }

  // Stream-ordered discard of `count` ranges (contents become undefined; no
  // migration of them afterwards). Unimplemented where the driver or device
  // cannot. No-op (counted) on the device and host backends.
  virtual absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                               Stream stream) = 0;

  // Events. CreateEvent makes a timing-free event usable with RecordEvent on
  // any stream of the pool's device.
  virtual absl::StatusOr<Event> CreateEvent() = 0;
  virtual void DestroyEvent(Event event) = 0;
  virtual absl::Status RecordEvent(Event event, Stream stream) = 0;
  // true when every piece of work the event captured has completed. Never blocks.
  virtual absl::StatusOr<bool> QueryEvent(Event event) = 0;
  // Blocks the host until the event has completed.
  virtual absl::Status SynchronizeEvent(Event event) = 0;
  // Makes future work on `stream` wait for `event` (no host block).
  virtual absl::Status StreamWaitEvent(Stream stream, Event event) = 0;
  // Blocks the host until all work on the device has completed.
  virtual absl::Status Synchronize() = 0;
  // true if `stream` is being captured into a CUDA graph (work enqueued on it
  // is recorded, not run). false on the host backend and on error.
  virtual bool IsCapturing(Stream stream) { (void)stream; return false; }

  const BackendCounters& counters() const { return counters_; }

 protected:
  BackendCounters counters_;
};

// Creates the backend for `kind` on `device`. Unavailable where CUDA is not
// compiled in or no GPU is usable; InvalidArgument for a bad device ordinal.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendKind kind, int device);

// true when umpool was compiled with CUDA and a CUDA device can be used.
bool CudaAvailable();

// The size granularity of Map (2 MiB): every slab and segment is a multiple.
inline constexpr std::size_t kMapGranularity = std::size_t{2} << 20;

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_BACKEND_H_
