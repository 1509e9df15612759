// src/pool/segment.h: one backend allocation (a segment) and its large blocks.
//
// A Segment is a 2 MiB-aligned range the pool mapped from its backend. Its
// front part, `populated` bytes, is in use: prefetched to the GPU (for roles
// that prefetch) and split into address-ordered LargeBlocks: user blocks
// (large spaces) or slab ranges (slab space). The rest is its reserve: mapped
// but never touched, so it costs no GPU memory (managed memory is backed only
// once touched); the space grows into it in place (LargeHeap::ExtendAndTake),
// which is how a space's free blocks merge across what used to be separate
// backend allocations. Which space holds it now is `space`; segments move
// between spaces only while wholly free.
#ifndef UMPOOL_SRC_POOL_SEGMENT_H_
#define UMPOOL_SRC_POOL_SEGMENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/container/inlined_vector.h"
#include "src/pool/span.h"
#include "umpool/types.h"

namespace umpool::internal {

class LargeHeap;
struct LargeBlock;

class Segment final : public Span {
 public:
  Segment(std::uintptr_t base, std::size_t bytes, Role role, void* map_ptr, std::size_t map_bytes)
      : Span(SpanKind::kSegment, base, bytes, role),
        limit(bytes),
        map_ptr(map_ptr),
        map_bytes(map_bytes) {}
  LargeBlock* first = nullptr;  // guarded by the owning heap's mutex
  LargeBlock* last = nullptr;   // the block ending at base + populated; same guard
  // Bytes from base in use (a 2 MiB multiple, at most `limit`); never
  // shrinks while the segment is mapped. Guarded by the owning heap's mutex.
  std::size_t populated = 0;
  // How far it may grow: `bytes`, less what was cut off its end for another
  // segment of the same mapping (Arena: cutting a reserve). Same guard.
  std::size_t limit = 0;
  // Bytes of its populated part given back (free blocks whose pages the pool
  // dropped: LargeBlock::bare). Same guard.
  std::size_t bare_bytes = 0;
  // Its reserved bytes: the populated part less the pages given back.
  std::size_t reserved() const { return populated - bare_bytes; }
  // Whether p lies in this segment's own part of the mapping.
  bool Holds(std::uintptr_t p) const { return p - base < limit; }
  // What the backend mapped (base/bytes is its 2 MiB-aligned part, or the
  // part cut for this segment; several segments may share one mapping).
  void* const map_ptr;
  const std::size_t map_bytes;
  bool prefetched = false;  // prefetched to the GPU when mapped (set before publication)
  // The heap that holds it now (segments move between heaps only while
  // wholly free, so a free of one of its blocks never races a move).
  std::atomic<LargeHeap*> space{nullptr};
};

// A block of a segment, live or free. Guarded by the owning heap's mutex.
struct LargeBlock {
  // Which group of the heap's StreamLists holds it while free: on `stream`,
  // pending (never merged) or ready; or parked: freed on `stream` and kept
  // whole, in no group, for the next request of its size on that stream
  // (LargeHeap's fast path; never merged until it leaves the spot).
  enum class Where : std::uint8_t { kStream, kPending, kReady, kParked };
  std::uintptr_t addr = 0;
  std::size_t size = 0;
  Segment* segment = nullptr;
  LargeBlock* prev = nullptr;  // address order within the segment
  LargeBlock* next = nullptr;
  bool live = false;
  Where where = Where::kReady;    // when free
  Stream stream = nullptr;        // free, kStream: the stream it was freed on;
                                  // live: the stream it was allocated for
  std::size_t requested = 0;      // live: what the caller asked for
  bool evicted = false;           // live: the pool evicted some of it (discard on free)
  // live: a slab's range carved from a large space (2 MiB-aligned whole
  // pages; RolePolicy::slab_space_max_bytes), not a user block.
  bool slab = false;
  // live: the role it was allocated for when its space serves several
  // (PoolOptions::activations_share_kv_space; set by the arena after the
  // take); -1: the segment's role.
  std::int8_t role = -1;
  // Free, its pages given back to the backend (dropped) to make room for a
  // growth: 2 MiB-aligned, always ready (no stream's work touches it), in the
  // heap's bare set, merging only with bare neighbours. Taking it refills
  // its pages first (LargeHeap::TakeBare).
  bool bare = false;
  // Free: when the newest of its parts was freed (LargeHeap's free clock,
  // read when a freed block is filed: a parked block's starts when it leaves
  // the spot; 0: never handed out). Pages free the longest are given back
  // first.
  std::uint64_t freed_at = 0;
  absl::InlinedVector<Stream, 2> recorded;  // live: RecordStream streams
  // It ends the populated part of a segment that can still grow: the
  // space's growth extends it (a free one: the segment's free tail).
  bool EndsGrowableSegment() const {
    return segment->last == this && segment->populated < segment->limit;
  }
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SEGMENT_H_
