#include "src/pool/central_bin.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "src/pool/check.h"

namespace umpool::internal {

int CentralBin::TakeFrom(std::vector<void*>& from, void** out, int max) {
  const int n = static_cast<int>(std::min<std::size_t>(from.size(), static_cast<std::size_t>(max)));
  std::copy(from.end() - n, from.end(), out);
  from.resize(from.size() - static_cast<std::size_t>(n));
  return n;
}

bool CentralBin::Carvable(Slab* slab, Stream stream, Fencer& fencer) {
  if (!slab->bound || slab->bound_stream == stream) return true;
  absl::StatusOr<FenceRef> f = fencer.FenceFor(slab->bound_stream, slab->bound_seq);
  if (!f.ok()) return false;
  absl::StatusOr<bool> done = fencer.Poll(**f);
  if (!done.ok() || !*done) return false;
  slab->bound = false;
  return true;
}

int CentralBin::Carve(Stream stream, Fencer& fencer, void** out, int max) {
  int got = 0;
  while (got < max && !partial_.empty()) {
    // The newest slab this stream may carve from.
    std::size_t k = partial_.size();
    while (k > 0 && !Carvable(partial_[k - 1], stream, fencer)) --k;
    if (k == 0) break;
    std::swap(partial_[k - 1], partial_.back());
    Slab* slab = partial_.back();
    const std::uint32_t blocks = slab->info().blocks;
    // Stay inside one 64-block group so that two threads' fresh blocks do
    // not share a cache line of state bytes.
    const std::uint32_t group_left = Slab::kGroup - slab->carved % Slab::kGroup;
    const std::uint32_t n = std::min<std::uint32_t>(
        {static_cast<std::uint32_t>(max - got), blocks - slab->carved, group_left});
    for (std::uint32_t i = 0; i < n; ++i) out[got++] = slab->BlockAt(slab->carved + i);
    slab->carved += n;
    if (slab->carved == blocks) partial_.pop_back();
    if (n == group_left) break;  // one group per call
  }
  return got;
}

absl::Status CentralBin::PollPending(Fencer& fencer) {
  absl::Status first;
  for (auto it = pending_.begin(); it != pending_.end();) {
    bool all_done = true;
    for (const FenceRef& f : it->fences) {
      absl::StatusOr<bool> done = fencer.Poll(*f);
      if (!done.ok()) {
        first.Update(done.status());
        all_done = false;
        break;
      }
      if (!*done) {
        all_done = false;
        break;
      }
    }
    if (all_done) {
      ready_.insert(ready_.end(), it->blocks.begin(), it->blocks.end());
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return first;
}

absl::Status CentralBin::FenceOthers(Stream stream, Fencer& fencer, int* moved) {
  absl::Status first;
  for (auto& [s, list] : by_stream_) {
    if (s == stream || list.blocks.empty()) continue;
    absl::StatusOr<FenceRef> fence = fencer.FenceFor(s, list.max_seq);
    if (!fence.ok()) {
      first.Update(fence.status());
      continue;
    }
    Pending p;
    p.fences.push_back(*std::move(fence));
    p.blocks.swap(list.blocks);
    *moved += static_cast<int>(p.blocks.size());
    pending_.push_back(std::move(p));
  }
  return first;
}

TakeResult CentralBin::Take(Stream stream, void** out, int max, Fencer& fencer) {
  TakeResult r;
  MutexLock lock(&mu_);
  if (auto it = by_stream_.find(stream); it != by_stream_.end()) {
    r.count = TakeFrom(it->second.blocks, out, max);
    if (r.count > 0) return r;
  }
  if (ready_.empty() && !pending_.empty()) r.status.Update(PollPending(fencer));
  if (!ready_.empty()) {
    r.count = TakeFrom(ready_, out, max);
    r.cross_stream = r.count;
    return r;
  }
  r.count = Carve(stream, fencer, out, max);
  if (r.count > 0) return r;
  int moved = 0;
  r.status.Update(FenceOthers(stream, fencer, &moved));
  if (moved > 0) {
    r.status.Update(PollPending(fencer));
    r.count = TakeFrom(ready_, out, max);
    r.cross_stream = r.count;
  }
  return r;
}

int CentralBin::AddSlabAndTake(Slab* slab, Stream stream, Fencer& fencer, void** out, int max) {
  MutexLock lock(&mu_);
  slabs_.push_back(slab);
  partial_.push_back(slab);
  return Carve(stream, fencer, out, max);
}

void CentralBin::Put(Stream stream, void* const* blocks, int n, std::uint64_t seq) {
  MutexLock lock(&mu_);
  StreamList& list = by_stream_[stream];
  list.blocks.insert(list.blocks.end(), blocks, blocks + n);
  list.max_seq = std::max(list.max_seq, seq);
}

void CentralBin::PutPending(absl::InlinedVector<FenceRef, 2> fences, void* block) {
  MutexLock lock(&mu_);
  Pending p;
  p.fences = std::move(fences);
  p.blocks.push_back(block);
  pending_.push_back(std::move(p));
}

absl::Status CentralBin::TakeEmpty(Fencer& fencer, const PageMap& pagemap, bool wait,
                                   std::vector<EmptySlab>* out) {
  MutexLock lock(&mu_);
  absl::Status status;
  if (wait) {
    int moved = 0;
    status = FenceOthers(/*stream=*/reinterpret_cast<Stream>(~std::uintptr_t{0}), fencer, &moved);
    for (Pending& p : pending_) {
      for (const FenceRef& f : p.fences) status.Update(fencer.Wait(*f));
    }
  }
  status.Update(PollPending(fencer));
  if (wait) {
    for (Slab* s : slabs_) {
      if (!s->bound) continue;
      absl::StatusOr<FenceRef> f = fencer.FenceFor(s->bound_stream, s->bound_seq);
      if (!f.ok()) return f.status();
      status.Update(fencer.Wait(**f));
      s->bound = false;
    }
  }
  if (!status.ok()) return status;
  if (slabs_.empty()) return absl::OkStatus();

  // Free blocks per slab, over every list.
  auto slab_of = [&](void* b) { return static_cast<Slab*>(pagemap.Lookup(b)); };
  absl::flat_hash_map<Slab*, std::uint32_t> free_count;
  for (void* b : ready_) ++free_count[slab_of(b)];
  for (const auto& [s, list] : by_stream_) for (void* b : list.blocks) ++free_count[slab_of(b)];
  for (const Pending& p : pending_) for (void* b : p.blocks) ++free_count[slab_of(b)];
  absl::flat_hash_map<Slab*, ReuseTerms> gone;
  for (Slab* s : slabs_) {
    auto it = free_count.find(s);
    if ((it == free_count.end() ? 0 : it->second) == s->carved) gone[s];
  }
  if (gone.empty()) return absl::OkStatus();

  // Terms: the streams whose lists hold the slab's blocks, and the fences of
  // its pending blocks. Fences are made before anything moves, so an event
  // error leaves the bin as it was.
  // (stream, stamp) pairs per slab: its blocks' stream lists, and the stream
  // its never-carved blocks are bound to.
  absl::flat_hash_map<Slab*, absl::InlinedVector<std::pair<Stream, std::uint64_t>, 2>> streams;
  auto add_stream = [&](Slab* slab, Stream s, std::uint64_t seq) {
    auto& v = streams[slab];
    auto it = std::find_if(v.begin(), v.end(), [&](const auto& e) { return e.first == s; });
    if (it == v.end()) {
      v.emplace_back(s, seq);
    } else {
      it->second = std::max(it->second, seq);
    }
  };
  for (const auto& [s, list] : by_stream_) {
    for (void* b : list.blocks) {
      auto g = gone.find(slab_of(b));
      if (g != gone.end()) add_stream(g->first, s, list.max_seq);
    }
  }
  for (auto& [slab, terms] : gone) {
    if (slab->bound) add_stream(slab, slab->bound_stream, slab->bound_seq);
  }
  for (const Pending& p : pending_) {
    absl::flat_hash_set<Slab*> hit;
    for (void* b : p.blocks) {
      if (gone.contains(slab_of(b))) hit.insert(slab_of(b));
    }
    for (Slab* s : hit) {
      auto& f = gone[s].fences;
      f.insert(f.end(), p.fences.begin(), p.fences.end());
    }
  }
  for (auto& [slab, terms] : gone) {
    auto it = streams.find(slab);
    if (it == streams.end()) continue;
    if (it->second.size() == 1 && terms.fences.empty()) {
      terms.on_stream = true;  // reusable at once on that stream, like its blocks
      terms.stream = it->second[0].first;
      terms.seq = it->second[0].second;
      continue;
    }
    for (const auto& [s, seq] : it->second) {
      absl::StatusOr<FenceRef> f = fencer.FenceFor(s, seq);
      if (!f.ok()) return f.status();
      terms.fences.push_back(*std::move(f));
    }
  }

  auto dead = [&](void* b) { return gone.contains(slab_of(b)); };
  std::erase_if(ready_, dead);
  for (auto& [s, list] : by_stream_) std::erase_if(list.blocks, dead);
  for (Pending& p : pending_) std::erase_if(p.blocks, dead);
  std::erase_if(pending_, [](const Pending& p) { return p.blocks.empty(); });
  std::erase_if(slabs_, [&](Slab* s) { return gone.contains(s); });
  std::erase_if(partial_, [&](Slab* s) { return gone.contains(s); });
  for (auto& [slab, terms] : gone) out->push_back({slab, std::move(terms)});
  return absl::OkStatus();
}

std::int64_t CentralBin::slabs() const {
  MutexLock lock(&mu_);
  return static_cast<std::int64_t>(slabs_.size());
}

std::int64_t CentralBin::free_blocks() const {
  MutexLock lock(&mu_);
  std::int64_t n = static_cast<std::int64_t>(ready_.size());
  for (const auto& [s, list] : by_stream_) n += static_cast<std::int64_t>(list.blocks.size());
  for (const Pending& p : pending_) n += static_cast<std::int64_t>(p.blocks.size());
  for (const Slab* s : partial_) n += s->info().blocks - s->carved;
  return n;
}

void CentralBin::Snapshot(std::vector<SpanSnapshot>* out) const {
  MutexLock lock(&mu_);
  for (Slab* slab : slabs_) {
    SpanSnapshot s;
    s.base = slab->base;
    s.bytes = slab->bytes;
    s.role = slab->role;
    s.slab = true;
    s.block_bytes = slab->info().size;
    for (std::uint32_t i = 0; i < slab->info().blocks; ++i) {
      SnapState st = SnapState::kUncarved;
      if (i < slab->carved) {
        const std::uint8_t v = slab->state(i).load(std::memory_order_acquire);
        st = v == kLive ? SnapState::kLive : v == kLiveRecorded ? SnapState::kRecorded : SnapState::kFree;
      }
      if (!s.blocks.empty() && s.blocks.back().state == st) {
        ++s.blocks.back().count;
      } else {
        s.blocks.push_back({std::size_t{i} * s.block_bytes, s.block_bytes, 1, st});
      }
    }
    out->push_back(std::move(s));
  }
}

void CentralBin::CheckInvariants(const PageMap& pagemap) const {
  MutexLock lock(&mu_);
  absl::flat_hash_set<const Slab*> mine(slabs_.begin(), slabs_.end());
  absl::flat_hash_set<void*> seen;
  auto check = [&](void* b) {
    Span* span = pagemap.Lookup(b);
    UMPOOL_CHECK(span != nullptr && span->kind == SpanKind::kSlab, "free block outside any slab");
    auto* slab = static_cast<Slab*>(span);
    UMPOOL_CHECK(mine.contains(slab), "free block in another bin's slab");
    const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(b));
    UMPOOL_CHECK(idx >= 0 && static_cast<std::uint32_t>(idx) < slab->carved,
                 "free block not at a carved block start");
    UMPOOL_CHECK(slab->state(static_cast<std::uint32_t>(idx)).load() == kFree,
                 "block on a free list is not in state kFree");
    UMPOOL_CHECK(seen.insert(b).second, "block on two free lists");
  };
  for (void* b : ready_) check(b);
  for (const auto& [s, list] : by_stream_) for (void* b : list.blocks) check(b);
  for (const Pending& p : pending_) for (void* b : p.blocks) check(b);
  for (const Slab* s : partial_) UMPOOL_CHECK(s->carved < s->info().blocks, "full slab on partial list");
}

}  // namespace umpool::internal
