// src/pool/pool_core.h: the pool behind umpool::Pool.
//
// Composition: one PageMap (address -> span), one Fencer (events), a
// DiscardQueue, and RoleHeaps (one per distinct placement; roles that differ
// only in prefetch mode share one): a CentralBin per size class, and the
// segments split into a slab space and a large space (docs/design.md).
// Threads reach the central bins through their ThreadCache for classes up to
// options.thread_cache_max_class_bytes, directly otherwise.
//
// Locks (never two at once except in this order):
//   thread registry -> caches_mu_ -> bin / large heap -> fencer
//   grow_mu_ (capacity accounting, pagemap writes, backend Map/Unmap), the
//   discard queue's, deferred_mu_ and recorded_mu_ are taken alone.
#ifndef UMPOOL_SRC_POOL_POOL_CORE_H_
#define UMPOOL_SRC_POOL_POOL_CORE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "src/backend/backend.h"
#include "src/pool/central_bin.h"
#include "src/pool/discard_queue.h"
#include "src/pool/fence.h"
#include "src/pool/large_heap.h"
#include "src/pool/pagemap.h"
#include "src/pool/size_class.h"
#include "src/pool/slab.h"
#include "src/pool/thread_cache.h"
#include "src/pool/trace_recorder.h"
#include "umpool/options.h"
#include "umpool/pool.h"
#include "umpool/stats.h"

namespace umpool::internal {

// Largest accepted request: 128 TiB (beyond any GPU's address space).
inline constexpr std::size_t kMaxRequestBytes = std::size_t{1} << 47;
// Large blocks (above the role's slab_max_bytes): sizes are multiples of
// kLargeQuantum; a free block is split only if >= kLargeMinSplit is left;
// requests below kLargeSegmentLimit grow their space by a chunk of
// kLargeSegmentBytes to kLargeSegmentMaxBytes (PoolCore::GrowSegment).
inline constexpr std::size_t kLargeQuantum = 512;
inline constexpr std::size_t kLargeMinSplit = std::size_t{1} << 20;
inline constexpr std::size_t kLargeSegmentLimit = std::size_t{10} << 20;
inline constexpr std::size_t kLargeSegmentBytes = std::size_t{20} << 20;
inline constexpr std::size_t kLargeSegmentMaxBytes = std::size_t{128} << 20;

class PoolCore {
 public:
  // Takes ownership of `backend`. Validates options and resolves the cap.
  // `device_memory`, if given, maps the slabs of roles with device_memory set
  // (a DeviceBackend on the same GPU); without it those roles use `backend`.
  static absl::StatusOr<std::unique_ptr<PoolCore>> Create(
      const PoolOptions& options, std::unique_ptr<Backend> backend,
      std::unique_ptr<Backend> device_memory = nullptr);
  ~PoolCore();

  // Wraps a core into the public Pool (Pool's constructor is private), and
  // reaches the core of a Pool (tests, the C ABI).
  static std::unique_ptr<Pool> Wrap(std::unique_ptr<PoolCore> core);
  static PoolCore* Unwrap(Pool& pool);

  absl::StatusOr<void*> Allocate(std::size_t bytes, Stream stream, Role role);
  absl::Status Deallocate(void* ptr, Stream stream);
  absl::Status RecordStream(void* ptr, Stream stream);
  absl::Status Trim();
  // Graph capture (see Pool::BeginCapture).
  void BeginCapture();
  absl::Status EndCapture();
  bool capturing() const { return fencer_.capturing(); }
  absl::Status Prefetch(const void* ptr, std::size_t bytes, Location where, Stream stream);
  absl::Status PrefetchBlocks(const void* const* ptrs, std::size_t count, Location where,
                              Stream stream);
  // The live block containing `ptr`: its start and size, or InvalidArgument.
  absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> ContainingBlock(const void* ptr) const;
  Stats GetStats() const;
  std::string SnapshotJson() const;
  void ResetPeaks();
  absl::Status SetCapacity(std::size_t bytes);
  std::size_t MaxCapacity() const;
  absl::StatusOr<std::size_t> BlockSize(const void* ptr) const;
  std::size_t RoundedSize(std::size_t bytes, Role role) const;

  const PoolOptions& options() const { return options_; }
  Backend& backend() { return *backend_; }
  Backend* device_memory_backend() { return device_memory_backend_.get(); }
  // The trace recorder, or nullptr when PoolOptions::trace_path is empty.
  TraceRecorder* recorder() const { return recorder_.get(); }
  const PageMap& pagemap() const { return pagemap_; }

  // Aborts if any internal structure is inconsistent. Quiescent pools only
  // (no concurrent calls); for tests.
  void CheckInvariants() const;

  // --- used by ThreadCache -------------------------------------------------
  void ReturnToCentral(Stream stream, Role role, int size_class, void* const* blocks, int n);
  void RetireCache(ThreadCache* cache);  // thread exit: flush + fold counters
  int cached_classes() const { return cached_classes_; }

