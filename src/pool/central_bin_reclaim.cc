// CentralBin: giving empty slabs back (TakeEmpty), pictures and checks.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "src/base/check.h"
#include "src/pool/central_bin.h"

namespace umpool::internal {

absl::Status CentralBin::TakeEmpty(Fencer& fencer, bool wait, std::vector<EmptySlab>* out,
                                   std::size_t keep) {
  // The common case, asked on every miss of the heap's large spaces: no
  // slab is empty, and the bin is not even locked (measured: counting free
  // blocks per slab here instead was a third of a training replay's
  // allocator time).
  if (!wait && empty_slabs_.load(std::memory_order_relaxed) == 0) return absl::OkStatus();
  MutexLock lock(&mu_);
  absl::Status status = wait ? free_.WaitAll(fencer, ToReady()) : free_.Poll(fencer, ToReady());
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

  absl::flat_hash_map<Slab*, ReuseTerms> gone;
  std::vector<Slab*> empties;
  for (Slab* s : slabs_) {
    if (Empty(s)) empties.push_back(s);
  }
  // `keep` empty slabs stay: the lowest.
  if (empties.size() <= keep) return absl::OkStatus();
  std::sort(empties.begin(), empties.end(), [](Slab* a, Slab* b) { return a->base < b->base; });
  for (std::size_t i = keep; i < empties.size(); ++i) gone[empties[i]];

  // Terms: the streams whose groups hold the slab's blocks (with their
  // stamps) and the stream its never-carved blocks are bound to, plus the
  // fences of its pending blocks. Fences are made before anything moves, so
  // an event error leaves the bin as it was.
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
  free_.ForEachGroup([&](const BlockStack& items, auto where, Stream s, std::uint64_t seq,
                         const Fences* fences) {
    using W = std::decay_t<decltype(where)>;
    if (where == W::kReady) return;
    absl::flat_hash_set<Slab*> hit;
    items.ForEach([&](void* b) {
      if (Slab* slab = SlabOf(b); gone.contains(slab)) hit.insert(slab);
    });
    for (Slab* slab : hit) {
      if (where == W::kStream) {
        add_stream(slab, s, seq);
      } else {
        auto& f = gone[slab].fences;
        f.insert(f.end(), fences->begin(), fences->end());
      }
    }
  });
  for (auto& [slab, terms] : gone) {
    if (slab->bound) add_stream(slab, slab->bound_stream, slab->bound_seq);
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

  free_.EraseIf([&](void* b) { return gone.contains(SlabOf(b)); });
  std::erase_if(slabs_, [&](Slab* s) { return gone.contains(s); });
  empty_slabs_.fetch_sub(static_cast<int>(gone.size()), std::memory_order_relaxed);
  std::erase_if(partial_, [&](Slab* s) { return gone.contains(s); });
  for (auto& [slab, terms] : gone) out->push_back({slab, std::move(terms)});
  return absl::OkStatus();
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
      char st = kSnapUncarved;
      std::size_t requested = 0;
      if (i < slab->carved) {
        const BlockRecord& r = slab->record(i);
        const std::uint8_t v = r.state.load(std::memory_order_acquire);
        st = v == kLive ? kSnapLive : v == kLiveRecorded ? kSnapRecorded : kSnapFree;
        if (st != kSnapFree) requested = s.block_bytes - r.slack;
      }
      if (!s.blocks.empty() && s.blocks.back().state == st) {
        ++s.blocks.back().count;
        s.blocks.back().requested += requested;
      } else {
        s.blocks.push_back({std::size_t{i} * s.block_bytes, s.block_bytes, 1, st, requested});
      }
    }
    out->push_back(std::move(s));
  }
}

void CentralBin::CheckInvariants() const {
  MutexLock lock(&mu_);
  absl::flat_hash_set<const Slab*> mine(slabs_.begin(), slabs_.end());
  absl::flat_hash_set<void*> seen;
  absl::flat_hash_map<const Slab*, std::uint32_t> in_bin;
  free_.ForEachGroup([&](const BlockStack& items, auto, Stream, std::uint64_t, const Fences*) {
    items.ForEach([&](void* b) {
      Span* span = pagemap_->Lookup(b);
      UMPOOL_CHECK(span != nullptr && span->kind == SpanKind::kSlab, "free block outside any slab");
      auto* slab = static_cast<Slab*>(span);
      ++in_bin[slab];
      UMPOOL_CHECK(mine.contains(slab), "free block in another bin's slab");
      const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(b));
      UMPOOL_CHECK(idx >= 0 && static_cast<std::uint32_t>(idx) < slab->carved,
                   "free block not at a carved block start");
      UMPOOL_CHECK(slab->state(static_cast<std::uint32_t>(idx)).load() == kFree,
                   "block on a free list is not in state kFree");
      UMPOOL_CHECK(seen.insert(b).second, "block on two free lists");
    });
  });
  for (const Slab* s : partial_) UMPOOL_CHECK(s->carved < s->info().blocks, "full slab on partial list");
  int empty = 0;
  for (const Slab* s : slabs_) empty += Empty(s) ? 1 : 0;
  UMPOOL_CHECK(empty == empty_slabs_.load(), "the count of empty slabs is off");
  for (const Slab* s : slabs_) {
    auto it = in_bin.find(s);
    UMPOOL_CHECK(s->in_bin == (it == in_bin.end() ? 0 : it->second),
                 "a slab's in_bin count disagrees with the free lists");
  }
}

}  // namespace umpool::internal
