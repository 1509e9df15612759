// LargeHeap: slab ranges carved from a large space (RolePolicy::slab_space_max_bytes). A slab
// must start at a 2 MiB boundary and hold whole pages (the pagemap names one span per page), so
// the range is cut out of a free block at its first aligned address, the pieces before and after
// it staying free blocks of the space: best-fit neighbours for the role's large blocks.
#include <utility>

#include "src/base/check.h"
#include "src/pool/large_heap.h"

namespace umpool::internal {
namespace {

std::uintptr_t AlignUp(std::uintptr_t a) {
  return (a + kMapGranularity - 1) & ~(kMapGranularity - 1);
}

bool HoldsAligned(const LargeBlock* b, std::size_t bytes) {
  return AlignUp(b->addr) + bytes <= b->addr + b->size;
}

}  // namespace

LargeHeap::Taken LargeHeap::TakeSlabRange(std::size_t bytes, Stream stream, Fencer& fencer) {
  MutexLock lock(&mu_);
  Unpark();
  // The caller's own blocks that another stream's search fenced are its to reuse at once, as in
  // Take's search (else the arena made it wait on its own fence for them: AdoptPending). Other
  // streams' blocks stay out of its slab ranges: brought in as Take's search does (OpenSearch),
  // no host replay gained clearly and one lost (one-role per-layer seed 1: 1.0080 -> 1.0100 of
  // peak live; docs/arena-streams.md, "Adoption in one step; a slab range's own fenced blocks").
  free_.TakeOwnPending(stream, Adopter(stream, fencer));
  auto fits = [bytes](const LargeBlock* b) { return HoldsAligned(b, bytes); };
  BestFitSet* own = free_.Own(stream);
  LargeBlock* b = own != nullptr ? own->BestFitWhere(bytes, fits) : nullptr;
  LargeBlock* r = free_.ready().BestFitWhere(bytes, fits);
  const bool from_ready = r != nullptr && (b == nullptr || r->size < b->size);
  if (from_ready) b = r;
  if (b == nullptr) return Taken{};
  Taken t;
  t.cross_stream = from_ready;
  t.seq = from_ready ? 0 : free_.StampOf(stream);
  SetOf(b).Erase(b);
  const std::uintptr_t start = AlignUp(b->addr);
  LargeBlock* front = nullptr;
  if (start > b->addr) {
    front = b;
    b = CutAt(front, start - front->addr);
  }
  Split(b, bytes, /*min_rest=*/quantum_);  // the rest stays free on b's terms
  MarkSlab(b, stream);
  // The front too, filed again: smaller, it may merge where b could not (a
  // ready block joins a stream's only if no larger).
  if (front != nullptr) {
    InsertFree(front, front->where == Where::kStream ? free_.StampOf(front->stream) : 0);
  }
  t.ptr = reinterpret_cast<void*>(b->addr);
  t.bytes = b->size;
  return t;
}

void LargeHeap::MarkSlab(LargeBlock* b, Stream stream) {
  MarkLive(b, stream, 0);
  b->slab = true;
  slab_bytes_.fetch_add(b->size, std::memory_order_relaxed);
}

std::uintptr_t LargeHeap::TrimToSlab(std::uintptr_t p, std::size_t bytes, Stream stream,
                                     std::uint64_t seq) {
  MutexLock lock(&mu_);
  LargeBlock* b = FindLive(p);
  UMPOOL_CHECK(b != nullptr && HoldsAligned(b, bytes) && b->recorded.empty(),
               "a slab range's block does not hold it");
  ForgetRole(b);
  live_.erase(p);
  // Pieces of a block just taken for `stream`: free as if freed on it now.
  auto free_piece = [&](LargeBlock* piece) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    piece->live = false;
    piece->where = Where::kStream;
    piece->stream = stream;
    piece->requested = 0;
    piece->freed_at = NextFreeTick();
    InsertFree(piece, seq);
  };
  const std::uintptr_t start = AlignUp(b->addr);
  LargeBlock* range = b;
  LargeBlock* front = nullptr;
  LargeBlock* back = nullptr;
  if (start > b->addr) {
    front = b;
    range = CutAt(front, start - front->addr);
  }
  if (range->size > bytes) back = CutAt(range, bytes);
  MarkSlab(range, stream);  // live before its pieces are filed, so that neither merges with it
  if (front != nullptr) free_piece(front);
  if (back != nullptr) free_piece(back);
  return start;
}

}  // namespace umpool::internal