 private:
  // The free memory of one or more roles: roles whose placement differs only
  // in prefetch mode share one (PoolOptions::policy(): same accessed_by,
  // read_mostly, discard_on_free, device_memory), so memory one role freed
  // serves another without a backend call (with the defaults, all four share).
  //
  // Each segment belongs to one space: `slab_space` is carved into slabs,
  // `large[role]` into that role's large blocks. Large blocks are kept apart
  // by role because a role names a lifetime (weights and KV live long,
  // activations die within a step): long-lived blocks in the holes of
  // short-lived ones would pin the segments large activations need whole,
  // and slabs would fragment them too. A wholly free segment moves to
  // another space when that saves a backend call (see TakeRange).
  struct LargeSpace : LargeHeap {
    LargeSpace() : LargeHeap(kLargeQuantum, kLargeMinSplit, /*holds_slabs=*/false) {}
  };
  struct RoleHeap {
    std::array<CentralBin, kNumClasses> bins;
    std::array<LargeSpace, kNumRoles> large;  // by role; unused for roles of other heaps
    LargeHeap slab_space{kSlabGranularity, kSlabGranularity, /*holds_slabs=*/true};
    std::size_t slab_bytes = 0;  // carved into slabs now; guarded by grow_mu_
  };

  PoolCore(const PoolOptions& options, std::unique_ptr<Backend> backend,
           std::unique_ptr<Backend> device_memory, std::size_t capacity);
  Backend& BackendFor(Role role) const {
    return options_.policy(role).device_memory && device_memory_backend_ != nullptr
               ? *device_memory_backend_
               : *backend_;
  }
  // The large space holding a segment's blocks, or nullptr when the
  // segment is slab space (no user block starts there).
  static LargeHeap* LargeSpaceOf(const Span* span) {
    LargeHeap* h = static_cast<const Segment*>(span)->space.load(std::memory_order_acquire);
    return h == nullptr || h->holds_slabs() ? nullptr : h;
  }
  // A wholly free segment of `bytes` to `max_bytes` from any space of `h`
  // but `into`: ready, or freed on `stream` (then *terms says so, for
  // AdoptSegment).
  Segment* StealSegment(RoleHeap& h, LargeHeap& into, std::size_t bytes, std::size_t max_bytes,
                        Stream stream, ReuseTerms* terms);
  // FailedPrecondition if `span`'s role lives in plain device memory.
  absl::Status CheckMovable(const Span* span, const void* ptr) const;

  ThreadCache* CurrentCache();
  ThreadCache* CurrentCacheSlow();
  // The thread cache counters go to, or nullptr (pool-wide atomics) when
  // thread caches are off.
  ThreadCache* CounterCache();
  void CountAllocation(ThreadCache* tc, std::size_t bytes, bool hit);
  void CountFree(ThreadCache* tc, std::size_t bytes);
  void Publish(std::int64_t delta);

  absl::StatusOr<void*> AllocateSmall(std::size_t bytes, Stream stream, Role role, int cls);
  absl::StatusOr<void*> AllocateLarge(std::size_t bytes, Stream stream, Role role);
  // Fills `out` from the central bin, growing a slab if needed. Returns the
  // count (>= 1) or the error. *grew is set if a slab was created.
  absl::StatusOr<int> Refill(Stream stream, Role role, int cls, void** out, int max, bool* grew);
  absl::Status FreeRecorded(Slab* slab, void* ptr, Stream stream);
  // Discard on free (see discard_queue.h). DiscardsFor: the role discards and
  // the driver has not refused. EnqueueDiscard parks a freed block until its
  // whole 2 MiB pages are discarded; false (block not parked) when it has no
  // whole page. DrainDiscards issues the batched discards and frees the blocks.
  bool DiscardsFor(Role role) const;
  bool EnqueueDiscard(std::uintptr_t start, std::size_t size, Stream stream);
  void DrainDiscards();
  // true if the large block starting at `block` was freed and waits in the queue.
  bool WaitsForDiscard(const Span* span, const void* block) const;

