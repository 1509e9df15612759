#include "src/pool/large_heap.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/pool/check.h"

namespace umpool::internal {
namespace {

// Free neighbours merge when the result is reusable on terms both allow:
// two ready blocks stay ready; a ready block joins a block freed on stream S
// (ready memory is safe on S at once, and other streams fence S anyway); two
// blocks freed on the same stream merge. Pending blocks and blocks of two
// different streams stay apart.
bool CanMerge(const LargeBlock* a, const LargeBlock* b) {
  using W = LargeBlock::Where;
  if (a->live || b->live || a->where == W::kPending || b->where == W::kPending) return false;
  if (a->where == W::kReady || b->where == W::kReady) return true;
  return a->stream == b->stream;
}

}  // namespace

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

LargeHeap::FreeSet& LargeHeap::SetOf(LargeBlock* b) {
  return b->where == LargeBlock::Where::kReady ? ready_ : by_stream_[b->stream];
}

void LargeHeap::InsertFree(LargeBlock* b) {
  // Merge with neighbours reusable on the same terms; they leave their sets.
  auto absorb = [](LargeBlock* lo, LargeBlock* hi) {
    lo->size += hi->size;
    lo->next = hi->next;
    if (hi->next != nullptr) hi->next->prev = lo;
    if (hi->where == LargeBlock::Where::kStream) {
      lo->seq = lo->where == LargeBlock::Where::kStream ? std::max(lo->seq, hi->seq) : hi->seq;
      lo->where = LargeBlock::Where::kStream;
      lo->stream = hi->stream;
    }
    delete hi;
  };
  if (LargeBlock* p = b->prev; p != nullptr && CanMerge(p, b)) {
    SetOf(p).erase(p);
    absorb(p, b);
    b = p;
  }
  if (LargeBlock* n = b->next; n != nullptr && CanMerge(b, n)) {
    SetOf(n).erase(n);
    absorb(b, n);
  }
  SetOf(b).insert(b);
}

LargeBlock* LargeHeap::Pick(std::size_t bytes, Stream stream, bool* ready) {
  LargeBlock probe;
  probe.size = bytes;
  probe.addr = 0;
  LargeBlock* best = nullptr;
  *ready = false;
  if (auto it = by_stream_.find(stream); it != by_stream_.end()) {
    auto f = it->second.lower_bound(&probe);
    if (f != it->second.end()) best = *f;
  }
  auto r = ready_.lower_bound(&probe);
  if (r != ready_.end() && (best == nullptr || (*r)->size < best->size)) {
    best = *r;
    *ready = true;
  }
  return best;
}

void LargeHeap::Split(LargeBlock* b, std::size_t bytes) {
  if (b->size - bytes < min_split_ || b->size == bytes) return;
  auto* rest = new LargeBlock;
  rest->addr = b->addr + bytes;
  rest->size = b->size - bytes;
  rest->segment = b->segment;
  rest->prev = b;
  rest->next = b->next;
  if (b->next != nullptr) b->next->prev = rest;
  b->next = rest;
  b->size = bytes;
  rest->where = b->where;
  rest->stream = b->stream;
  rest->seq = b->seq;
  SetOf(rest).insert(rest);  // b was maximal, so `rest` has nothing to merge with
}

absl::Status LargeHeap::PollPending(Fencer& fencer) {
  absl::Status first;
  std::vector<LargeBlock*> still;
  std::vector<LargeBlock*> done_blocks;
  for (LargeBlock* b : pending_) {
    bool done = true;
    for (const FenceRef& f : b->fences) {
      absl::StatusOr<bool> d = fencer.Poll(*f);
      if (!d.ok()) first.Update(d.status());
      if (!d.ok() || !*d) {
        done = false;
        break;
      }
    }
    (done ? done_blocks : still).push_back(b);
  }
  pending_.swap(still);
  for (LargeBlock* b : done_blocks) {
    b->fences.clear();
    b->where = LargeBlock::Where::kReady;
    InsertFree(b);
  }
  return first;
}

absl::Status LargeHeap::FenceOthers(Stream stream, Fencer& fencer) {
  absl::Status first;
  for (auto& [s, set] : by_stream_) {
    if (s == stream) continue;
    for (LargeBlock* b : set) {
      absl::StatusOr<FenceRef> f = fencer.FenceFor(s, b->seq);
      if (!f.ok()) {
        first.Update(f.status());
        return first;  // leave the rest where they are
      }
      b->where = LargeBlock::Where::kPending;
      b->fences = {*std::move(f)};
      pending_.push_back(b);
    }
    set.clear();
  }
  return first;
}

absl::StatusOr<void*> LargeHeap::Take(std::size_t bytes, Stream stream, Fencer& fencer,
                                      bool* cross_stream, std::uint64_t* seq, std::size_t* got) {
  MutexLock lock(&mu_);
  absl::Status status;
  bool ready = false;
  LargeBlock* b = Pick(bytes, stream, &ready);
  if (b == nullptr && !pending_.empty()) {
    status.Update(PollPending(fencer));
    b = Pick(bytes, stream, &ready);
  }
  if (b == nullptr) {
    status.Update(FenceOthers(stream, fencer));
    status.Update(PollPending(fencer));
    b = Pick(bytes, stream, &ready);
  }
  if (b == nullptr) {
    // During a graph capture other streams' blocks cannot be fenced: not an error.
    if (!status.ok() && !absl::IsUnavailable(status)) return status;
    return nullptr;
  }
  SetOf(b).erase(b);
  Split(b, bytes);
  b->live = true;
  live_[b->addr] = b;
  *cross_stream = ready;
  if (seq != nullptr) *seq = ready ? 0 : b->seq;
  *got = b->size;
  return reinterpret_cast<void*>(b->addr);
}

LargeBlock* LargeHeap::AddSegment(Segment* segment) {
  auto* b = new LargeBlock;
  b->addr = segment->base;
  b->size = segment->bytes;
  b->segment = segment;
  b->where = LargeBlock::Where::kReady;
  segment->first = b;
  segment->space.store(this, std::memory_order_release);
  segments_.push_back(segment);
  bytes_.fetch_add(segment->bytes, std::memory_order_relaxed);
  return b;
}

void* LargeHeap::AddSegmentAndTake(Segment* segment, std::size_t bytes, std::size_t* got) {
  MutexLock lock(&mu_);
  LargeBlock* b = AddSegment(segment);
  Split(b, bytes);
  b->live = true;
  live_[b->addr] = b;
  *got = b->size;
  return reinterpret_cast<void*>(b->addr);
}

absl::Status LargeHeap::Diagnose(std::uintptr_t p) const {
  for (const Segment* s : segments_) {
    if (!s->Contains(p)) continue;
    for (const LargeBlock* b = s->first; b != nullptr; b = b->next) {
      if (p == b->addr && !b->live) {
        return absl::FailedPreconditionError(
            absl::StrCat("double free of large block 0x", absl::Hex(p), " (", b->size, " bytes)"));
      }
      if (p > b->addr && p < b->addr + b->size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "interior pointer 0x", absl::Hex(p), ": ", p - b->addr,
            " bytes into the large block at 0x", absl::Hex(b->addr)));
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pointer 0x", absl::Hex(p), " was not allocated by this pool"));
}

absl::StatusOr<std::size_t> LargeHeap::Free(std::uintptr_t p, Stream stream, Fencer& fencer) {
  MutexLock lock(&mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return Diagnose(p);
  LargeBlock* b = it->second;
  if (!b->recorded.empty() && fencer.capturing()) {
    // Its reuse must wait for events that cannot be recorded now.
    return absl::UnavailableError("a CUDA graph capture is underway");
  }
  live_.erase(it);
  b->live = false;
  const std::size_t size = b->size;
  if (!b->recorded.empty()) {
    // Reuse waits for the free stream and every recorded stream.
    absl::InlinedVector<Stream, 3> streams(b->recorded.begin(), b->recorded.end());
    streams.push_back(stream);
    b->recorded.clear();
    b->fences.clear();
    absl::Status st;
    for (Stream s : streams) {
      absl::StatusOr<FenceRef> f = fencer.FenceFor(s, fencer.Stamp());
      if (!f.ok()) {
        st = f.status();
        break;
      }
      b->fences.push_back(*std::move(f));
    }
    if (st.ok()) {
      b->where = LargeBlock::Where::kPending;
      pending_.push_back(b);
      return size;
    }
    // Recording failed (the CUDA context is broken); fall back to the plain
    // free-on-stream rule below.
    b->fences.clear();
  }
  b->where = LargeBlock::Where::kStream;
  b->stream = stream;
  b->seq = fencer.Stamp();
  InsertFree(b);
  return size;
}

void LargeHeap::GiveBack(std::uintptr_t p, ReuseTerms terms) {
  MutexLock lock(&mu_);
  auto it = live_.find(p);
  UMPOOL_CHECK(it != live_.end(), "giving back a range that is not a live block");
  LargeBlock* b = it->second;
  live_.erase(it);
  b->live = false;
  if (!terms.fences.empty()) {
    b->where = LargeBlock::Where::kPending;
    b->fences = std::move(terms.fences);
    pending_.push_back(b);
    return;
  }
  if (terms.on_stream) {
    b->where = LargeBlock::Where::kStream;
    b->stream = terms.stream;
    b->seq = terms.seq;
  } else {
    b->where = LargeBlock::Where::kReady;
  }
  InsertFree(b);
}

absl::Status LargeHeap::RecordStream(std::uintptr_t p, Stream stream) {
  MutexLock lock(&mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return Diagnose(p);
  auto& rec = it->second->recorded;
  if (std::find(rec.begin(), rec.end(), stream) == rec.end()) rec.push_back(stream);
  return absl::OkStatus();
}

absl::StatusOr<std::size_t> LargeHeap::BlockSize(std::uintptr_t p) const {
  MutexLock lock(&mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return Diagnose(p);
  return it->second->size;
}

absl::StatusOr<std::size_t> LargeHeap::DiscardableSize(std::uintptr_t p) const {
  MutexLock lock(&mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return Diagnose(p);
  if (!it->second->recorded.empty()) {
    return absl::FailedPreconditionError("block is in use on recorded streams");
  }
  return it->second->size;
}

absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> LargeHeap::Containing(
    std::uintptr_t p) const {
  MutexLock lock(&mu_);
  for (const Segment* s : segments_) {
    if (!s->Contains(p)) continue;
    for (const LargeBlock* b = s->first; b != nullptr; b = b->next) {
      if (p >= b->addr && p < b->addr + b->size) {
        if (!b->live) {
          return absl::FailedPreconditionError(absl::StrCat(
              "address 0x", absl::Hex(p), " is in a free large block"));
        }
        return std::make_pair(b->addr, b->size);
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pointer 0x", absl::Hex(p), " was not allocated by this pool"));
}

Segment* LargeHeap::StealFreeSegment(std::size_t min_bytes, std::size_t max_bytes, Stream stream,
                                     Fencer& fencer, ReuseTerms* terms) {
  MutexLock lock(&mu_);
  if (!pending_.empty()) (void)PollPending(fencer);
  auto best = segments_.end();
  for (auto it = segments_.begin(); it != segments_.end(); ++it) {
    const LargeBlock* b = (*it)->first;
    // Ready, or freed on the caller's stream (safe for it at once).
    const bool usable = b->where == LargeBlock::Where::kReady ||
                        (b->where == LargeBlock::Where::kStream && b->stream == stream);
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
  if (b->where == LargeBlock::Where::kStream) {
    terms->on_stream = true;
    terms->stream = b->stream;
    terms->seq = b->seq;
  }
  bytes_.fetch_sub(s->bytes, std::memory_order_relaxed);
  SetOf(b).erase(b);
  delete b;
  s->first = nullptr;
  segments_.erase(best);
  return s;
}

void LargeHeap::AdoptSegment(Segment* segment, const ReuseTerms& terms) {
  MutexLock lock(&mu_);
  LargeBlock* b = AddSegment(segment);
  if (terms.on_stream) {
    b->where = LargeBlock::Where::kStream;
    b->stream = terms.stream;
    b->seq = terms.seq;
  }
  InsertFree(b);
}

absl::Status LargeHeap::ReleaseFree(Fencer& fencer, std::vector<Segment*>* empty) {
  MutexLock lock(&mu_);
  absl::Status status = FenceOthers(reinterpret_cast<Stream>(~std::uintptr_t{0}), fencer);
  for (LargeBlock* b : pending_) {
    for (const FenceRef& f : b->fences) status.Update(fencer.Wait(*f));
  }
  status.Update(PollPending(fencer));
  if (!status.ok()) return status;
  std::vector<Segment*> keep;
  for (Segment* s : segments_) {
    LargeBlock* b = s->first;
    if (!b->live && b->where == LargeBlock::Where::kReady && b->size == s->bytes) {
      ready_.erase(b);
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
    for (const LargeBlock* b = seg->first; b != nullptr; b = b->next) {
      const SnapState st = !b->live ? SnapState::kFree
                           : b->recorded.empty() ? SnapState::kLive
                                                 : SnapState::kRecorded;
      s.blocks.push_back({b->addr - seg->base, b->size, 1, st});
    }
    out->push_back(std::move(s));
  }
}

void LargeHeap::CheckInvariants() const {
  MutexLock lock(&mu_);
  std::size_t in_sets = ready_.size() + pending_.size();
  for (const auto& [s, set] : by_stream_) in_sets += set.size();
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
      if (prev != nullptr) UMPOOL_CHECK(!CanMerge(prev, b), "unmerged free neighbours");
      if (b->where == LargeBlock::Where::kReady) {
        UMPOOL_CHECK(ready_.count(const_cast<LargeBlock*>(b)) == 1, "ready block not in ready set");
      } else if (b->where == LargeBlock::Where::kStream) {
        auto it = by_stream_.find(b->stream);
        UMPOOL_CHECK(it != by_stream_.end() && it->second.count(const_cast<LargeBlock*>(b)) == 1,
                     "stream block not in its set");
      } else {
        UMPOOL_CHECK(std::find(pending_.begin(), pending_.end(), b) != pending_.end(),
                     "pending block not on pending list");
      }
    }
    UMPOOL_CHECK(expect == s->base + s->bytes, "blocks do not cover the segment");
  }
  UMPOOL_CHECK(free_blocks == in_sets, "free-set sizes disagree with the block chains");
}

}  // namespace umpool::internal
