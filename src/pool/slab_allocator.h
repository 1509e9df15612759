// src/pool/slab_allocator.h: the size-class tier.
//
// One CentralBin per (heap, size class). A bin that runs dry gets a slab: a
// range of the arena's slab space carved into blocks of its class
// (GrowSlab); when no slab can be had from free memory usable now, the
// bin's pending blocks go first, behind a stream wait
// (PoolOptions::reuse_pending_blocks), then the slab space's own pending
// ranges, then growth. A slab whose blocks are all free (none in a thread
// cache) goes back to slab space when the arena would otherwise grow and on Trim
// (ReclaimEmptySlabs), on the terms its blocks had, so memory one class freed
// serves another class or a large block without a backend call. Slabs of
// classes above their role's slab_space_max_bytes come from its large space
// and go back as soon as more than kEmptySlabBytesKept of them are empty.
// Thread caches hand blocks back through CentralCache::Return.
//
// Thread safety: every method may be called from any thread. Lock order:
// bin -> fencer; slabs_mu_ and the arena's locks are taken alone.
#ifndef UMPOOL_SRC_POOL_SLAB_ALLOCATOR_H_
#define UMPOOL_SRC_POOL_SLAB_ALLOCATOR_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "src/pool/arena.h"
#include "src/pool/central_bin.h"
#include "src/pool/counters.h"
#include "src/pool/fence.h"
#include "src/pool/pagemap.h"
#include "src/pool/size_class.h"
#include "umpool/pool.h"
#include "umpool/stats.h"

namespace umpool::internal {

class SlabAllocator {
 public:
  // Empty slabs a class keeps in the large space (at least one).
  static constexpr std::size_t kEmptySlabBytesKept = std::size_t{16} << 20;
  SlabAllocator(Arena& arena, PageMap& pagemap, Fencer& fencer, PoolCounters& counters);
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // Writes up to `max` blocks of (role, class) usable on `stream` to `out`,
  // growing a slab when the bin has none. Returns how many (>= 1), or the
  // arena's error (ResourceExhausted at the cap). *grew: a segment was mapped.
  absl::StatusOr<int> Refill(Stream stream, Role role, int cls, void** out, int max, bool* grew);
  // Blocks freed on `stream`; blocks reusable by anyone now; a block that
  // waits for `fences`.
  void Return(Stream stream, Role role, int cls, void* const* blocks, int n);
  void ReturnReady(Role role, int cls, void* const* blocks, int n);
  void ReturnPending(Role role, int cls, Fences fences, void* block);

  // Gives heap `heap`'s empty slabs back to slab space (see CentralBin::TakeEmpty),
  // those of classes whose slabs are `min_slab_bytes` to `max_slab_bytes`.
  std::size_t ReclaimEmptySlabs(int heap, bool wait, absl::Status* status,
                                std::size_t min_slab_bytes = 0,
                                std::size_t max_slab_bytes = SIZE_MAX);
  // `stream`'s work has completed: its blocks become ready.
  void ReleaseStream(Stream stream);

  // Rows for classes that have slabs now.
  std::vector<ClassStats> Classes() const;
  void LiveBlocks(std::vector<BlockInfo>* out) const;
  void Snapshot(std::vector<SpanSnapshot>* out) const;
  // Bin lists, and every slab inside its segment and mapped. Aborts.
  void CheckInvariants() const;

 private:
  CentralBin& bin(Role role, int cls) { return (*bins_[arena_.heap_of(role)])[cls]; }
  // A slab for (role, class) from a range of slab space; without `may_grow`
  // only from free memory (nullptr when there is none).
  absl::StatusOr<Slab*> GrowSlab(Role role, int cls, Stream stream, bool* grew,
                                 bool may_grow = true);
  void ReturnSlab(Slab* slab, ReuseTerms terms);

  Arena& arena_;
  PageMap& pagemap_;
  Fencer& fencer_;
  PoolCounters& counters_;
  std::vector<std::unique_ptr<std::array<CentralBin, kNumClasses>>> bins_;  // per heap

  mutable Mutex slabs_mu_;
  absl::flat_hash_map<Slab*, std::unique_ptr<Slab>> slabs_ ABSL_GUARDED_BY(slabs_mu_);
  // Returned slabs are kept until the pool dies: a racing lookup of a stale
  // pointer may still read them (a slab object and the records array it
  // points to, which may serve a newer slab by then: still valid memory).
  std::vector<std::unique_ptr<Slab>> retired_ ABSL_GUARDED_BY(slabs_mu_);
  // Every records array made, and per (role, class) those of returned slabs,
  // for the next slab of that role and class: rebuilding a reclaimed slab
  // then allocates and initialises nothing (its records are all kFree; a
  // stale `evicted` flag means what it meant in the old slab: same size and
  // role, so the same discard rule). Bounded by the peak slab count.
  std::vector<Slab::Records> records_ ABSL_GUARDED_BY(slabs_mu_);
  absl::flat_hash_map<int, std::vector<BlockRecord*>> spare_records_ ABSL_GUARDED_BY(slabs_mu_);
  static int RecordsKey(Role role, int cls) { return static_cast<int>(role) * kNumClasses + cls; }
  BlockRecord* TakeRecords(Role role, int cls) ABSL_EXCLUSIVE_LOCKS_REQUIRED(slabs_mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLAB_ALLOCATOR_H_