  // Memory comes from the backend in segments (capacity-checked, 2 MiB
  // aligned, advised and prefetched once per the role's policy) that the
  // role's LargeHeap splits into large blocks and slab ranges. Empty slabs go
  // back to the heap (ReclaimEmptySlabs before growing; Trim), so one class's
  // free memory serves another class or a large block without a backend call.
  struct Mapping {
    void* map_ptr;          // what the backend returned (to unmap)
    std::size_t map_bytes;  // what it mapped
    std::uintptr_t base;    // the 2 MiB-aligned start used
  };
  absl::StatusOr<Mapping> MapSpan(std::size_t bytes, Role role, Stream stream);
  // A new segment for `space` (the role's slab space if `for_slab`) holding
  // at least `min_bytes`: a growth chunk when it fits under the cap.
  absl::StatusOr<Segment*> GrowSegment(Role role, const LargeHeap& space, std::size_t min_bytes,
                                       bool for_slab, Stream stream);
  // Prefetches a range taken for `role` from a segment grown for a role that
  // does not prefetch, when `role` wants it (shared heaps only).
  void PrefetchIfNeeded(Role role, void* p, std::size_t bytes, Stream stream);
  // A range of `bytes` (2 MiB multiple) from the role's heap usable on
  // `stream`: a free block, else reclaimed empty slabs, else a new segment.
  // `for_slab`: grow by a chunk (1/16 of the heap's slab bytes, 2-256 MiB)
  // rather than exactly `bytes`.
  // *bound_seq (optional) is non-zero when the range was last freed on
  // `stream` and is safe for that stream only (see Slab::bound); *grew
  // (optional) is set when a new segment was mapped.
  // *got is the range's size (more than `bytes` when a large block's rest was
  // too small to split off).
  absl::StatusOr<void*> TakeRange(Role role, std::size_t bytes, Stream stream, bool for_slab,
                                  bool* cross_stream, std::size_t* got,
                                  std::uint64_t* bound_seq = nullptr, bool* grew = nullptr);
  absl::StatusOr<Slab*> GrowSlab(Role role, int cls, Stream stream);
  void ReturnSlab(Slab* slab, ReuseTerms terms);
  // Returns the heap's empty slabs to its slab space (see CentralBin::TakeEmpty;
  // `wait`: wait for their fences first, as Trim does). Errors go to *status
  // if given. Returns how many slabs went back.
  std::size_t ReclaimEmptySlabs(RoleHeap& heap, bool wait, absl::Status* status);
  absl::Status UnmapSegment(Segment* seg);
  void AddLargeReserved(std::int64_t delta);
  // Releases cached memory after flushing this thread's cache; used by the
  // OOM path and by Trim.
  absl::Status ReleaseCached();
  absl::Status OutOfMemory(std::size_t bytes, Role role, const absl::Status& cause);
  void MarkLive(void* p);

  const PoolOptions options_;
  const std::unique_ptr<Backend> backend_;
  const std::unique_ptr<Backend> device_memory_backend_;  // may be null
  std::unique_ptr<TraceRecorder> recorder_;  // set once by Create
  const std::size_t initial_capacity_;
  const int cached_classes_;  // classes [0, cached_classes_) go through thread caches
  const std::uint64_t id_;

  PageMap pagemap_;
  Fencer fencer_;
  std::vector<std::unique_ptr<RoleHeap>> heap_store_;  // distinct heaps
  std::array<RoleHeap*, kNumRoles> heaps_{};           // per role, into heap_store_

  Mutex grow_mu_;
  std::size_t reserved_ ABSL_GUARDED_BY(grow_mu_) = 0;
  std::size_t capacity_ ABSL_GUARDED_BY(grow_mu_);
  std::atomic<std::size_t> capacity_view_;  // capacity_ for GetStats
  absl::flat_hash_map<Segment*, std::unique_ptr<Segment>> spans_ ABSL_GUARDED_BY(grow_mu_);
  absl::flat_hash_map<Slab*, std::unique_ptr<Slab>> slabs_ ABSL_GUARDED_BY(grow_mu_);
  // Unmapped segments and returned slabs are kept until the pool dies: a racing lookup of a stale
  // pointer may still read them.
  std::vector<std::unique_ptr<Span>> retired_ ABSL_GUARDED_BY(grow_mu_);

  std::atomic<std::uint64_t> flush_epoch_{0};
  mutable Mutex caches_mu_;
  std::vector<ThreadCache*> caches_ ABSL_GUARDED_BY(caches_mu_);

  // Frees that need events while a graph capture is underway wait here.
  struct DeferredFree {
    void* ptr = nullptr;
    Stream stream = nullptr;
    absl::InlinedVector<Stream, 2> streams;  // slab blocks: every stream to fence
  };
  Mutex deferred_mu_;
  std::vector<DeferredFree> deferred_ ABSL_GUARDED_BY(deferred_mu_);

  Mutex recorded_mu_;
  absl::flat_hash_map<void*, absl::InlinedVector<Stream, 2>> recorded_ ABSL_GUARDED_BY(recorded_mu_);

  // Pool-wide counters (slow paths, retired caches, published deltas).
  struct Counters {
    std::atomic<std::int64_t> allocated{0}, allocated_peak{0};
    std::atomic<std::int64_t> reserved{0}, reserved_peak{0};
    std::atomic<std::int64_t> large_reserved{0}, large_reserved_peak{0};
    std::atomic<std::uint64_t> allocations{0}, frees{0}, cache_hits{0};
    std::atomic<std::uint64_t> backend_allocations{0}, backend_frees{0};
    std::atomic<std::uint64_t> advise_calls{0}, prefetch_calls{0};
    std::atomic<std::uint64_t> alloc_retries{0}, ooms{0}, cross_stream_reuses{0}, trims{0};
    std::atomic<std::int64_t> slabs{0}, large_segments{0};
    std::atomic<std::uint64_t> slabs_reclaimed{0}, segments_moved{0};
    std::atomic<std::uint64_t> discard_calls{0}, discard_bytes{0}, discarded_blocks{0};
  };
  DiscardQueue discards_;
  std::atomic<bool> discard_supported_{true};
  mutable Counters counters_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_POOL_CORE_H_
