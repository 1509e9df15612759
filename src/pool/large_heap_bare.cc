// LargeHeap: bare blocks, free ranges whose pages the pool gave back before
// populating more (docs/arena.md, "Bare blocks"): making them, taking them
// (refilled), and the accounting that keeps reserved bytes = populated - bare.
#include <algorithm>
#include <utility>

#include "src/base/check.h"
#include "src/pool/large_heap.h"

namespace umpool::internal {

LargeBlock* LargeHeap::CutAt(LargeBlock* b, std::size_t at) {
  LargeBlock* r = NewBlock();
  r->addr = b->addr + at;
  r->size = b->size - at;
  r->segment = b->segment;
  r->prev = b;
  r->next = b->next;
  if (b->next != nullptr) b->next->prev = r;
  b->next = r;
  if (b->segment->last == b) b->segment->last = r;
  b->size = at;
  r->where = b->where;
  r->stream = b->stream;
  r->bare = b->bare;
  r->freed_at = b->freed_at;  // its pages were freed when b's were
  return r;
}

void LargeHeap::InsertBare(LargeBlock* b) {
  if (LargeBlock* p = b->prev; p != nullptr && p->bare) {
    bare_.Erase(p);
    Absorb(p, b);
    b = p;
  }
  if (LargeBlock* n = b->next; n != nullptr && n->bare) {
    bare_.Erase(n);
    Absorb(b, n);
  }
  bare_.Add(b);
}

// What stays free of the refilled pages is `stream`'s, and other streams reuse it behind a fence
// on `stream`: one recorded after the refill, hence after the wait for the drop. Under the
// group's older stamp, a fence recorded before the refill could cover it, and a third stream took
// the pages while the work that last used them on the dropping stream was still running
// (model_test's concurrent phase, in CI on 9dd5c7b; BareBlocksTest.
// TheRestOfPagesRefilledForAnotherStreamWaitsForTheirDrop).
void LargeHeap::Unbare(LargeBlock* b, Stream stream, Fencer& fencer) {
  b->bare = false;
  b->where = Where::kStream;
  b->stream = stream;
  b->segment->bare_bytes -= b->size;
  bytes_.fetch_add(b->size, std::memory_order_relaxed);
  bare_total_.fetch_sub(b->size, std::memory_order_relaxed);
  free_.OnStream(stream, fencer.Stamp());
}

template <typename Fn>
void LargeHeap::ForEachDroppable(Stream stream, bool own_stream, bool keep_tails, PageRange keep,
                                 Fn fn) {
  auto consider = [&](LargeBlock* b) {
    if (b->addr < keep.addr + keep.bytes && keep.addr < b->addr + b->size) return;
    const std::uintptr_t lo = (b->addr + kMapGranularity - 1) & ~(kMapGranularity - 1);
    const std::uintptr_t hi = (b->addr + b->size) & ~(kMapGranularity - 1);
    if (hi <= lo) return;
    if (keep_tails && b->EndsGrowableSegment()) return;  // the growth's to extend
    fn(b, PageRange{lo, hi - lo});
  };
  free_.ready().ForEach(consider);
  BestFitSet* own = own_stream ? free_.Own(stream) : nullptr;
  if (own != nullptr) own->ForEach(consider);
}

void LargeHeap::DroppableAges(Stream stream, bool own_stream, bool keep_tails, PageRange keep,
                              std::vector<std::pair<std::uint64_t, std::size_t>>* out) {
  MutexLock lock(&mu_);
  Unpark();
  ForEachDroppable(stream, own_stream, keep_tails, keep, [&](LargeBlock* b, PageRange r) {
    out->emplace_back(b->freed_at, r.bytes);
  });
}

std::vector<Stream> LargeHeap::StreamsHoldingFrees(Stream but) {
  MutexLock lock(&mu_);
  std::vector<Stream> out;
  free_.ForEachStream([&](Stream s) {
    if (s != but) out.push_back(s);
  });
  return out;
}

void LargeHeap::ReadyOtherStreams(Stream stream, Fencer& fencer) {
  MutexLock lock(&mu_);
  Unpark();
  (void)free_.FenceOthers(stream, fencer);
  (void)free_.Poll(fencer, [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    MakeReady(std::move(blocks));
  });
}

absl::StatusOr<std::size_t> LargeHeap::Depopulate(Stream stream, bool own_stream,
                                                  std::size_t want, bool keep_tails,
                                                  PageRange keep, Drop drop,
                                                  std::uint64_t freed_by) {
  MutexLock lock(&mu_);
  Unpark();
  std::vector<LargeBlock*> picks;
  std::vector<PageRange> ranges;
  std::size_t total = 0;
  ForEachDroppable(stream, own_stream, keep_tails, keep, [&](LargeBlock* b, PageRange r) {
    if (b->freed_at > freed_by) return;
    picks.push_back(b);
    ranges.push_back(r);
    total += r.bytes;
  });
  if (picks.empty()) return std::size_t{0};
  if (total > want) {  // the oldest ranges (then the largest), until `want` is covered
    std::vector<std::size_t> order(picks.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (picks[a]->freed_at != picks[b]->freed_at) return picks[a]->freed_at < picks[b]->freed_at;
      return ranges[a].bytes != ranges[b].bytes ? ranges[a].bytes > ranges[b].bytes
                                                : ranges[a].addr < ranges[b].addr;
    });
    std::vector<LargeBlock*> some_picks;
    std::vector<PageRange> some_ranges;
    total = 0;
    for (std::size_t i : order) {
      if (total >= want) break;
      some_picks.push_back(picks[i]);
      some_ranges.push_back(ranges[i]);
      total += ranges[i].bytes;
    }
    picks.swap(some_picks);
    ranges.swap(some_ranges);
  }
  if (absl::Status st = drop(ranges); !st.ok()) return st;
  // Cut every pick into pieces first, all held out of the sets as pending
  // (which never merges), then file them: a ready pick may border a pick
  // of the stream's group, and filing one piece must never absorb another
  // that is still to be filed.
  struct Piece {
    LargeBlock* b;
    Where where;
    Stream stream;
    bool bare;
  };
  std::vector<Piece> pieces;
  for (std::size_t i = 0; i < picks.size(); ++i) {
    LargeBlock* b = picks[i];
    SetOf(b).Erase(b);
    const Piece terms{nullptr, b->where, b->stream, false};
    if (ranges[i].addr > b->addr) {
      pieces.push_back(Piece{b, terms.where, terms.stream, false});
      b = CutAt(b, ranges[i].addr - b->addr);
    }
    if (b->size > ranges[i].bytes) {
      pieces.push_back(Piece{CutAt(b, ranges[i].bytes), terms.where, terms.stream, false});
    }
    pieces.push_back(Piece{b, Where::kReady, nullptr, true});
  }
  for (const Piece& p : pieces) p.b->where = Where::kPending;
  for (const Piece& p : pieces) {
    p.b->where = p.where;
    p.b->stream = p.stream;
    if (p.bare) {
      p.b->bare = true;
      p.b->segment->bare_bytes += p.b->size;
      InsertBare(p.b);
    } else {
      InsertFree(p.b, p.where == Where::kStream ? free_.StampOf(p.stream) : 0);
    }
  }
  bytes_.fetch_sub(total, std::memory_order_relaxed);
  bare_total_.fetch_add(total, std::memory_order_relaxed);
  return total;
}

