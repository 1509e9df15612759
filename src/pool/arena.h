// src/pool/arena.h: the segment tier: every backend allocation of a pool.
//
// Each backend allocation is a Segment (2 MiB aligned, advised once when
// mapped, by the policy of the role that grew it). A segment is mapped larger
// than its first request: the rest is a reserve that costs no GPU memory
// until the space grows into it (managed memory is backed once touched), page
// by page, prefetching what it populates. So a space's blocks merge across
// growth, as in one range that grows — PyTorch's expandable segments without
// cuMem calls. Reserved bytes (Stats) are the populated parts; mapped bytes
// add the reserves. The cap bounds reserved bytes less the live blocks the
// pool evicted to the host (PoolCounters::host_bytes); mapped bytes stay under
// the map limit (the device's free memory when the pool was made, or the cap
// if higher), so the pool never asks the GPU for more managed memory than it
// had free, touched or not. Plain device memory (a device backend, or
// RolePolicy::device_memory) cannot be populated lazily: its segments are
// populated whole, with no reserve.
//
// Segments belong to the heaps of the pool: roles whose placement differs
// only in prefetch mode share one heap (with the defaults all four do), so
// memory one role freed serves another without a backend call. A heap splits
// its segments into spaces, each a LargeHeap:
//   slab space    : carved into slab ranges (2 MiB multiples) for the size
//                   classes.
//   large[role]   : that role's large blocks (512 B granular, best fit);
//                   activations' may use KV's (activations_share_kv_space).
//                   A role names a lifetime: weights and KV live long,
//                   activations die within a step; long-lived blocks in the
//                   holes of short-lived ones would pin the segments large
//                   activations need.
// Before growing, a request tries, in order: its space (a big one-block
// slab first gives back the empty slabs of smaller big classes, and its
// space is first fit: docs/arena-cycles.md, "First fit for big slabs"); the
// heap's empty slabs given back (FreeMemorySource, i.e. the slab tier); a
// wholly free segment of another space; and the same after the calling
// thread's cache is flushed; then, with PoolOptions::reuse_pending_blocks,
// its space's pending blocks, made the stream's behind a stream wait
// (large_heap_pending.cc); then, about to grow, the same free memory after
// the caches of threads outside the pool are drained (with
// PoolOptions::drain_idle_caches). Then, with PoolOptions::give_back_free_pages, if
// populating would pass the reserved high-water mark and the slack above peak live
// bytes (give_back_slack), the heap first gives back free
// pages (bare blocks: dropped, no longer reserved), and the request tries
// its space's bare blocks (refilled). Then it grows its space: a segment's
// reserve (the one leaving the least to populate), else a new segment
// (docs/arena.md, "Bare blocks"). Growth is claimed under the cap
// before the slow backend call, so concurrent growth never overshoots it
// (invariant 5). docs/arena.md has the measurements behind each rule.
//
// Thread safety: every method may be called from any thread. grow_mu_
// guards capacity accounting, the segment registry and pagemap writes; it is
// taken last (a space's mutex may be held: growing in place).
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
// kLargeQuantum; a free block is split only if >= kLargeMinSplit is left.
inline constexpr std::size_t kLargeQuantum = 512;
inline constexpr std::size_t kLargeMinSplit = std::size_t{1} << 20;
// A new segment's reserve: twice what its space has mapped, at least
// kMinReserveBytes, at most a quarter of what the map limit has left.
inline constexpr std::size_t kMinReserveBytes = std::size_t{16} << 30;
// A space grows in place by at least 1/kPopulateStepDivisor of what its heap
// holds (2 MiB to kPopulateStepMaxBytes): fewer populate calls, and slack
// enough that a steady workload stops growing after its first cycle.
inline constexpr std::size_t kPopulateStepDivisor = 512;
inline constexpr std::size_t kPopulateStepMaxBytes = std::size_t{64} << 20;
// The roles whose large spaces hold short-lived blocks, in the order their
// free memory is lent. The others (the KV cache, the weights) fill again what
// they free: their free segments are not lent to other spaces (StealSegment)
// and their free pages are given back last (GiveBackFreePages).
inline constexpr Role kShortLivedRoles[] = {Role::kActivations, Role::kDefault};
inline constexpr bool ShortLived(int role) {
  for (Role r : kShortLivedRoles) {
    if (static_cast<int>(r) == role) return true;
  }
  return false;
}
// Plain device memory grows by chunks instead (no reserve): requests below
// kLargeSegmentLimit by kLargeSegmentBytes to kLargeSegmentMaxBytes (1/8 of
// what the space holds), slab space by 1/16 of the heap's slab bytes.
inline constexpr std::size_t kLargeSegmentLimit = std::size_t{10} << 20;
inline constexpr std::size_t kLargeSegmentBytes = std::size_t{20} << 20;
inline constexpr std::size_t kLargeSegmentMaxBytes = std::size_t{128} << 20;

