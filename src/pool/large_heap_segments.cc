// LargeHeap: whole segments (adding, moving between heaps, releasing), lookups
// across segments, pictures and invariant checks.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "src/base/check.h"
#include "src/pool/large_heap.h"

namespace umpool::internal {

LargeHeap::~LargeHeap() {
  MutexLock lock(&mu_);
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
  b->size = segment->bytes;
  b->segment = segment;
  segment->first = b;
  segment->space.store(this, std::memory_order_release);
  segments_.push_back(segment);
  bytes_.fetch_add(segment->bytes, std::memory_order_relaxed);
  return b;
}

Segment* LargeHeap::StealFreeSegment(std::size_t min_bytes, std::size_t max_bytes, Stream stream,
                                     Fencer& fencer, ReuseTerms* terms) {
  MutexLock lock(&mu_);
  if (free_.has_pending()) {
    (void)free_.Poll(fencer, [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      MakeReady(std::move(blocks));
    });
  }
  auto best = segments_.end();
  for (auto it = segments_.begin(); it != segments_.end(); ++it) {
    const LargeBlock* b = (*it)->first;
    // Ready, or freed on the caller's stream (safe for it at once).
    const bool usable = b->where == Where::kReady ||
                        (b->where == Where::kStream && b->stream == stream);
    if (b->live || !usable || b->size != (*it)->bytes || b->size < min_bytes ||
        b->size > max_bytes) {
      continue;
    }
    if (best == segments_.end() || b->size < (*best)->bytes) best = it;
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
  bytes_.fetch_sub(s->bytes, std::memory_order_relaxed);
  SetOf(b).Erase(b);
  delete b;
  s->first = nullptr;
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

absl::Status LargeHeap::ReleaseFree(Fencer& fencer, std::vector<Segment*>* empty) {
  MutexLock lock(&mu_);
  absl::Status status =
      free_.WaitAll(fencer, [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        MakeReady(std::move(blocks));
      });
  if (!status.ok()) return status;
  std::vector<Segment*> keep;
  for (Segment* s : segments_) {
    LargeBlock* b = s->first;
    if (!b->live && b->where == Where::kReady && b->size == s->bytes) {
      free_.ready().Erase(b);
      delete b;
      s->first = nullptr;
      bytes_.fetch_sub(s->bytes, std::memory_order_relaxed);
      empty->push_back(s);
    } else {
      keep.push_back(s);
    }
  }
  segments_.swap(keep);
  return absl::OkStatus();
}

absl::StatusOr<BlockInfo> LargeHeap::Containing(std::uintptr_t p) const {
  MutexLock lock(&mu_);
  for (const Segment* s : segments_) {
    if (!s->Contains(p)) continue;
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
  for (const auto& [addr, b] : live_) out->push_back(InfoOf(b));
}

std::int64_t LargeHeap::segments() const {
  MutexLock lock(&mu_);
  return static_cast<std::int64_t>(segments_.size());
}

std::size_t LargeHeap::free_bytes() const {
  MutexLock lock(&mu_);
  std::size_t n = 0;
  for (const Segment* s : segments_) {
    for (const LargeBlock* b = s->first; b != nullptr; b = b->next) n += b->live ? 0 : b->size;
  }
  return n;
}

void LargeHeap::Snapshot(std::vector<SpanSnapshot>* out) const {
  MutexLock lock(&mu_);
  for (const Segment* seg : segments_) {
    SpanSnapshot s;
    s.base = seg->base;
    s.bytes = seg->bytes;
    s.role = seg->role;
    s.slab = false;
    s.slab_space = holds_slabs_;
    for (const LargeBlock* b = seg->first; b != nullptr; b = b->next) {
      const char st = !b->live ? kSnapFree
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
  std::size_t free_blocks = 0;
  for (const Segment* s : segments_) {
    std::uintptr_t expect = s->base;
    const LargeBlock* prev = nullptr;
    for (const LargeBlock* b = s->first; b != nullptr; prev = b, b = b->next) {
      UMPOOL_CHECK(b->addr == expect && b->prev == prev && b->segment == s, "broken block chain");
      UMPOOL_CHECK(b->size > 0 && b->size % quantum_ == 0, "block size not a multiple of the quantum");
      expect += b->size;
      if (b->live) {
        auto it = live_.find(b->addr);
        UMPOOL_CHECK(it != live_.end() && it->second == b, "live block not indexed");
        continue;
      }
      ++free_blocks;
      UMPOOL_CHECK(in_groups.contains(b), "free block in no group");
      if (prev != nullptr) UMPOOL_CHECK(!CanMerge(prev, b), "unmerged free neighbours");
    }
    UMPOOL_CHECK(expect == s->base + s->bytes, "blocks do not cover the segment");
  }
  UMPOOL_CHECK(free_blocks == grouped, "group sizes disagree with the block chains");
}

}  // namespace umpool::internal
