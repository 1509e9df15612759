// LargeHeap::TakeJoined: a request that no single free block serves, served
// by neighbours that are each reusable on its stream (ready, or freed on
// it) but stayed apart under the merge rules (large_heap.cc, CanMerge): a
// ready block larger than the stream's blocks either side of it keeps to
// itself, so that other streams can still use it. The request's own stream
// may use all of them at once, so they are joined for it rather than the
// space growing. A first-fit space (LargeHeap::Fit::kFirst) takes such runs
// too, one block or more, the lowest-addressed first.
#include <cstdint>

#include "src/pool/large_heap.h"

namespace umpool::internal {

LargeHeap::Join LargeHeap::FindJoin(std::size_t bytes, Stream stream) {
  Join best;
  std::size_t best_bytes = SIZE_MAX;
  // A tail-last space's runs stop before a growable segment's free tail.
  const bool tail_last = fit_ == Fit::kBestTailLast;
  auto in_run = [&](const LargeBlock* b) {
    return InRun(b, stream) && !(tail_last && b->EndsGrowableSegment());
  };
  // Each run of usable neighbours once, from its first block: the fewest
  // bytes of consecutive blocks (two or more) that hold the request.
  auto scan = [&](LargeBlock* first) {
    if (!in_run(first) || in_run(first->prev)) return;  // not a run's first block
    LargeBlock* lo = first;
    std::size_t sum = 0;
    for (LargeBlock* hi = first; in_run(hi); hi = hi->next) {
      sum += hi->size;
      while (lo != hi && sum - lo->size >= bytes) {
        sum -= lo->size;
        lo = lo->next;
      }
      if (sum >= bytes && lo != hi && sum < best_bytes) {
        best = Join{lo, hi};
        best_bytes = sum;
      }
    }
  };
  if (BestFitSet* own = free_.Own(stream)) own->ForEach(scan);
  free_.ready().ForEach(scan);
  return best;
}

LargeHeap::Join LargeHeap::FindFirstFit(std::size_t bytes, Stream stream) {
  // A walk over every block of the space: meant for spaces of few blocks
  // (the big-slab space holds tens), asked only when a class has no slab.
  for (Segment* s : segments_) {
    for (LargeBlock* lo = s->first; lo != nullptr; lo = lo->next) {
      if (!InRun(lo, stream)) continue;
      std::size_t sum = 0;
      LargeBlock* hi = lo;
      for (;; hi = hi->next) {
        sum += hi->size;
        if (sum >= bytes) return Join{lo, hi};
        if (!InRun(hi->next, stream)) break;
      }
      lo = hi;  // the run is too small: go on after it
    }
  }
  return Join{};
}

bool LargeHeap::HeldBelow(const LargeBlock* lo, Stream stream) const {
  for (Segment* s : segments_) {
    for (const LargeBlock* b = s->first; b != nullptr; b = b->next) {
      if (b == lo) return false;
      if (!b->live && !b->bare && !ReusableOn(b, stream) && b->where != Where::kParked) {
        return true;
      }
    }
  }
  return false;
}

LargeHeap::Taken LargeHeap::TakeFirstFit(std::size_t bytes, Stream stream, std::size_t requested,
                                         Fencer& fencer, absl::Status* status) {
  auto pick = [&](BestFitSet*, BestFitSet&) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return FindFirstFit(bytes, stream);
  };
  auto to_ready = [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    MakeReady(std::move(blocks));
  };
  Join j = free_.TakeReusable(stream, fencer, pick, to_ready, status, Adopter(stream, fencer));
  // Free blocks of other streams (or pending) below the run found could
  // make a lower run once fenced: first fit places by address, and a run
  // pushed up by a block another stream freed a moment ago pushes the next
  // slabs up with it (docs/arena-cycles.md, "First fit for big slabs").
  if (!j || HeldBelow(j.lo, stream)) {
    if (Join f = free_.TakeFenced(stream, fencer, pick, to_ready, status)) {
      j = f;
    } else if (j) {
      j = FindFirstFit(bytes, stream);  // fencing may have merged j's blocks
    }
  }
  return j ? TakeJoin(j, bytes, stream, requested) : Taken{};
}

LargeHeap::Taken LargeHeap::TakeJoined(std::size_t bytes, Stream stream, std::size_t requested) {
  const Join j = FindJoin(bytes, stream);
  if (j.lo == nullptr) return Taken{};
  return TakeJoin(j, bytes, stream, requested);
}

LargeHeap::Taken LargeHeap::TakeJoin(Join j, std::size_t bytes, Stream stream,
                                     std::size_t requested) {
  // What the request does not need of the last block (a ready one) stays
  // ready: only the part it takes joins the stream's terms.
  const bool last_ready = j.hi->where == Where::kReady;
  const std::uintptr_t last_start = j.hi->addr;
  const std::uintptr_t last_end = j.hi->addr + j.hi->size;
  const LargeBlock* const after = j.hi->next;
  LargeBlock* b = j.lo;
  SetOf(b).Erase(b);
  while (b->next != after) {
    LargeBlock* n = b->next;
    SetOf(n).Erase(n);
    Absorb(b, n);  // a stream block's terms win: the result is `stream`'s
  }
  // Out of every group now, as Carve leaves a block: split and hand out.
  const bool own = b->where == Where::kStream;
  Split(b, bytes, MinRest(b));
  MarkLive(b, stream, requested);
  const Taken t{reinterpret_cast<void*>(b->addr), b->size, /*cross_stream=*/!own,
                own ? free_.StampOf(stream) : 0};
  LargeBlock* rest = b->next;
  if (last_ready && own && rest != nullptr && !rest->live && rest->where == Where::kStream &&
      rest->addr >= last_start && rest->addr + rest->size <= last_end) {
    SetOf(rest).Erase(rest);
    rest->where = Where::kReady;
    rest->stream = nullptr;
    InsertFree(rest, 0);
  }
  return t;
}

}  // namespace umpool::internal