// What the arena asks of the tiers above before it grows; implemented by the
// pool, which forwards to the slab tier and to the calling thread's cache.
class FreeMemorySource {
 public:
  // Gives heap `heap`'s empty slabs back to its slab spaces (waiting for
  // their fences first with `wait`), those of classes whose slabs are
  // `min_slab_bytes` to `max_slab_bytes`; returns how many went back. Errors
  // go to *status if given.
  virtual std::size_t ReclaimEmptySlabs(int heap, bool wait, absl::Status* status,
                                        std::size_t min_slab_bytes = 0,
                                        std::size_t max_slab_bytes = SIZE_MAX) = 0;
  // Flushes the calling thread's cache into the central bins; with `others`
  // instead the caches of threads outside the pool now (a drain: only with
  // PoolOptions::drain_idle_caches). False if they held nothing.
  virtual bool FlushCaches(bool others) = 0;

 protected:
  ~FreeMemorySource() = default;
};

class Arena {
 public:
  // `device_memory` (may be null) maps the segments of roles with
  // device_memory set. `capacity` is the resolved cap (on reserved bytes),
  // `map_limit` the most it may map (at least `capacity`).
  Arena(const PoolOptions& options, Backend& backend, Backend* device_memory, PageMap& pagemap,
        Fencer& fencer, PoolCounters& counters, std::size_t capacity, std::size_t map_limit);
  // Unmaps every segment. The owner has synchronised the device.
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void set_free_memory_source(FreeMemorySource* source) { source_ = source; }

  // The heap serving `role`, and how many heaps there are.
  int heap_of(Role role) const { return heap_of_[static_cast<int>(role)]; }
  // The role whose large space `role`'s large blocks use (itself, or KV's
  // for activations: PoolOptions::activations_share_kv_space).
  int space_of(int role) const { return space_of_[role]; }
  int heaps() const { return static_cast<int>(heaps_.size()); }
  Backend& BackendFor(Role role) const;
  // true when `role` lives in plain device memory (no prefetch or eviction).
  bool IsDeviceMemory(Role role) const { return &BackendFor(role) != &backend_; }
  // true when `role`'s segments cost memory only once touched (managed and
  // host memory), so they can be mapped with a reserve.
  bool Lazy(Role role) const {
    return !IsDeviceMemory(role) && backend_.kind() != BackendKind::kDevice;
  }

