// umpool/backend.h: where a pool's memory and stream primitives come from.
//
// A Backend maps and unmaps large ranges (segments), applies placement advice
// and prefetches, discards contents, and provides the events the pool orders
// reuse with. It knows nothing of size classes or blocks. umpool ships three:
// managed (cudaMallocManaged + advice + prefetch), device (cudaMalloc) and host
// (plain host memory with host-side streams and events, so the pool runs and is
// tested without a GPU). Pool::Create(options, backend) takes any
// implementation, so an engine can supply its own memory source.
//
// Thread safety: every method may be called concurrently from any thread.
// Errors: out-of-memory is ResourceExhausted (the pool releases cached memory
// and retries on it), a bad device or argument InvalidArgument, no usable GPU
// Unavailable. A backend never throws.
#ifndef UMPOOL_BACKEND_H_
#define UMPOOL_BACKEND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "umpool/types.h"

namespace umpool {

// The granularity of Map (2 MiB): every segment is a multiple of it.
inline constexpr std::size_t kMapGranularity = std::size_t{2} << 20;

// Which processor gets a direct mapping of managed memory (cudaMemAdviseSetAccessedBy).
enum class AccessedBy : std::uint8_t {
  kCpu = 0,   // the seed's choice: the CPU may read without migrating pages back
  kGpu = 1,   // the pool's GPU (useful when the preferred location is the host)
  kNone = 2,  // no AccessedBy advice
};

// Placement advice for one range, applied once when the range is mapped.
struct Advice {
  Location preferred = Location::kDevice;  // cudaMemAdviseSetPreferredLocation
  AccessedBy accessed_by = AccessedBy::kCpu;
  bool read_mostly = false;                // cudaMemAdviseSetReadMostly
};

// What a backend actually did, counted by the backend itself (so tests can
// compare the pool's view with the backend's). Relaxed atomics.
struct BackendCounters {
  std::atomic<std::uint64_t> maps{0};
  std::atomic<std::uint64_t> unmaps{0};
  std::atomic<std::uint64_t> advise_ops{0};       // Advise() calls that advised
  std::atomic<std::uint64_t> raw_advise_calls{0};  // cudaMemAdvise calls made
  std::atomic<std::uint64_t> prefetch_ops{0};
  std::atomic<std::uint64_t> discard_ops{0};
  std::atomic<std::uint64_t> discard_bytes{0};
  std::atomic<std::uint64_t> refill_bytes{0};  // discarded with DiscardMode::kRefill
  std::atomic<std::uint64_t> copy_ops{0};      // Copy() calls
  std::atomic<std::uint64_t> copy_bytes{0};
  std::atomic<std::uint64_t> sm_copy_ops{0};     // copies moved by the SMs (CopyBack, CopyBeside)
  std::atomic<std::uint64_t> staging_allocs{0};  // AllocateStaging() calls that allocated
  std::atomic<std::uint64_t> event_records{0};
  std::atomic<std::uint64_t> event_queries{0};
  std::atomic<std::uint64_t> event_syncs{0};
  std::atomic<std::uint64_t> stream_waits{0};
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual BackendKind kind() const = 0;
  virtual int device() const = 0;
  // true (managed, host, device memory) when mapped memory is usable as it
  // is: managed and host pages populate on first touch. false (vmm) when
  // memory exists only where Prefetch to the device or Discard(kRefill)
  // populated it and Discard(kDrop) has not released it since: the pool then
  // populates every range before handing it out, refills on every discard on
  // free, and touching a released page is an error on the device.
  virtual bool PopulatesOnTouch() const { return true; }
  // e.g. "managed: NVIDIA H100 80GB HBM3 (device 0)".
  virtual std::string Describe() const = 0;

  // Bytes this backend may reasonably hand out now (a pool's default cap):
  // the GPU's free memory, or half of host memory for the host backend.
  virtual absl::StatusOr<std::size_t> AvailableBytes() = 0;
  // The device's total memory (what a memory fraction is a fraction of); the
  // host backend's capacity.
  virtual absl::StatusOr<std::size_t> TotalBytes() = 0;

  // Maps `bytes` (a multiple of kMapGranularity) of fresh memory, aligned to
  // >= 256 B. ResourceExhausted when the source is out of memory.
  virtual absl::StatusOr<void*> Map(std::size_t bytes) = 0;
  // Returns a range from Map. No queued GPU work may still touch it: the pool
  // guarantees that before calling.
  virtual absl::Status Unmap(void* ptr, std::size_t bytes) = 0;

