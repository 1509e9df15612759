// Arena: slab ranges, from a heap's slab spaces or from a role's large space
// (RolePolicy::slab_space_max_bytes), and the accounting of what slabs hold.
#include <algorithm>
#include <utility>

#include "src/pool/arena.h"

namespace umpool::internal {

absl::StatusOr<Arena::Range> Arena::TakeSlabRange(Role role, std::size_t bytes,
                                                  std::size_t block_bytes, Stream stream,
                                                  bool may_grow) {
  Heap& h = *heaps_[heap_of(role)];
  if (block_bytes <= options_.policy(role).slab_space_max_bytes) {
    return Take(role, h.SlabSpaceFor(bytes), /*for_slab=*/true, bytes, stream, 0, may_grow);
  }
  // From the role's large space: an aligned fit among its free blocks, else
  // a range one page larger by the whole search (growth included), trimmed.
  LargeHeap& space = h.large[space_of(static_cast<int>(role))];
  LargeHeap::Taken t = space.TakeSlabRange(bytes, stream, fencer_);
  // Pending free memory next, made the caller's behind a stream wait (as
  // Take does before growing): the one-page-larger search below could not
  // use a pending slab range of exactly `bytes` alone, and would grow the
  // space past it, or into it uncounted.
  absl::Status events;
  if (t.ptr == nullptr && may_grow && AdoptPending(space, stream, &events)) {
    t = space.TakeSlabRange(bytes, stream, fencer_);
    if (t.ptr != nullptr) counters_.Bump(counters_.ordered_reuses);
  }
  if (!events.ok() && !absl::IsUnavailable(events)) counters_.Bump(counters_.fence_errors);
  if (t.ptr != nullptr) {
    PrefetchIfNeeded(role, t.ptr, bytes, stream);
    return Range{t.ptr, bytes, t.cross_stream, t.seq, false};
  }
  absl::StatusOr<Range> r = Take(role, space, /*for_slab=*/true,
                                 bytes + kMapGranularity - kLargeQuantum, stream, 0, may_grow);
  if (!r.ok() || r->ptr == nullptr) return r;
  r->ptr = reinterpret_cast<void*>(space.TrimToSlab(reinterpret_cast<std::uintptr_t>(r->ptr),
                                                    bytes, stream, fencer_.Stamp()));
  r->bytes = bytes;
  return r;
}

void Arena::CoverSlab(Slab* slab) {
  MutexLock lock(&grow_mu_);
  pagemap_.Cover(slab->base, slab->bytes, slab);
  slab_bytes_by_role_[static_cast<int>(slab->role)] += slab->bytes;
  AddLargeReserved(-static_cast<std::int64_t>(slab->bytes));
}

std::size_t Arena::HeapSlabBytes(int heap) const {
  std::size_t bytes = 0;
  for (int r = 0; r < kNumRoles; ++r) {
    if (heap_of_[r] == heap) bytes += slab_bytes_by_role_[r];
  }
  return bytes;
}

std::size_t Arena::RoleReservedBytes(Role role) const {
  MutexLock lock(&grow_mu_);
  // A shared space: each guest role holds its live blocks there, the owner
  // the rest (its free pages included).
  const int r = static_cast<int>(role);
  const LargeHeap& space = heaps_[heap_of(role)]->large[space_of(r)];
  std::size_t large = 0;
  if (space_of(r) != r) {
    large = space.role_live_bytes(role);
  } else {
    large = space.bytes() - space.slab_range_bytes();  // counted with the slabs' roles
    for (int q = 0; q < kNumRoles; ++q) {
      if (q == r || space_of(q) != r) continue;
      large -= std::min(large, space.role_live_bytes(static_cast<Role>(q)));
    }
  }
  return large + slab_bytes_by_role_[r];
}

void Arena::GiveBackSlabRange(Slab* slab, ReuseTerms terms) {
  // The space its range came from holds its segment (a segment moves only
  // while wholly free).
  LargeHeap* space = static_cast<Segment*>(slab->carrier)->space.load(std::memory_order_acquire);
  {
    MutexLock lock(&grow_mu_);
    pagemap_.Cover(slab->base, slab->bytes, slab->carrier);
    slab_bytes_by_role_[static_cast<int>(slab->role)] -= slab->bytes;
  }
  AddLargeReserved(static_cast<std::int64_t>(slab->bytes));
  space->GiveBack(slab->base, std::move(terms));
}

}  // namespace umpool::internal