  struct Range {
    void* ptr = nullptr;
    std::size_t bytes = 0;       // the range's size (a large block's rest may stay with it)
    bool cross_stream = false;   // reused from another stream after a fence
    std::uint64_t bound_seq = 0; // non-zero: last freed on the caller's stream and
                                 // safe for it only (see Slab::bound)
    bool grew = false;           // a segment was mapped or populated for it
  };
  // A large block of `bytes` (a multiple of kLargeQuantum) for `role`.
  // ResourceExhausted when it cannot be had under the cap.
  absl::StatusOr<Range> TakeLarge(Role role, std::size_t bytes, Stream stream,
                                  std::size_t requested);
  // A range of `bytes` (a 2 MiB multiple) for a slab of `block_bytes` blocks:
  // from `role`'s slab space, or its large space for blocks above the role's
  // slab_space_max_bytes (2 MiB-aligned there). Without
  // `may_grow`, only free memory usable now (no stream wait, no page given
  // back or populated, no mapping): ptr nullptr when there is none.
  absl::StatusOr<Range> TakeSlabRange(Role role, std::size_t bytes, std::size_t block_bytes,
                                      Stream stream, bool may_grow = true);
  // Whether `role`'s slabs of `block_bytes` blocks come from its large space.
  bool SlabInLargeSpace(Role role, std::size_t block_bytes) const {
    return block_bytes > options_.policy(role).slab_space_max_bytes;
  }
  // Whether a request on `stream` may take memory whose fences are pending
  // once `stream` waits for them (PoolOptions::reuse_pending_blocks; never
  // during a graph capture), and that wait: a cudaStreamWaitEvent per fence,
  // enqueued (the host does not wait).
  bool MayReusePending(Stream stream) const;
  absl::Status OrderAfter(Stream stream, const Fences& fences);
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

  // Populates again [addr, addr + n) of `seg`, pages given back (a bare
  // block's), for use on `stream`: claimed under the cap (ResourceExhausted
  // over it), ordered after every drop queued before (a stream wait), then
  // populated on the GPU by the backend (Discard kRefill; Prefetch where the
  // backend has no refill).
  absl::Status Refill(Segment* seg, std::uintptr_t addr, std::size_t n, Stream stream);

  // Waits for every pending fence and unmaps every wholly free segment.
  absl::Status ReleaseFree();
  // `stream`'s work has completed: its free blocks and ranges become ready.
  void ReleaseStream(Stream stream);

  // The cap (see Pool::SetCapacity). *over: reserved exceeds the new cap.
  absl::Status SetCapacity(std::size_t bytes, bool* over);
  std::size_t MaxCapacity() const;
  std::size_t capacity() const { return capacity_view_.load(std::memory_order_relaxed); }
  // How far the GPU-held bytes (reserved less the live blocks the pool
  // evicted) are over the cap: a freed evicted block counts again at once.
  std::size_t BytesOverCap() const;