LargeHeap::BareJoin LargeHeap::FindBareJoin(std::size_t bytes, Stream stream) {
  BareJoin best;
  bare_.ForEach([&](LargeBlock* b) {
    LargeBlock* lo = b->prev;
    if (lo != nullptr && (lo->bare || !ReusableOn(lo, stream))) lo = nullptr;
    LargeBlock* hi = b->next;
    if (hi != nullptr && (hi->bare || !ReusableOn(hi, stream))) hi = nullptr;
    const std::uintptr_t start = lo != nullptr ? lo->addr : b->addr;
    const std::uintptr_t end = b->addr + b->size;
    // `lo` alone serves it (freed since the caller's search): not a join.
    if (start + bytes <= b->addr) return;
    const bool spills = start + bytes > end;  // into `hi`
    if (spills && (hi == nullptr || end - start + hi->size < bytes)) return;
    const std::size_t held = end - start + (spills ? hi->size : 0);
    const std::uintptr_t need_end = (start + bytes + kMapGranularity - 1) & ~(kMapGranularity - 1);
    const std::size_t refill = std::min(end, need_end) - b->addr;
    if (best.bare == nullptr || refill < best.refill ||
        (refill == best.refill && held < best.bytes)) {
      best = BareJoin{lo, b, spills ? hi : nullptr, refill, held};
    }
  });
  return best;
}

std::size_t LargeHeap::BareShortfall(std::size_t bytes, Stream stream, PageRange* keep) {
  MutexLock lock(&mu_);
  Unpark();
  const BareJoin j = FindBareJoin(bytes, stream);
  if (j.bare == nullptr) return 0;
  const std::uintptr_t lo = j.lo != nullptr ? j.lo->addr : j.bare->addr;
  *keep = PageRange{lo, j.bytes};
  return j.refill;
}

LargeHeap::Taken LargeHeap::TakeBare(std::size_t bytes, Stream stream, std::size_t requested,
                                     Fencer& fencer, Populate refill, absl::Status* status) {
  MutexLock lock(&mu_);
  Unpark();
  const BareJoin j = FindBareJoin(bytes, stream);
  LargeBlock* b = j.bare;
  if (b == nullptr) return Taken{};
  if (absl::Status st = refill(b->segment, b->addr, j.refill); !st.ok()) {
    if (status != nullptr) status->Update(st);
    return Taken{};
  }
  bare_.Erase(b);
  if (b->size > j.refill) bare_.Add(CutAt(b, j.refill));  // the pages it does not need
  Unbare(b, stream, fencer);
  if (j.lo != nullptr) {
    SetOf(j.lo).Erase(j.lo);
    Absorb(j.lo, b);
    b = j.lo;
  }
  if (j.hi != nullptr) {
    SetOf(j.hi).Erase(j.hi);
    Absorb(b, j.hi);
  }
  // What the block does not need (of its last page, or of its neighbours)
  // stays free, as the caller's (Unbare; the neighbours joined it on its terms).
  Split(b, bytes, MinRest(b));
  MarkLive(b, stream, requested);
  return Taken{reinterpret_cast<void*>(b->addr), b->size, false, 0};
}

std::size_t LargeHeap::bare_bytes() const { return bare_total_.load(std::memory_order_relaxed); }

}  // namespace umpool::internal
