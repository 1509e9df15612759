// src/pool/arena.h: the segment tier: every backend allocation of a pool.
//
// Each backend allocation is a Segment (2 MiB aligned, advised and prefetched
// once, when mapped, by the policy of the role that grew it). Segments belong
// to the heaps of the pool: roles whose placement differs only in prefetch
// mode share one heap (with the defaults all four do), so memory one role
// freed serves another without a backend call. A heap splits its segments
// into spaces, each a LargeHeap:
//   slab space    : carved into slab ranges (2 MiB multiples) for the size
//                   classes; grows in chunks of 1/16 of the heap's slab bytes.
//   large[role]   : that role's large blocks (512 B granular, best fit).
//                   A role names a lifetime: weights and KV live long,
//                   activations die within a step; long-lived blocks in the
//                   holes of short-lived ones would pin the segments large
//                   activations need.
// Before mapping, a request tries, in order: its space; the heap's empty
// slabs given back (FreeMemorySource, i.e. the slab tier); a wholly free
// segment of another space; and the same after the calling thread's cache is
// flushed. Growth is claimed under the cap before the slow Map, so
// concurrent growth never overshoots it (invariant 5). docs/design.md has
// the measurements behind each rule.
//
// Thread safety: every method may be called from any thread. grow_mu_
// guards capacity accounting, the segment registry and pagemap writes, and is
// never held together with another lock.
#ifndef UMPOOL_SRC_POOL_ARENA_H_
#define UMPOOL_SRC_POOL_ARENA_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "src/pool/counters.h"
#include "src/pool/fence.h"
#include "src/pool/large_heap.h"
#include "src/pool/pagemap.h"
#include "src/pool/slab.h"
#include "umpool/backend.h"
#include "umpool/options.h"

namespace umpool::internal {

// Large blocks (above the role's slab_max_bytes): sizes are multiples of
// kLargeQuantum; a free block is split only if >= kLargeMinSplit is left;
// requests below kLargeSegmentLimit grow their space by a chunk of
// kLargeSegmentBytes to kLargeSegmentMaxBytes (1/8 of what the space holds).
inline constexpr std::size_t kLargeQuantum = 512;
inline constexpr std::size_t kLargeMinSplit = std::size_t{1} << 20;
inline constexpr std::size_t kLargeSegmentLimit = std::size_t{10} << 20;
inline constexpr std::size_t kLargeSegmentBytes = std::size_t{20} << 20;
inline constexpr std::size_t kLargeSegmentMaxBytes = std::size_t{128} << 20;

// What the arena asks of the tiers above before it grows; implemented by the
// pool, which forwards to the slab tier and to the calling thread's cache.
class FreeMemorySource {
 public:
  // Gives heap `heap`'s empty slabs back to its slab space (waiting for their
  // fences first with `wait`); returns how many went back. Errors go to
  // *status if given.
  virtual std::size_t ReclaimEmptySlabs(int heap, bool wait, absl::Status* status) = 0;
  // Flushes the calling thread's cache into the central bins; false if it
  // held nothing.
  virtual bool FlushCallerCache() = 0;

 protected:
  ~FreeMemorySource() = default;
};

class Arena {
 public:
  // `device_memory` (may be null) maps the segments of roles with
  // device_memory set. `capacity` is the resolved cap.
  Arena(const PoolOptions& options, Backend& backend, Backend* device_memory, PageMap& pagemap,
        Fencer& fencer, PoolCounters& counters, std::size_t capacity);
  // Unmaps every segment. The owner has synchronised the device.
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void set_free_memory_source(FreeMemorySource* source) { source_ = source; }

  // The heap serving `role`, and how many heaps there are.
  int heap_of(Role role) const { return heap_of_[static_cast<int>(role)]; }
  int heaps() const { return static_cast<int>(heaps_.size()); }
  Backend& BackendFor(Role role) const;
  // true when `role` lives in plain device memory (no prefetch or eviction).
  bool IsDeviceMemory(Role role) const { return &BackendFor(role) != &backend_; }

  struct Range {
    void* ptr = nullptr;
    std::size_t bytes = 0;       // the range's size (a large block's rest may stay with it)
    bool cross_stream = false;   // reused from another stream after a fence
    std::uint64_t bound_seq = 0; // non-zero: last freed on the caller's stream and
                                 // safe for it only (see Slab::bound)
    bool grew = false;           // a segment was mapped for it
  };
  // A large block of `bytes` (a multiple of kLargeQuantum) for `role`.
  // ResourceExhausted when it cannot be had under the cap.
  absl::StatusOr<Range> TakeLarge(Role role, std::size_t bytes, Stream stream,
                                  std::size_t requested);
  // A range of `bytes` (a 2 MiB multiple) of `role`'s slab space.
  absl::StatusOr<Range> TakeSlabRange(Role role, std::size_t bytes, Stream stream);
  // Points the pagemap at a slab carved from a range of TakeSlabRange, and
  // back at its segment when the slab's range is given back.
  void CoverSlab(Slab* slab);
  void GiveBackSlabRange(Slab* slab, ReuseTerms terms);