  // Populated bytes of `role`'s large space and of the slabs carved for it.
  std::size_t RoleReservedBytes(Role role) const;
  // A budgeted role holds `want` bytes more on the GPU than its budget in
  // pages of free blocks: gives back (makes bare) at least that much of its
  // large space's free pages, those free the longest first, tails included.
  // Same conditions as GiveBackFreePages; a failed drop changes nothing.
  void GiveBackOverBudget(Role role, std::size_t want, Stream stream);
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
    // Slabs come from two spaces: those of many blocks (up to
    // kBigSlabBytes, long-lived, partly used) and the big ones of one block
    // each (activations of 8-32 MiB, freed and taken again every step).
    // Mixed, a 2 MiB slab split the hole a 22 MiB one needed in a later
    // cycle of a steady trace, and the space grew (a backend call).
    LargeHeap slab_space{kMapGranularity, kMapGranularity, /*holds_slabs=*/true};
    // First fit: see LargeHeap::Fit.
    LargeHeap big_slab_space{kMapGranularity, kMapGranularity, /*holds_slabs=*/true,
                             LargeHeap::Fit::kFirst};
    LargeHeap& SlabSpaceFor(std::size_t slab_bytes) {
      return slab_bytes >= kBigSlabBytes ? big_slab_space : slab_space;
    }
    std::array<LargeHeap*, 2> slab_spaces() { return {&slab_space, &big_slab_space}; }
    std::array<const LargeHeap*, 2> slab_spaces() const { return {&slab_space, &big_slab_space}; }
  };
  static constexpr std::size_t kBigSlabBytes = std::size_t{8} << 20;
  struct Mapping {
    void* map_ptr;          // what the backend returned (to unmap)
    std::size_t map_bytes;  // what it mapped
    std::uintptr_t base;    // the 2 MiB-aligned start used
  };

  // The search of the file comment for `bytes` of `space`.
  absl::StatusOr<Range> Take(Role role, LargeHeap& space, bool for_slab, std::size_t bytes,
                             Stream stream, std::size_t requested, bool may_grow = true);
  // A wholly free segment of `bytes` to `max_bytes` from any space of `h`
  // but `into`.
  Segment* StealSegment(Heap& h, LargeHeap& into, std::size_t bytes, std::size_t max_bytes,
                        Stream stream, ReuseTerms* terms);
  // `space`'s pending blocks made `stream`'s behind a stream wait
  // (MayReusePending; LargeHeap::AdoptPending): false when none moved.
  bool AdoptPending(LargeHeap& space, Stream stream, absl::Status* events);
  // Maps and advises a new segment for `space` with at least `min_bytes`
  // populated (prefetched), plus a reserve (arena_map.cc).
  absl::StatusOr<Segment*> GrowSegment(Role role, const LargeHeap& space, std::size_t min_bytes,
                                       bool for_slab, Stream stream);
  // Maps `map_bytes`, advises them, claims and populates the first
  // `populate_bytes` (under the cap; the mapping under the map limit).
  absl::StatusOr<Mapping> MapSpan(std::size_t map_bytes, std::size_t populate_bytes, Role role,
                                  Stream stream);
  // Claims `n` more reserved bytes under the cap; ResourceExhausted if over.
  absl::Status ClaimReserved(std::size_t n);
  // Gives back a claim whose growth failed.
  void UnclaimReserved(std::size_t n);
  // Prefetches what a segment's growth populated, as its role's policy says
  // (a failure is a warning: managed memory populates on touch anyway); on a
  // backend that does not populate on touch (vmm), populates it whatever the
  // policy and returns the backend's error.
  absl::Status PrefetchPopulated(Role role, void* p, std::size_t bytes, Stream stream);
  // LargeHeap::Populate: grows `seg` in place (prefetching for its role).
  absl::Status PopulateInPlace(Segment* seg, std::uintptr_t addr, std::size_t n, Stream stream);
  // A segment of `populate` bytes (populated) cut from a reserve of `role`'s
  // heap, when the map limit or the backend refused a new mapping; nullptr
  // when no reserve is large enough.
  absl::StatusOr<Segment*> CutSegment(Role role, std::size_t populate, Stream stream);
  // Before populating `want` more bytes for `role`: if that would raise the
  // reserved bytes above their high-water mark and above give_back_slack
  // over the peak live bytes (live_high_), free pages of the spaces of
  // `h` are given back until it would not (or none is left): those free the
  // longest first across `space` and the short-lived roles' spaces, then
  // slab space's, the KV cache's and the weights' (LargeHeap::Depopulate).
  // Where pages populate on touch, blocks freed on `stream` go too, dropped
  // there; on vmm ready blocks go first (no wait), then those freed on
  // `stream`, whose drop waits on the host for it.
  // Not for plain device memory or host-preferred roles, not during a graph
  // capture, and never again once the backend cannot drop pages. A failed
  // drop changes nothing.
  // `keep`: pages about to be taken (LargeHeap::BareShortfall), kept.
  // `keep_tail`: `space`'s free tails stay (a growth in place extends them);
  // false when bare pages elsewhere will serve the request.
  // `request`: the allocation's bytes (a repeated one may grow into a band instead).
  void GiveBackFreePages(Role role, Heap& h, LargeHeap& space, std::size_t want,
                         std::size_t request, Stream stream, LargeHeap::PageRange keep,
                         bool keep_tail);
  // One pass of GiveBackFreePages: the free pages droppable for a caller on
  // `stream` (with the blocks freed on it if `own_stream`), oldest first as
  // that comment says, dropped on `on`, until `need` is covered (lowered by
  // what went).
  void GiveBackOldest(Role role, Heap& h, LargeHeap& space, Stream stream, bool own_stream,
                      Stream on, LargeHeap::PageRange keep, bool keep_tail, std::size_t& need);
  // Whether free pages of `role` may be given back now (the conditions
  // GiveBackFreePages lists).
  bool MayGiveBack(Role role) const;
  // The stream drops for a caller on `stream` go on; *own_stream: whether
  // blocks freed on `stream` may go too (LargeHeap::Depopulate).
  Stream DropStream(Stream stream, bool* own_stream);
  // Drops `ranges` on `stream` (recording drop_event_ there) and takes them
  // off the reserved bytes.
  absl::Status DropPages(const std::vector<LargeHeap::PageRange>& ranges, Stream stream);
  // Refill's backend part, for any populate over bare pages (Refill, a
  // growth over a bare tail): waits for other streams' drops, then
  // populates [addr, addr + n) on the GPU. No accounting but the count.
  absl::Status RefillPages(std::uintptr_t addr, std::size_t n, Stream stream);
  // Waits (host-blocking) until every drop queued so far has run.
  absl::Status WaitForDrops();
  // Registers a new segment (pagemap, registry, mapping pieces).
  Segment* Register(std::unique_ptr<Segment> seg, bool cut);
  // Drops a wholly free segment; its mapping is unmapped with its last piece.
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
  std::size_t map_limit_ ABSL_GUARDED_BY(grow_mu_);  // raised with the cap
  std::array<int, kNumRoles> heap_of_{};
  std::array<int, kNumRoles> space_of_{};  // whose large space each role's blocks use
  std::array<bool, kNumRoles> shared_space_{};  // large spaces serving several roles
  std::vector<std::unique_ptr<Heap>> heaps_;

  // The last drop queued on each stream (an event recorded after it); a
  // refill waits for those of the other streams (lock order: a space's
  // mutex -> drop_mu_; never with grow_mu_).
  Mutex drop_mu_;
  absl::flat_hash_map<Stream, Event> drop_events_ ABSL_GUARDED_BY(drop_mu_);
  std::atomic<bool> can_drop_{true};

  mutable Mutex grow_mu_;
  std::size_t reserved_ ABSL_GUARDED_BY(grow_mu_) = 0;  // populated bytes, under capacity_
  // The most reserved_ has been (stats resets do not touch it): growth past
  // it, and past give_back_slack above live_high_, first gives back free
  // pages (GiveBackFreePages).
  std::size_t reserved_high_ ABSL_GUARDED_BY(grow_mu_) = 0;
  // The most live (allocated) bytes seen at a growth, plus its request.
  std::size_t live_high_ ABSL_GUARDED_BY(grow_mu_) = 0;
  // Requests that met the limit since live_high_ last rose, by size.
  static constexpr int kRepeatsBeforeBand = 5;
  static constexpr double kRepeatBand = 0.01;
  static constexpr std::size_t kMaxRepeatSizes = 1024;
  absl::flat_hash_map<std::size_t, int> repeats_ ABSL_GUARDED_BY(grow_mu_);
  // Carved into slabs now, by the slabs' role (a heap's: its roles' sum).
  std::array<std::size_t, kNumRoles> slab_bytes_by_role_ ABSL_GUARDED_BY(grow_mu_){};
  std::size_t HeapSlabBytes(int heap) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(grow_mu_);
  // Reserved bytes less the live blocks the pool evicted (they hold no GPU
  // memory, so the cap leaves them out); `host` gets the latter.
  std::size_t OnGpuLocked(std::size_t* host) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(grow_mu_);
  std::size_t mapped_ ABSL_GUARDED_BY(grow_mu_) = 0;    // mapped bytes, under map_limit_
  std::size_t capacity_ ABSL_GUARDED_BY(grow_mu_);
  std::atomic<std::size_t> capacity_view_;  // capacity_, read without the lock
  absl::flat_hash_map<Segment*, std::unique_ptr<Segment>> segments_ ABSL_GUARDED_BY(grow_mu_);
  // Each mapping: its size, its role (backend), how many segments share it.
  struct MappingPieces {
    std::size_t bytes = 0;
    Role role = Role::kDefault;
    int pieces = 0;
  };
  absl::flat_hash_map<void*, MappingPieces> mappings_ ABSL_GUARDED_BY(grow_mu_);
  // Unmapped segments are kept until the pool dies: a racing lookup of a
  // stale pointer may still read them.
  std::vector<std::unique_ptr<Segment>> retired_ ABSL_GUARDED_BY(grow_mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_ARENA_H_