  // Applies `advice` to the range (managed backend: PreferredLocation,
  // AccessedBy, ReadMostly). A no-op that still counts as an advise op on the
  // other backends.
  virtual absl::Status Advise(void* ptr, std::size_t bytes, const Advice& advice) = 0;
  // Stream-ordered prefetch of `count` ranges to `where`, in one batch where
  // the driver has one (cudaMemPrefetchBatchAsync), else range by range.
  // Counted as one prefetch op. No-op (counted) on device/host.
  virtual absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                                Location where, Stream stream) = 0;
  absl::Status Prefetch(void* ptr, std::size_t bytes, Location where, Stream stream) {
    return Prefetch(&ptr, &bytes, 1, where, stream);
  }

  // Stream-ordered discard of `count` ranges: contents become undefined and
  // are never migrated afterwards. kDrop leaves the pages unpopulated (the
  // next touch faults them in page by page); kRefill populates them on the
  // backend's GPU in the same batched call (cudaMemDiscardAndPrefetchBatchAsync),
  // so reuse never faults and an evicted range comes back without a copy.
  // Where pages populate only when asked (PopulatesOnTouch false), kRefill
  // populates what is not and leaves populated pages as they are, so the
  // pool may refill every page a block touches, a live neighbour's included.
  // Unimplemented where the driver or device cannot. No-op (counted) on the
  // device backend.
  virtual absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                               DiscardMode mode, Stream stream) = 0;

  // Staging memory for Pool::Sleep's offload: host memory the GPU copies to
  // and from at full speed (cudaHostAlloc, pinned, on the CUDA backends;
  // plain host memory on the host backend). AllocateStaging gives `bytes`
  // (> 0), aligned to >= 4 KiB; ResourceExhausted when the host cannot pin
  // that much. FreeStaging returns it; no queued copy may still use it.
  // Unimplemented by default: Sleep then offloads by eviction instead.
  virtual absl::StatusOr<void*> AllocateStaging(std::size_t bytes);
  virtual void FreeStaging(void* ptr, std::size_t bytes);
  // Stream-ordered copy of `bytes` between any of the backend's memory and
  // staging memory (cudaMemcpyAsync, cudaMemcpyDefault). The host backend
  // copies at once. Unimplemented by default.
  virtual absl::Status Copy(void* dst, const void* src, std::size_t bytes, Stream stream);
  // Copy, from staging memory back to the backend's memory, for Pool::Wake:
  // the same contract (stream-ordered, any size, 0 a no-op). A backend may
  // move it differently when nothing else runs; the vmm backend has the SMs
  // copy large aligned runs (src/backend/sm_copy.h says why). Default: Copy.
  virtual absl::Status CopyBack(void* dst, const void* src, std::size_t bytes, Stream stream);
  // Copy, for copies that run beside the caller's kernels on other streams
  // (evictions and fetches by staging while an engine computes): the same
  // contract. The managed backend has a few SMs move large aligned copies:
  // there the copy engines' copies between pinned and managed memory hold up
  // kernels on every stream while they run (src/backend/sm_copy.h).
  // Default: Copy.
  virtual absl::Status CopyBeside(void* dst, const void* src, std::size_t bytes, Stream stream);

  // A stream of the backend's own, ordered with no other stream (not even
  // the legacy NULL stream), for page work that overlaps copies on the
  // caller's stream (Sleep drops the pages copied out while the next are
  // copied; Wake refills the next pages while copying the last). The same
  // stream on every call; the backend destroys it. Unimplemented by
  // default: callers then keep all the work on their own stream.
  virtual absl::StatusOr<Stream> SideStream();

  // Events. CreateEvent makes a timing-free event usable with RecordEvent on
  // any stream of the backend's device.
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

// Creates umpool's backend for `kind` on `device`. Unavailable where CUDA is
// not compiled in or no GPU is usable; InvalidArgument for a bad device
// ordinal (the host backend has only device 0). Thread-safe.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendKind kind, int device);

// A host backend whose capacity (AvailableBytes, TotalBytes and the most it
// maps at once) is `capacity_bytes`; 0 = half of physical memory. It maps
// with MAP_NORESERVE, so untouched memory costs nothing: trace replays use it
// to size GPU workloads on a CPU machine. `populate_on_request`: memory
// behaves as the vmm backend's (PopulatesOnTouch false: inaccessible until
// populated, whole 2 MiB pages dropped): the pool then follows its vmm rules,
// so a replay models a vmm pool on a CPU machine. Thread-safe.
std::unique_ptr<Backend> CreateHostBackend(std::size_t capacity_bytes,
                                           bool populate_on_request = false);

// true when umpool was compiled with CUDA and a CUDA device can be used.
// Thread-safe; never initialises a CUDA context beyond cudaGetDeviceCount.
bool CudaAvailable();

}  // namespace umpool

#endif  // UMPOOL_BACKEND_H_