  // The large space holding a segment's blocks, or nullptr (slab space: no
  // user block starts there).
  static LargeHeap* LargeSpaceOf(const Span* span) {
    LargeHeap* h = static_cast<const Segment*>(span)->space.load(std::memory_order_acquire);
    return h == nullptr || h->holds_slabs() ? nullptr : h;
  }

  // Waits for every pending fence and unmaps every wholly free segment.
  absl::Status ReleaseFree();
  // `stream`'s work has completed: its free blocks and ranges become ready.
  void ReleaseStream(Stream stream);

  // The cap (see Pool::SetCapacity). *over: reserved exceeds the new cap.
  absl::Status SetCapacity(std::size_t bytes, bool* over);
  std::size_t MaxCapacity() const;
  std::size_t capacity() const { return capacity_view_.load(std::memory_order_relaxed); }

  void LiveBlocks(std::vector<BlockInfo>* out) const;
  void Snapshot(std::vector<SpanSnapshot>* out) const;
  // Space invariants, segment registry against the pagemap and the counters. Aborts.
  void CheckInvariants() const;

 private:
  struct LargeSpace : LargeHeap {
    LargeSpace() : LargeHeap(kLargeQuantum, kLargeMinSplit, /*holds_slabs=*/false) {}
  };
  struct Heap {
    std::array<LargeSpace, kNumRoles> large;  // by role; unused for roles of other heaps
    LargeHeap slab_space{kMapGranularity, kMapGranularity, /*holds_slabs=*/true};
    std::size_t slab_bytes = 0;  // carved into slabs now; guarded by grow_mu_
  };
  struct Mapping {
    void* map_ptr;          // what the backend returned (to unmap)
    std::size_t map_bytes;  // what it mapped
    std::uintptr_t base;    // the 2 MiB-aligned start used
  };

  // The search of the file comment for `bytes` of `space`.
  absl::StatusOr<Range> Take(Role role, LargeHeap& space, bool for_slab, std::size_t bytes,
                             Stream stream, std::size_t requested);
  // A wholly free segment of `bytes` to `max_bytes` from any space of `h`
  // but `into`.
  Segment* StealSegment(Heap& h, LargeHeap& into, std::size_t bytes, std::size_t max_bytes,
                        Stream stream, ReuseTerms* terms);
  // Maps, advises and prefetches a new segment for `space` holding at least
  // `min_bytes`: a growth chunk when that fits under the cap (arena_map.cc).
  absl::StatusOr<Segment*> GrowSegment(Role role, const LargeHeap& space, std::size_t min_bytes,
                                       bool for_slab, Stream stream);
  absl::StatusOr<Mapping> MapSpan(std::size_t bytes, Role role, Stream stream);
  absl::Status UnmapSegment(Segment* seg);
  // Prefetches a range taken for `role` from a segment grown for a role that
  // does not prefetch, when `role` wants it (shared heaps only).
  void PrefetchIfNeeded(Role role, void* p, std::size_t bytes, Stream stream);
  void AddLargeReserved(std::int64_t delta) { counters_.large_reserved_bytes.Add(delta); }

  const PoolOptions& options_;
  Backend& backend_;
  Backend* const device_memory_;
  PageMap& pagemap_;
  Fencer& fencer_;
  PoolCounters& counters_;
  FreeMemorySource* source_ = nullptr;
  const std::size_t initial_capacity_;
  std::array<int, kNumRoles> heap_of_{};
  std::vector<std::unique_ptr<Heap>> heaps_;

  mutable Mutex grow_mu_;
  std::size_t reserved_ ABSL_GUARDED_BY(grow_mu_) = 0;
  std::size_t capacity_ ABSL_GUARDED_BY(grow_mu_);
  std::atomic<std::size_t> capacity_view_;  // capacity_, read without the lock
  absl::flat_hash_map<Segment*, std::unique_ptr<Segment>> segments_ ABSL_GUARDED_BY(grow_mu_);
  // Unmapped segments are kept until the pool dies: a racing lookup of a
  // stale pointer may still read them.
  std::vector<std::unique_ptr<Segment>> retired_ ABSL_GUARDED_BY(grow_mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_ARENA_H_
