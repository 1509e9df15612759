// LargeHeap: taking, freeing, splitting and merging blocks. Segment-level
// operations (adding, stealing, releasing, pictures, checks) are in
// large_heap_segments.cc; lookups by address and the parked block in
// large_heap_index.cc.
#include "src/pool/large_heap.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/base/check.h"

namespace umpool::internal {

// Free neighbours merge when the result is reusable on terms both allow (see
// the header). Pending blocks and blocks of two different streams stay apart.
// A ready block joins a stream's block only when it is no larger: the result
// is that stream's alone, and a large ready range next to a small block just
// freed on a busy stream would be lost to every other stream until a fence
// (measured: a GPU test's 8 x 64 MiB on stream B grew the pool every round
// while the range they had used sat merged with A's block).
bool LargeHeap::CanMerge(const LargeBlock* a, const LargeBlock* b) {
  using W = LargeBlock::Where;
  if (a->live || b->live || a->where == W::kPending || b->where == W::kPending ||
      a->where == W::kParked || b->where == W::kParked) {
    return false;
  }
  if (a->bare || b->bare) return a->bare && b->bare;  // pages given back or not
  if (a->where == W::kReady && b->where == W::kReady) return true;
  if (a->where == W::kReady) return a->size <= b->size;
  if (b->where == W::kReady) return b->size <= a->size;
  return a->stream == b->stream;
}

LargeBlock* BestFitSet::BestFit(std::size_t bytes, bool tail_last) const {
  return BestFitWhere(bytes, [tail_last](const LargeBlock* b) {
    return !tail_last || !b->EndsGrowableSegment();
  });
}

LargeBlock* BestFitSet::PopFirst() {
  if (set_.empty()) return nullptr;
  LargeBlock* b = *set_.begin();
  Keep(set_.extract(set_.begin()));
  return b;
}

BestFitSet& LargeHeap::SetOf(LargeBlock* b) {
  if (b->bare) return bare_;
  if (b->where == Where::kReady) return free_.ready();
  BestFitSet* own = free_.Own(b->stream);
  UMPOOL_CHECK(b->where == Where::kStream && own != nullptr, "free block outside its group");
  return *own;
}

std::uint64_t LargeHeap::NextFreeTick() {
  // One clock for every heap of the process, so that ages compare across
  // spaces (only their order matters).
  static std::atomic<std::uint64_t> tick{0};
  return tick.fetch_add(1, std::memory_order_relaxed) + 1;
}

void LargeHeap::Absorb(LargeBlock* lo, LargeBlock* hi) {
  lo->size += hi->size;
  lo->freed_at = std::max(lo->freed_at, hi->freed_at);
  lo->next = hi->next;
  if (hi->next != nullptr) hi->next->prev = lo;
  if (hi->segment->last == hi) hi->segment->last = lo;
  if (hi->where == Where::kStream) {
    lo->where = Where::kStream;
    lo->stream = hi->stream;
  }
  Recycle(hi);
}

void LargeHeap::InsertFree(LargeBlock* b, std::uint64_t seq) {
  // Merge with neighbours reusable on the same terms; they leave their groups.
  // A merge can make the grown block mergeable with the next neighbour out
  // (a ready block no larger than it): repeat until nothing merges.
  for (bool merged = true; merged;) {
    merged = false;
    if (LargeBlock* p = b->prev; p != nullptr && CanMerge(p, b)) {
      SetOf(p).Erase(p);
      Absorb(p, b);
      b = p;
      merged = true;
    }
    if (LargeBlock* n = b->next; n != nullptr && CanMerge(b, n)) {
      SetOf(n).Erase(n);
      Absorb(b, n);
      merged = true;
    }
  }
  // A merged stream block keeps its group's stamp, which covers both halves:
  // the group's stamp is the newest of every free in it.
  if (b->where == Where::kStream) {
    free_.OnStream(b->stream, seq).Add(b);
  } else {
    free_.ready().Add(b);
  }
}

void LargeHeap::MakeReady(BestFitSet&& blocks) {
  // Not mergeable until filed, so that a neighbour in the same batch is never
  // absorbed while it still sits in `blocks`.
  blocks.MarkPending();
  while (LargeBlock* b = blocks.PopFirst()) {
    b->where = Where::kReady;
    InsertFree(b, 0);
  }
}

void LargeHeap::Split(LargeBlock* b, std::size_t bytes, std::size_t min_rest) {
  if (b->size == bytes || b->size - bytes < min_rest) return;
  LargeBlock* rest = CutAt(b, bytes);
  // b could not merge with its next neighbour; its smaller rest may (a ready
  // rest no larger than a stream's block). b is leaving the free groups.
  while (LargeBlock* n = rest->next) {
    if (!CanMerge(rest, n)) break;
    SetOf(n).Erase(n);
    Absorb(rest, n);
  }
  if (rest->where == Where::kStream) {
    free_.OnStream(rest->stream, free_.StampOf(rest->stream)).Add(rest);
  } else {
    SetOf(rest).Add(rest);
  }
}

LargeBlock* LargeHeap::NewBlock() {
  if (spare_blocks_.empty()) return new LargeBlock;
  LargeBlock* b = spare_blocks_.back();
  spare_blocks_.pop_back();
  b->addr = 0;
  b->size = 0;
  b->segment = nullptr;
  b->prev = b->next = nullptr;
  b->live = false;
  b->where = Where::kReady;
  b->stream = nullptr;
  b->requested = 0;
  b->evicted = false;
  b->slab = false;
  b->bare = false;
  b->freed_at = 0;
  b->recorded.clear();
  return b;
}

void LargeHeap::Recycle(LargeBlock* b) {
  if (spare_blocks_.size() < kSpareBlocks) {
    spare_blocks_.push_back(b);
  } else {
    delete b;
  }
}

std::size_t LargeHeap::MinRest(const LargeBlock* b) const {
  // A rest that ends the populated part of a segment with a reserve is never
  // a stranded sliver: it merges with the segment's next growth.
  return b->EndsGrowableSegment() ? quantum_ : min_split_;
}

void LargeHeap::MarkLive(LargeBlock* b, Stream stream, std::size_t requested) {
  b->live = true;
  b->evicted = false;
  b->stream = stream;
  b->requested = requested;
  live_[b->addr] = b;
}

LargeHeap::Taken LargeHeap::Take(std::size_t bytes, Stream stream, std::size_t requested,
                                 Fencer& fencer, absl::Status* status) {
  MutexLock lock(&mu_);
  if (LargeBlock* b = TakeParked(bytes, stream, requested); b != nullptr) {
    return Taken{reinterpret_cast<void*>(b->addr), b->size, false, parked_seq_};
  }
  Unpark();
  if (fit_ == Fit::kFirst) return TakeFirstFit(bytes, stream, requested, fencer, status);
  OpenSearch(stream, fencer, status);
  const bool tail_last = fit_ == Fit::kBestTailLast;
  bool from_ready = false;
  // Best fit over the caller's stream group and the ready group together.
  auto pick = [&](BestFitSet* own, BestFitSet& ready) -> LargeBlock* {
    LargeBlock* best = own != nullptr ? own->BestFit(bytes, tail_last) : nullptr;
    LargeBlock* r = ready.BestFit(bytes, tail_last);
    from_ready = r != nullptr && (best == nullptr || r->size < best->size);
    return from_ready ? r : best;
  };
  auto to_ready = [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    MakeReady(std::move(blocks));
  };
  LargeBlock* b = free_.TakeReusable(stream, fencer, pick, to_ready, status, Adopter(stream, fencer));
  // No block alone: neighbours usable on `stream` together, before other
  // streams are fenced (and again after: fencing makes blocks ready).
  if (b == nullptr) {
    if (Taken j = TakeJoined(bytes, stream, requested); j.ptr != nullptr) return j;
    b = free_.TakeFenced(stream, fencer, pick, to_ready, status);
  }
  if (b == nullptr) {
    Taken j = TakeJoined(bytes, stream, requested);
    return j.ptr == nullptr && tail_last ? TakeTail(bytes, stream, requested) : j;
  }
  Taken t;
  t.cross_stream = from_ready;
  t.seq = from_ready ? 0 : free_.StampOf(stream);
  return Carve(b, bytes, stream, requested, t);
}

LargeHeap::Taken LargeHeap::TakeTail(std::size_t bytes, Stream stream, std::size_t requested) {
  LargeBlock* best = nullptr;
  for (Segment* s : segments_) {
    LargeBlock* b = s->last;
    if (InRun(b, stream) && b->size >= bytes && b->EndsGrowableSegment() &&
        (best == nullptr || b->size < best->size)) {
      best = b;
    }
  }
  if (best == nullptr) return Taken{};
  Taken t;
  t.cross_stream = best->where == Where::kReady;
  t.seq = t.cross_stream ? 0 : free_.StampOf(stream);
  return Carve(best, bytes, stream, requested, t);
}

LargeHeap::Taken LargeHeap::Carve(LargeBlock* b, std::size_t bytes, Stream stream,
                                  std::size_t requested, Taken t) {
  SetOf(b).Erase(b);
  Split(b, bytes, MinRest(b));
  MarkLive(b, stream, requested);
  t.ptr = reinterpret_cast<void*>(b->addr);
  t.bytes = b->size;
  return t;
}

LargeHeap::Taken LargeHeap::AddSegmentAndTake(Segment* segment, std::size_t bytes, Stream stream,
                                              std::size_t requested) {
  MutexLock lock(&mu_);
  LargeBlock* b = AddSegment(segment);
  b->where = Where::kReady;
  Split(b, bytes, MinRest(b));
  MarkLive(b, stream, requested);
  return Taken{reinterpret_cast<void*>(b->addr), b->size, false, 0};
}

absl::Status LargeHeap::TakeAt(std::uintptr_t p, std::size_t bytes, Stream stream,
                               std::size_t requested, Fencer& fencer, Populate refill) {
  MutexLock lock(&mu_);
  Unpark();
  Segment* seg = nullptr;
  for (Segment* s : segments_) {
    if (s->Holds(p)) {
      seg = s;
      break;
    }
  }
  // Bare blocks the range touches come back first, whole (the caller's, merged:
  // the walk starts again after each).
  LargeBlock* b = seg != nullptr ? seg->first : nullptr;
  while (b != nullptr && b->addr < p + bytes) {
    if (!b->bare || b->addr + b->size <= p) {
      b = b->next;
      continue;
    }
    if (absl::Status st = refill(seg, b->addr, b->size); !st.ok()) return st;
    bare_.Erase(b);
    Unbare(b, stream, fencer);
    InsertFree(b, free_.StampOf(stream));
    b = seg->first;
  }
  for (int attempt = 0;; ++attempt) {
    b = seg != nullptr ? seg->first : nullptr;
    while (b != nullptr && b->addr + b->size <= p) b = b->next;
    const bool inside = b != nullptr && !b->live && b->addr <= p && p + bytes <= b->addr + b->size &&
                        (p - b->addr) % quantum_ == 0 && bytes != 0 && bytes % quantum_ == 0;
    const bool usable = inside && ReusableOn(b, stream);
    if (!usable && attempt == 0) {
      // Not reusable on `stream` yet, or split between free blocks on
      // different terms (a stream's block merges with a larger ready one
      // only once ready; refilled pages are the caller's): wait for the work
      // on them (this is rare: checkpoints are restored between graph
      // recordings), after which everything is ready and merged, and look
      // again.
      absl::Status st = free_.WaitAll(fencer, [this](BestFitSet&& blocks)
                                                  ABSL_NO_THREAD_SAFETY_ANALYSIS {
        MakeReady(std::move(blocks));
      });
      if (!st.ok()) return st;
      continue;
    }
    if (!inside) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot restore a ", bytes, "-byte block at 0x", absl::Hex(p),
          ": the range is not wholly inside one free block"));
    }
    if (!usable) return absl::InternalError("a waited-for block is still not ready");
    SetOf(b).Erase(b);
    if (p > b->addr) {  // the front stays free, filed where b was
      LargeBlock* front = b;
      Split(front, p - front->addr, /*min_rest=*/1);  // files the rest...
      b = front->next;
      SetOf(b).Erase(b);  // ...which is what we want: take it back out
      SetOf(front).Add(front);
    }
    Split(b, bytes, /*min_rest=*/1);
    MarkLive(b, stream, requested);
    return absl::OkStatus();
  }
}

