// LargeHeap: whole segments (adding, growing in place, cutting reserves,
// moving between heaps, releasing), lookups across segments, pictures and
// invariant checks.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "src/base/check.h"
#include "src/pool/large_heap.h"

namespace umpool::internal {

LargeHeap::~LargeHeap() {
  MutexLock lock(&mu_);
  for (LargeBlock* b : spare_blocks_) delete b;
  for (Segment* s : segments_) {
    for (LargeBlock* b = s->first; b != nullptr;) {
      LargeBlock* next = b->next;
      delete b;
      b = next;
    }
  }
}

LargeBlock* LargeHeap::AddSegment(Segment* segment) {
  auto* b = new LargeBlock;
  b->addr = segment->base;
  b->size = segment->populated;
  b->segment = segment;
  segment->first = b;
  segment->last = b;
  segment->space.store(this, std::memory_order_release);
  segments_.push_back(segment);
  bytes_.fetch_add(segment->populated, std::memory_order_relaxed);
  mapped_.fetch_add(segment->limit, std::memory_order_relaxed);
  return b;
}

Segment* LargeHeap::BestExtension(std::size_t bytes, Stream stream, std::size_t* best_need) {
  Segment* best = nullptr;
  for (Segment* s : segments_) {
    const std::size_t room = s->limit - s->populated;
    if (room == 0) continue;
    // The free block ending the populated part grows with it when it is
    // reusable on `stream` (ready, or freed on `stream`).
    // A bare tail is refilled with the growth.
    const LargeBlock* tail = s->last;
    const bool usable = tail != nullptr && (tail->bare || ReusableOn(tail, stream));
    const std::size_t have = usable ? std::min(tail->size, bytes) : 0;
    const std::size_t need =
        std::max(kMapGranularity, (bytes - have + kMapGranularity - 1) & ~(kMapGranularity - 1));
    if (need <= room && need < *best_need) {
      best = s;
      *best_need = need;
    }
  }
  return best;
}

std::size_t LargeHeap::ExtensionPages(std::size_t bytes, Stream stream) {
  MutexLock lock(&mu_);
  Unpark();
  std::size_t need = SIZE_MAX;
  const Segment* s = BestExtension(bytes, stream, &need);
  if (s == nullptr) return SIZE_MAX;
  return need + (s->last != nullptr && s->last->bare ? s->last->size : 0);
}

LargeHeap::Taken LargeHeap::ExtendAndTake(std::size_t bytes, Stream stream, std::size_t requested,
                                          std::size_t step, Fencer& fencer, Populate populate,
                                          absl::Status* status) {
  MutexLock lock(&mu_);
  Unpark();
  std::size_t best_need = SIZE_MAX;
  Segment* best = BestExtension(bytes, stream, &best_need);
  if (best == nullptr) return Taken{};
  // At least `step` when the reserve has it: fewer populate calls.
  best_need = std::max(best_need, std::min(step, best->limit - best->populated));
  const std::uintptr_t end = best->base + best->populated;
  LargeBlock* bare_tail = best->last != nullptr && best->last->bare ? best->last : nullptr;
  const std::uintptr_t from = bare_tail != nullptr ? bare_tail->addr : end;
  if (absl::Status st = populate(best, from, end + best_need - from); !st.ok()) {
    if (status != nullptr) status->Update(st);
    return Taken{};
  }
  if (bare_tail != nullptr) {  // populated again on `stream`: the caller's, the growth joins it
    bare_.Erase(bare_tail);
    Unbare(bare_tail, stream, fencer);
    free_.OnStream(stream, free_.StampOf(stream)).Add(bare_tail);
  }
  // The new pages are fresh: no stream's work touches them. They take the
  // terms of a usable tail (ready, or the caller's) and merge with it;
  // otherwise they are the caller's, apart from another stream's tail.
  const LargeBlock* tail = best->last;
  const bool join = tail != nullptr && !tail->bare && ReusableOn(tail, stream);
  LargeBlock* b = NewBlock();
  b->addr = end;
  b->size = best_need;
  b->segment = best;
  b->prev = best->last;
  if (best->last != nullptr) best->last->next = b; else best->first = b;
  best->last = b;
  best->populated += best_need;
  bytes_.fetch_add(best_need, std::memory_order_relaxed);
  b->where = join ? tail->where : Where::kStream;
  b->stream = join ? tail->stream : stream;
  if (join) {
    // Merged with the tail alone. InsertFree would go on to merge the two
    // into a larger neighbour freed on another stream (a ready block joins
    // one no smaller than it, taking its terms: a refilled bare tail is
    // filed without merging, so it can sit next to one), and the caller
    // could not reuse the result (found by model_test's concurrent phase).
    LargeBlock* t = b->prev;
    BestFitSet& set = SetOf(t);  // b has its terms: the merged block stays there
    set.Erase(t);
    Absorb(t, b);
    set.Add(t);
  } else {
    InsertFree(b, 0);  // the caller's, apart from the tail (another stream's)
  }
  b = best->last;  // the grown block
  UMPOOL_CHECK(b->size >= bytes && ReusableOn(b, stream),
               "a grown segment's tail is not the caller's");
  Taken t;
  t.seq = b->where == Where::kReady ? 0 : free_.StampOf(stream);
  return Carve(b, bytes, stream, requested, t);
}

void LargeHeap::Forget(Segment* segment) {
  segment->first = nullptr;
  segment->last = nullptr;
  bytes_.fetch_sub(segment->reserved(), std::memory_order_relaxed);
  bare_total_.fetch_sub(segment->bare_bytes, std::memory_order_relaxed);
  mapped_.fetch_sub(segment->limit, std::memory_order_relaxed);
}

std::optional<LargeHeap::Cut> LargeHeap::CutReserve(std::size_t min_bytes) {
  MutexLock lock(&mu_);
  Segment* best = nullptr;
  for (Segment* s : segments_) {
    const std::size_t room = s->limit - s->populated;
    if (room >= min_bytes && (best == nullptr || room > best->limit - best->populated)) best = s;
  }
  if (best == nullptr) return std::nullopt;
  // Half of the reserve (at least what is asked): both may still grow.
  const std::size_t room = best->limit - best->populated;
  const std::size_t cut =
      std::min(room, std::max(min_bytes, room / 2 & ~(kMapGranularity - 1)));
  best->limit -= cut;
  mapped_.fetch_sub(cut, std::memory_order_relaxed);
  return Cut{best, best->base + best->limit, cut};
}

Segment* LargeHeap::StealFreeSegment(std::size_t min_bytes, std::size_t max_bytes, Stream stream,
                                     Fencer& fencer, ReuseTerms* terms) {
  MutexLock lock(&mu_);
  Unpark();
  if (free_.has_pending()) {
    (void)free_.Poll(fencer, [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      MakeReady(std::move(blocks));
    });
  }
  auto best = segments_.end();
  for (auto it = segments_.begin(); it != segments_.end(); ++it) {
    const LargeBlock* b = (*it)->first;
    // A segment with a reserve is this space's room to grow: moved, it left
    // the space to map a new segment at its next growth, which another space
    // then took in turn (docs/arena.md, "A reserve stays with its space").
    if (b->EndsGrowableSegment() || b->bare || !ReusableOn(b, stream) ||
        b->size != (*it)->populated || b->size < min_bytes || b->size > max_bytes) {
      continue;
    }
    if (best == segments_.end() || b->size < (*best)->populated) best = it;
  }
  if (best == segments_.end()) return nullptr;
  Segment* s = *best;
  LargeBlock* b = s->first;
  *terms = ReuseTerms{};
  if (b->where == Where::kStream) {
    terms->on_stream = true;
    terms->stream = b->stream;
    terms->seq = free_.StampOf(b->stream);
  }
  Forget(s);
  SetOf(b).Erase(b);
  delete b;
  segments_.erase(best);
  return s;
}

void LargeHeap::AdoptSegment(Segment* segment, const ReuseTerms& terms) {
  MutexLock lock(&mu_);
  LargeBlock* b = AddSegment(segment);
  b->where = terms.on_stream ? Where::kStream : Where::kReady;
  b->stream = terms.on_stream ? terms.stream : nullptr;
  InsertFree(b, terms.seq);
}

absl::Status LargeHeap::ReleaseFree(Fencer& fencer, std::vector<Segment*>* empty,
                                    absl::FunctionRef<bool(const Segment*)> may_release_bare) {
  MutexLock lock(&mu_);
  Unpark();
  absl::Status status =
      free_.WaitAll(fencer, [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        MakeReady(std::move(blocks));
      });
  if (!status.ok()) return status;
  std::vector<Segment*> keep;
  for (Segment* s : segments_) {
    // Wholly free: ready blocks, and bare ones.
    bool free = s->first != nullptr;
    for (const LargeBlock* b = s->first; b != nullptr && free; b = b->next) {
      free = !b->live && (b->bare || b->where == Where::kReady);
    }
    if (!free || (s->bare_bytes > 0 && !may_release_bare(s))) {
      keep.push_back(s);
      continue;
    }
    for (LargeBlock* b = s->first; b != nullptr;) {
      LargeBlock* next = b->next;
      SetOf(b).Erase(b);
      delete b;
      b = next;
    }
    Forget(s);  // its bare bytes stay counted: the arena's unmap needs them
    empty->push_back(s);
  }
  segments_.swap(keep);
  return absl::OkStatus();
}

absl::StatusOr<BlockInfo> LargeHeap::Containing(std::uintptr_t p) const {
  MutexLock lock(&mu_);
  for (const Segment* s : segments_) {
    if (!s->Holds(p)) continue;
    for (const LargeBlock* b = s->first; b != nullptr; b = b->next) {
      if (p >= b->addr && p < b->addr + b->size) {
        if (!b->live) {
          return absl::FailedPreconditionError(absl::StrCat(
              "address 0x", absl::Hex(p), " is in a free large block"));
        }
        return InfoOf(b);
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pointer 0x", absl::Hex(p), " was not allocated by this pool"));
}

void LargeHeap::LiveBlocks(std::vector<BlockInfo>* out) const {
  MutexLock lock(&mu_);
  for (const auto& [addr, b] : live_) {
    if (b->live && !b->slab) out->push_back(InfoOf(b));
  }
}

std::int64_t LargeHeap::segments() const {
  MutexLock lock(&mu_);
  return static_cast<std::int64_t>(segments_.size());
}

std::size_t LargeHeap::free_bytes() const {
  MutexLock lock(&mu_);
  std::size_t n = 0;
  for (const Segment* s : segments_) {
    for (const LargeBlock* b = s->first; b != nullptr; b = b->next) {
      n += b->live || b->bare ? 0 : b->size;
    }
  }
  return n;
}

void LargeHeap::Snapshot(std::vector<SpanSnapshot>* out) const {
  MutexLock lock(&mu_);
  for (const Segment* seg : segments_) {
    SpanSnapshot s;
    s.base = seg->base;
    s.bytes = seg->reserved();
    s.mapped_bytes = seg->limit;
    s.role = seg->role;
    s.slab = false;
    s.slab_space = holds_slabs_;
    for (const LargeBlock* b = seg->first; b != nullptr; b = b->next) {
      const char st = b->bare        ? kSnapBare
                      : !b->live           ? kSnapFree
                      : b->recorded.empty() ? kSnapLive
                                            : kSnapRecorded;
      s.blocks.push_back({b->addr - seg->base, b->size, 1, st, b->live ? b->requested : 0});
    }
    out->push_back(std::move(s));
  }
}

void LargeHeap::CheckInvariants() const {
  MutexLock lock(&mu_);
  // Which group holds each free block, from the groups' side.
  absl::flat_hash_set<const LargeBlock*> in_groups;
  std::size_t grouped = 0;
  free_.ForEachGroup([&](const BestFitSet& items, auto where, Stream stream, std::uint64_t,
                         const Fences*) {
    items.ForEach([&](LargeBlock* b) {
      ++grouped;
      UMPOOL_CHECK(in_groups.insert(b).second, "free block in two groups");
      using W = std::decay_t<decltype(where)>;
      if (where == W::kStream) {
        UMPOOL_CHECK(b->where == Where::kStream && b->stream == stream, "stream block mislabelled");
      } else if (where == W::kPending) {
        UMPOOL_CHECK(b->where == Where::kPending, "pending block mislabelled");
      } else {
        UMPOOL_CHECK(b->where == Where::kReady, "ready block mislabelled");
      }
    });
  });
  std::size_t free_blocks = 0, live = 0, bare_blocks = 0, bare_sum = 0;
  for (const Segment* s : segments_) {
    std::uintptr_t expect = s->base;
    std::size_t seg_bare = 0;
    const LargeBlock* prev = nullptr;
    for (const LargeBlock* b = s->first; b != nullptr; prev = b, b = b->next) {
      UMPOOL_CHECK(b->addr == expect && b->prev == prev && b->segment == s, "broken block chain");
      UMPOOL_CHECK(b->size > 0 && b->size % quantum_ == 0, "block size not a multiple of the quantum");
      expect += b->size;
      live += b->live ? 1 : 0;
      UMPOOL_CHECK(!b->slab || (b->live && b->addr % kMapGranularity == 0 &&
                                b->size % kMapGranularity == 0),
                   "a slab range is not live whole pages");
      if (b->live || b == parked_) {
        auto it = live_.find(b->addr);
        UMPOOL_CHECK(it != live_.end() && it->second == b, "live block not indexed");
        UMPOOL_CHECK(b->live || b->where == Where::kParked, "parked block mislabelled");
        continue;
      }
      if (b->bare) {
        UMPOOL_CHECK(bare_.Contains(const_cast<LargeBlock*>(b)) && !in_groups.contains(b) &&
                         b->addr % kMapGranularity == 0 && b->size % kMapGranularity == 0,
                     "bare block misfiled or not whole pages");
        ++bare_blocks;
        seg_bare += b->size;
        if (prev != nullptr) UMPOOL_CHECK(!CanMerge(prev, b), "unmerged bare neighbours");
        continue;
      }
      ++free_blocks;
      UMPOOL_CHECK(in_groups.contains(b), "free block in no group");
      if (prev != nullptr) UMPOOL_CHECK(!CanMerge(prev, b), "unmerged free neighbours");
    }
    UMPOOL_CHECK(prev == s->last, "a segment's last block is not its tail");
    UMPOOL_CHECK(s->populated <= s->limit && s->limit <= s->bytes &&
                     s->populated % kMapGranularity == 0 && s->limit % kMapGranularity == 0,
                 "populated part outside the segment");
    UMPOOL_CHECK(expect == s->base + s->populated, "blocks do not cover the populated part");
    UMPOOL_CHECK(seg_bare == s->bare_bytes, "a segment's bare bytes disagree with its blocks");
    bare_sum += seg_bare;
  }
  UMPOOL_CHECK(bare_blocks == bare_.size() && bare_sum == bare_total_.load(),
               "the bare set disagrees with the block chains");
  UMPOOL_CHECK(free_blocks == grouped, "group sizes disagree with the block chains");
  UMPOOL_CHECK(live_.size() == live + (parked_ != nullptr ? 1 : 0), "stale index entries");
}

}  // namespace umpool::internal
