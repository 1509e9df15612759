// src/pool/large_heap.h: large blocks (above the largest size class) of one role.
//
// Requests are rounded to 2 MiB. Each backend allocation is a Segment, split
// into address-ordered blocks. A free block sits in the best-fit set of the
// stream it was freed on, or in the any-stream ready set once fences on its
// streams have completed, or on the pending list in between. Adjacent free
// blocks merge when they are reusable on the same terms (same stream, or both
// ready). Best fit: the smallest free block that is large enough among the
// caller's stream and the ready set; the remainder of a split stays free.
//
// Thread safety: every method takes the heap's mutex (large allocations are
// rare and expensive next to it). Lock order: heap -> fencer.
#ifndef UMPOOL_SRC_POOL_LARGE_HEAP_H_
#define UMPOOL_SRC_POOL_LARGE_HEAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "src/pool/fence.h"
#include "src/pool/snapshot.h"
#include "src/pool/span.h"

namespace umpool::internal {

struct LargeBlock;
class LargeHeap;

class Segment final : public Span {
 public:
  Segment(std::uintptr_t base, std::size_t bytes, Role role, void* map_ptr, std::size_t map_bytes)
      : Span(SpanKind::kSegment, base, bytes, role), map_ptr(map_ptr), map_bytes(map_bytes) {}
  LargeBlock* first = nullptr;  // guarded by the owning heap's mutex
  // What the backend mapped (base/bytes is its 2 MiB-aligned part).
  void* const map_ptr;
  const std::size_t map_bytes;
  bool prefetched = false;  // prefetched to the GPU when mapped (set before publication)
  // The heap that holds it now (segments move between heaps only while
  // wholly free, so a free of one of its blocks never races a move).
  std::atomic<LargeHeap*> space{nullptr};
};

struct LargeBlock {
  enum class Where : std::uint8_t { kStream, kPending, kReady };
  std::uintptr_t addr = 0;
  std::size_t size = 0;
  Segment* segment = nullptr;
  LargeBlock* prev = nullptr;  // address order within the segment
  LargeBlock* next = nullptr;
  bool live = false;
  Where where = Where::kReady;     // when free
  Stream stream = nullptr;         // kStream: the stream it was freed on
  std::uint64_t seq = 0;           // kStream: Fencer stamp of the free
  absl::InlinedVector<FenceRef, 2> fences;  // kPending
  absl::InlinedVector<Stream, 2> recorded;  // live: RecordStream streams
};

class LargeHeap {
 public:
  // Blocks are multiples of `quantum`; a free block is split only when at
  // least `min_split` bytes would be left over (else the caller gets it all).
  // `holds_slabs`: its blocks are slab ranges, never handed to users.
  LargeHeap(std::size_t quantum, std::size_t min_split, bool holds_slabs)
      : quantum_(quantum), min_split_(min_split), holds_slabs_(holds_slabs) {}
  bool holds_slabs() const { return holds_slabs_; }
  ~LargeHeap();
  LargeHeap(const LargeHeap&) = delete;
  LargeHeap& operator=(const LargeHeap&) = delete;

  // A block of `bytes` (a multiple of 2 MiB) usable on `stream`, or nullptr
  // when the heap must grow. *cross_stream is set when the block came from the
  // any-stream set.
  // *seq (if not null) is the Fencer stamp of the free when the block came
  // from the caller's own stream set (reusable at once on `stream` only).
  // *got is the block's size: `bytes`, or more when the rest was too small to split off.
  absl::StatusOr<void*> Take(std::size_t bytes, Stream stream, Fencer& fencer, bool* cross_stream,
                             std::uint64_t* seq, std::size_t* got);
  // Adds a fresh segment and carves `bytes` from its front for `stream`.
  void* AddSegmentAndTake(Segment* segment, std::size_t bytes, std::size_t* got);

  // Frees the block at `p` (freed on `stream`). Returns its size.
  // InvalidArgument: not a block start of this heap. FailedPrecondition: already free.
  // Unavailable (nothing changed): the block was named by RecordStream and a
  // graph capture is underway, so its fences cannot be recorded yet.
  absl::StatusOr<std::size_t> Free(std::uintptr_t p, Stream stream, Fencer& fencer);
  absl::Status RecordStream(std::uintptr_t p, Stream stream);
  // Frees the live block at `p` (an empty slab's range) on `terms`. Aborts if
  // `p` is not a live block start (an internal error, not user input).
  void GiveBack(std::uintptr_t p, ReuseTerms terms);
  absl::StatusOr<std::size_t> BlockSize(std::uintptr_t p) const;
  // BlockSize for a block about to be discarded and freed; FailedPrecondition
  // if RecordStream named other streams (they may still read it).
  absl::StatusOr<std::size_t> DiscardableSize(std::uintptr_t p) const;
  // The live block containing p (p may be interior): start and size.
  absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> Containing(std::uintptr_t p) const;

  // Removes and returns the smallest wholly free, ready segment of at least
  // `min_bytes` (polling pending fences first), or nullptr.
  Segment* StealFreeSegment(std::size_t min_bytes, std::size_t max_bytes, Stream stream,
                            Fencer& fencer, ReuseTerms* terms);
  // Takes a wholly free segment from another heap.
  void AdoptSegment(Segment* segment, const ReuseTerms& terms);

  // Waits for every pending fence, then moves every segment that is entirely
  // free into `empty` (the caller unmaps them).
  absl::Status ReleaseFree(Fencer& fencer, std::vector<Segment*>* empty);

  std::int64_t segments() const;
  // Bytes of the segments it holds. Approximate without the lock.
  std::size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  std::size_t free_bytes() const;
  // Address order, sizes, no two mergeable neighbours, set membership. Aborts.
  void CheckInvariants() const;
  // Appends a picture of each segment: its blocks in address order.
  void Snapshot(std::vector<SpanSnapshot>* out) const;

 private:
  struct BySize {
    bool operator()(const LargeBlock* a, const LargeBlock* b) const {
      return a->size != b->size ? a->size < b->size : a->addr < b->addr;
    }
  };
  using FreeSet = std::set<LargeBlock*, BySize>;

  FreeSet& SetOf(LargeBlock* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Registers a segment as one ready block covering it (not yet in a set).
  LargeBlock* AddSegment(Segment* segment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LargeBlock* Pick(std::size_t bytes, Stream stream, bool* ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InsertFree(LargeBlock* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Split(LargeBlock* b, std::size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PollPending(Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FenceOthers(Stream stream, Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Diagnose(std::uintptr_t p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::size_t quantum_;
  const std::size_t min_split_;
  const bool holds_slabs_;
  std::atomic<std::size_t> bytes_{0};
  mutable Mutex mu_;
  FreeSet ready_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Stream, FreeSet> by_stream_ ABSL_GUARDED_BY(mu_);
  std::vector<LargeBlock*> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::uintptr_t, LargeBlock*> live_ ABSL_GUARDED_BY(mu_);
  std::vector<Segment*> segments_ ABSL_GUARDED_BY(mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_LARGE_HEAP_H_