absl::StatusOr<LargeHeap::Freed> LargeHeap::Free(std::uintptr_t p, std::optional<Stream> stream,
                                                 Fencer& fencer) {
  MutexLock lock(&mu_);
  LargeBlock* b = FindLive(p);
  if (b == nullptr) return Diagnose(p);
  const Stream freeing = stream.value_or(b->stream);
  // The freeing stream's own work needs no fence (free-on-stream rule).
  absl::InlinedVector<Stream, 2> others;
  for (Stream s : b->recorded) {
    if (s != freeing) others.push_back(s);
  }
  if (!others.empty() && fencer.capturing()) {
    // Its reuse must wait for events that cannot be recorded now.
    return absl::UnavailableError("a CUDA graph capture is underway");
  }
  const Freed freed{b->size, b->requested, freeing};
  ForgetRole(b);
  if (!others.empty()) {
    // Reuse waits for the freeing stream and every other recorded stream.
    Fences fences;
    absl::Status st;
    for (Stream s : others) {
      absl::StatusOr<FenceRef> f = fencer.FenceFor(s, fencer.Stamp());
      if (!f.ok()) {
        st = f.status();
        break;
      }
      fences.push_back(*std::move(f));
    }
    if (st.ok()) {
      absl::StatusOr<FenceRef> f = fencer.FenceFor(freeing, fencer.Stamp());
      if (f.ok()) fences.push_back(*std::move(f)); else st = f.status();
    }
    if (st.ok()) {
      live_.erase(p);
      b->live = false;
      b->freed_at = NextFreeTick();
      b->recorded.clear();
      BestFitSet one;
      one.Add(b);
      free_.AddPending(std::move(fences), std::move(one));
      return freed;
    }
    // Recording failed (the CUDA context is broken); fall back to the plain
    // free-on-stream rule, which a parked block follows too.
  }
  b->recorded.clear();
  Park(b, freeing, fencer.Stamp());
  return freed;
}

void LargeHeap::GiveBack(std::uintptr_t p, ReuseTerms terms) {
  MutexLock lock(&mu_);
  LargeBlock* b = FindLive(p);
  UMPOOL_CHECK(b != nullptr, "giving back a range that is not a live block");
  ForgetRole(b);
  live_.erase(p);
  b->live = false;
  if (b->slab) slab_bytes_.fetch_sub(b->size, std::memory_order_relaxed);
  b->slab = false;
  b->freed_at = NextFreeTick();
  if (!terms.fences.empty()) {
    BestFitSet one;
    one.Add(b);
    free_.AddPending(std::move(terms.fences), std::move(one));
    return;
  }
  b->where = terms.on_stream ? Where::kStream : Where::kReady;
  b->stream = terms.on_stream ? terms.stream : nullptr;
  InsertFree(b, terms.seq);
}

}  // namespace umpool::internal
