#include "src/pool/slab_allocator.h"

#include <algorithm>
#include <utility>

#include "src/base/check.h"

namespace umpool::internal {

SlabAllocator::SlabAllocator(Arena& arena, PageMap& pagemap, Fencer& fencer,
                             PoolCounters& counters)
    : arena_(arena), pagemap_(pagemap), fencer_(fencer), counters_(counters) {
  for (int h = 0; h < arena.heaps(); ++h) {
    bins_.push_back(std::make_unique<std::array<CentralBin, kNumClasses>>());
    for (CentralBin& b : *bins_.back()) b.Attach(&pagemap_);
  }
}

absl::StatusOr<int> SlabAllocator::Refill(Stream stream, Role role, int cls, void** out, int max,
                                          bool* grew) {
  CentralBin& b = bin(role, cls);
  TakeResult t = b.Take(stream, out, max, fencer_);
  if (!t.status.ok() && !absl::IsUnavailable(t.status)) counters_.Bump(counters_.fence_errors);
  if (t.count > 0) {
    counters_.Bump(counters_.cross_stream_reuses, static_cast<std::uint64_t>(t.cross_stream));
    return t.count;
  }
  if (arena_.MayReusePending(stream)) {
    // A slab from memory free now first; else the bin's pending blocks (of
    // its size exactly) behind a stream wait (CentralBin::TakeOrdered); then
    // GrowSlab below adopts the slab space's pending ranges before growing.
    absl::StatusOr<Slab*> slab = GrowSlab(role, cls, stream, grew, /*may_grow=*/false);
    if (!slab.ok()) return slab.status();
    if (*slab != nullptr) return b.AddSlabAndTake(*slab, stream, fencer_, out, max);
    absl::Status events;
    const int n = b.TakeOrdered(
        out, max, fencer_, [&](const Fences& f) { return arena_.OrderAfter(stream, f); }, &events);
    if (!events.ok()) counters_.Bump(counters_.fence_errors);
    if (n > 0) {
      counters_.Bump(counters_.ordered_reuses, static_cast<std::uint64_t>(n));
      return n;
    }
  }
  absl::StatusOr<Slab*> slab = GrowSlab(role, cls, stream, grew);
  if (!slab.ok()) return slab.status();
  return b.AddSlabAndTake(*slab, stream, fencer_, out, max);
}

absl::StatusOr<Slab*> SlabAllocator::GrowSlab(Role role, int cls, Stream stream, bool* grew,
                                              bool may_grow) {
  const std::size_t bytes = kSizeClasses[cls].slab_bytes;
  absl::StatusOr<Arena::Range> r =
      arena_.TakeSlabRange(role, bytes, kSizeClasses[cls].size, stream, may_grow);
  if (!r.ok()) return r.status();
  if (r->ptr == nullptr) return nullptr;  // !may_grow: no free memory
  *grew = r->grew;
  if (r->cross_stream) counters_.Bump(counters_.cross_stream_reuses);
  const auto base = reinterpret_cast<std::uintptr_t>(r->ptr);
  Span* carrier = pagemap_.Lookup(r->ptr);
  UMPOOL_CHECK(carrier != nullptr && carrier->kind == SpanKind::kSegment,
               "a slab's range is not in a segment");
  Slab* raw = nullptr;
  {
    MutexLock lock(&slabs_mu_);
    auto slab = std::make_unique<Slab>(base, role, cls, TakeRecords(role, cls));
    slab->carrier = carrier;
    if (r->bound_seq != 0) {  // memory last freed on `stream`: other streams wait for it
      slab->bound = true;
      slab->bound_stream = stream;
      slab->bound_seq = r->bound_seq;
    }
    raw = slab.get();
    slabs_[raw] = std::move(slab);
  }
  arena_.CoverSlab(raw);
  counters_.slabs.fetch_add(1, std::memory_order_relaxed);
  return raw;
}

BlockRecord* SlabAllocator::TakeRecords(Role role, int cls) {
  auto it = spare_records_.find(RecordsKey(role, cls));
  if (it != spare_records_.end() && !it->second.empty()) {
    BlockRecord* r = it->second.back();
    it->second.pop_back();
    return r;
  }
  records_.push_back(Slab::NewRecords(cls));
  return records_.back().get();
}

void SlabAllocator::ReturnSlab(Slab* slab, ReuseTerms terms) {
  arena_.GiveBackSlabRange(slab, std::move(terms));
  {
    MutexLock lock(&slabs_mu_);
    auto it = slabs_.find(slab);
    UMPOOL_CHECK(it != slabs_.end(), "returning an unknown slab");
    spare_records_[RecordsKey(slab->role, slab->size_class())].push_back(slab->records());
    retired_.push_back(std::move(it->second));
    slabs_.erase(it);
  }
  counters_.slabs.fetch_sub(1, std::memory_order_relaxed);
  counters_.Bump(counters_.slabs_reclaimed);
}

void SlabAllocator::Return(Stream stream, Role role, int cls, void* const* blocks, int n) {
  CentralBin& b = bin(role, cls);
  b.Put(stream, blocks, n, fencer_.Stamp());
  // Empty slabs carved from a large space go back to it at once, past a few
  // kept for the next blocks of their class: the role's large blocks need
  // those pages (docs/arena-cycles.md, "One role: slabs in the large space").
  const SizeClassInfo& info = kSizeClasses[cls];
  const auto keep =
      static_cast<int>(std::max<std::size_t>(1, kEmptySlabBytesKept / info.slab_bytes));
  if (b.empty_slabs() > keep && arena_.SlabInLargeSpace(role, info.size)) {
    std::vector<CentralBin::EmptySlab> empty;
    // An event error leaves them in the bin: the next miss gives them back.
    if (b.TakeEmpty(fencer_, /*wait=*/false, &empty, static_cast<std::size_t>(keep)).ok()) {
      for (CentralBin::EmptySlab& e : empty) ReturnSlab(e.slab, std::move(e.terms));
    }
  }
}

void SlabAllocator::ReturnReady(Role role, int cls, void* const* blocks, int n) {
  bin(role, cls).PutReady(blocks, n);
}

void SlabAllocator::ReturnPending(Role role, int cls, Fences fences, void* block) {
  bin(role, cls).PutPending(std::move(fences), block);
}

std::size_t SlabAllocator::ReclaimEmptySlabs(int heap, bool wait, absl::Status* status,
                                             std::size_t min_slab_bytes, std::size_t max_slab_bytes) {
  std::vector<CentralBin::EmptySlab> empty;
  for (int c = 0; c < kNumClasses; ++c) {
    const std::size_t slab_bytes = kSizeClasses[c].slab_bytes;
    if (slab_bytes < min_slab_bytes || slab_bytes > max_slab_bytes) continue;
    CentralBin& b = (*bins_[heap])[c];
    // An event error leaves that bin as it was.
    absl::Status st = b.TakeEmpty(fencer_, wait, &empty);
    if (status != nullptr) status->Update(st);
  }
  // In address order: a bin hands its empty slabs over in its hash map's
  // order, which follows where their records lie in host memory, and the
  // order they go back in can decide how the slab space merges them (a ready
  // block joins a stream's block only if no larger). Placement must not
  // depend on the host heap's layout.
  std::sort(empty.begin(), empty.end(), [](const CentralBin::EmptySlab& a,
                                           const CentralBin::EmptySlab& b) {
    return a.slab->base < b.slab->base;
  });
  for (CentralBin::EmptySlab& e : empty) ReturnSlab(e.slab, std::move(e.terms));
  return empty.size();
}

void SlabAllocator::ReleaseStream(Stream stream) {
  for (auto& heap : bins_) {
    for (CentralBin& b : *heap) b.ReleaseStream(stream);
  }
}

std::vector<ClassStats> SlabAllocator::Classes() const {
  std::vector<ClassStats> rows;
  for (int c = 0; c < kNumClasses; ++c) {
    std::int64_t n = 0;
    for (const auto& heap : bins_) n += (*heap)[c].slabs();
    if (n == 0) continue;
    const SizeClassInfo& info = kSizeClasses[c];
    rows.push_back(ClassStats{c, info.size, info.slab_bytes, n, info.blocks});
  }
  return rows;
}

void SlabAllocator::LiveBlocks(std::vector<BlockInfo>* out) const {
  for (const auto& heap : bins_) {
    for (const CentralBin& b : *heap) {
      b.ForEachSlab([&](const Slab& s) {
        for (std::uint32_t i = 0; i < s.carved; ++i) {
          const BlockRecord& r = s.record(i);
          if (r.state.load(std::memory_order_acquire) == kFree) continue;
          out->push_back(BlockInfo{s.BlockAt(i), s.info().size, s.info().size - r.slack,
                                   r.stream, s.role});
        }
      });
    }
  }
}

void SlabAllocator::Snapshot(std::vector<SpanSnapshot>* out) const {
  for (const auto& heap : bins_) {
    for (const CentralBin& b : *heap) b.Snapshot(out);
  }
}

void SlabAllocator::CheckInvariants() const {
  for (const auto& heap : bins_) {
    for (const CentralBin& b : *heap) b.CheckInvariants();
  }
  MutexLock lock(&slabs_mu_);
  for (const auto& [slab, owned] : slabs_) {
    UMPOOL_CHECK(slab->carrier != nullptr && slab->carrier->Contains(slab->base) &&
                     slab->carrier->Contains(slab->base + slab->bytes - 1),
                 "slab outside its segment");
    UMPOOL_CHECK(pagemap_.Lookup(reinterpret_cast<void*>(slab->base)) == slab &&
                     pagemap_.Lookup(reinterpret_cast<void*>(slab->base + slab->bytes - 1)) == slab,
                 "slab not mapped");
  }
  // Spare records arrays: every record kFree, ready for the next slab.
  std::size_t spare = 0;
  for (const auto& [key, arrays] : spare_records_) {
    const std::size_t n = Slab::RecordCount(key % kNumClasses);
    for (const BlockRecord* r : arrays) {
      for (std::size_t i = 0; i < n; ++i) {
        UMPOOL_CHECK(r[i].state.load() == kFree, "a spare records array holds a live block");
      }
    }
    spare += arrays.size();
  }
  UMPOOL_CHECK(spare + slabs_.size() == records_.size(), "a records array is lost or shared");
}

}  // namespace umpool::internal
