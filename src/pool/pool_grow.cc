// PoolCore: creation, growth, release (Trim and the out-of-memory path).
#include <algorithm>
#include <cstdio>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/pool/check.h"
#include "src/pool/pool_core.h"
#include "src/pool/thread_registry.h"

namespace umpool::internal {
namespace {

bool ShouldPrefetch(const RolePolicy& policy, std::size_t range_bytes) {
  switch (policy.prefetch) {
    case PrefetchMode::kAlways:
      return true;
    case PrefetchMode::kNever:
      return false;
    case PrefetchMode::kBelowThreshold:
      return range_bytes < policy.prefetch_threshold_bytes;
  }
  return false;
}

void MaxInto(std::atomic<std::int64_t>& peak, std::int64_t now) {
  std::int64_t p = peak.load(std::memory_order_relaxed);
  while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PoolCore>> PoolCore::Create(
    const PoolOptions& options, std::unique_ptr<Backend> backend,
    std::unique_ptr<Backend> device_memory) {
  if (absl::Status st = options.Validate(); !st.ok()) return st;
  if (backend == nullptr) return absl::InvalidArgumentError("null backend");
  absl::StatusOr<std::size_t> avail = backend->AvailableBytes();
  if (!avail.ok()) return avail.status();
  std::size_t cap = options.capacity_bytes != 0 ? options.capacity_bytes : *avail;
  if (options.capacity_bytes > *avail && backend->kind() == BackendKind::kManaged &&
      !options.allow_oversubscription) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity_bytes ", options.capacity_bytes, " exceeds the ", *avail,
        " bytes the GPU has free; asking for more managed memory than is free can hang a "
        "shared GPU. Set allow_oversubscription (e.g. GH200 Extended GPU Memory) to allow it"));
  }
  std::unique_ptr<TraceRecorder> recorder;
  if (!options.trace_path.empty()) {
    absl::StatusOr<std::unique_ptr<TraceRecorder>> r =
        TraceRecorder::Open(options.trace_path, options.device);
    if (!r.ok()) return r.status();
    recorder = *std::move(r);
  }
  std::unique_ptr<PoolCore> core(
      new PoolCore(options, std::move(backend), std::move(device_memory), cap));
  core->recorder_ = std::move(recorder);
  return core;
}

PoolCore::PoolCore(const PoolOptions& options, std::unique_ptr<Backend> backend,
                   std::unique_ptr<Backend> device_memory, std::size_t capacity)
    : options_(options),
      backend_(std::move(backend)),
      device_memory_backend_(std::move(device_memory)),
      initial_capacity_(capacity),
      cached_classes_(!options.thread_cache || options.thread_cache_max_class_bytes < kClassQuantum
                          ? 0
                          : SizeClassIndex(std::min(options.thread_cache_max_class_bytes,
                                                    kMaxClassBytes)) + 1),
      id_(RegisterPool(this)),
      fencer_(*backend_),
      capacity_(capacity),
      capacity_view_(capacity) {
  auto key = [&](int r) {
    const RolePolicy& p = options.roles[r];
    return std::make_tuple(p.accessed_by, p.read_mostly, p.discard_on_free, p.device_memory);
  };
  for (int r = 0; r < kNumRoles; ++r) {
    for (int q = 0; q < r && heaps_[r] == nullptr; ++q) {
      if (key(q) == key(r)) heaps_[r] = heaps_[q];
    }
    if (heaps_[r] == nullptr) {
      heap_store_.push_back(std::make_unique<RoleHeap>());
      heaps_[r] = heap_store_.back().get();
    }
  }
}

std::size_t PoolCore::MaxCapacity() const {
  return backend_->kind() == BackendKind::kManaged && !options_.allow_oversubscription
             ? initial_capacity_
             : SIZE_MAX;
}

absl::Status PoolCore::SetCapacity(std::size_t bytes) {
  if (bytes < kSlabGranularity) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity of ", bytes, " bytes is below the 2 MiB minimum"));
  }
  if (bytes > MaxCapacity()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity of ", bytes, " bytes exceeds the ", initial_capacity_,
        " bytes the pool was created with (the GPU's free memory); set "
        "allow_oversubscription to go beyond it"));
  }
  bool over = false;
  {
    MutexLock lock(&grow_mu_);
    capacity_ = bytes;
    capacity_view_.store(bytes, std::memory_order_relaxed);
    over = reserved_ > bytes;
  }
  if (over) return ReleaseCached();
  return absl::OkStatus();
}

PoolCore::~PoolCore() {
  UnregisterPool(id_);
  // No queued work may touch memory we return; cudaFree would sync anyway.
  (void)backend_->Synchronize();
  heap_store_.clear();  // drops fences and large blocks first
  MutexLock lock(&grow_mu_);
  for (auto& [seg, owned] : spans_) (void)BackendFor(seg->role).Unmap(seg->map_ptr, seg->map_bytes);
  spans_.clear();
}

absl::StatusOr<PoolCore::Mapping> PoolCore::MapSpan(std::size_t bytes, Role role,
                                                    Stream stream) {
  auto claim = [&](std::size_t n) -> absl::Status {
    MutexLock lock(&grow_mu_);
    if (n > capacity_ - std::min(capacity_, reserved_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the pool's cap of ", capacity_, " bytes would be exceeded (", reserved_,
          " reserved, ", n, " more needed)"));
    }
    reserved_ += n;  // claim before the slow Map, release on failure
    return absl::OkStatus();
  };
  auto unclaim = [&](std::size_t n) {
    MutexLock lock(&grow_mu_);
    reserved_ -= n;
  };
  if (absl::Status st = claim(bytes); !st.ok()) return st;
  Backend& backend = BackendFor(role);
  absl::StatusOr<void*> p = backend.Map(bytes);
  if (!p.ok()) {
    unclaim(bytes);
    return p.status();
  }
  Mapping m{*p, bytes, reinterpret_cast<std::uintptr_t>(*p)};
  if ((m.base & (kMapGranularity - 1)) != 0) {
    // Slabs are carved at 2 MiB boundaries: map 2 MiB more and align inside.
    (void)backend.Unmap(*p, bytes);
    unclaim(bytes);
    m.map_bytes = bytes + kMapGranularity;
    if (absl::Status st = claim(m.map_bytes); !st.ok()) return st;
    p = backend.Map(m.map_bytes);
    if (!p.ok()) {
      unclaim(m.map_bytes);
      return p.status();
    }
    m.map_ptr = *p;
    m.base = (reinterpret_cast<std::uintptr_t>(*p) + kMapGranularity - 1) & ~(kMapGranularity - 1);
  }
  void* const base = reinterpret_cast<void*>(m.base);
  const RolePolicy& policy = options_.policy(role);
  if (&backend == backend_.get()) {  // plain device memory has nothing to advise or prefetch
    counters_.advise_calls.fetch_add(1, std::memory_order_relaxed);
    if (absl::Status st = backend_->Advise(base, bytes, policy); !st.ok()) {
      (void)backend_->Unmap(m.map_ptr, m.map_bytes);
      unclaim(m.map_bytes);
      return st;
    }
    if (ShouldPrefetch(policy, bytes)) {
      counters_.prefetch_calls.fetch_add(1, std::memory_order_relaxed);
      // As in the seed allocator, a failed prefetch is a warning, not an error.
      if (absl::Status st = backend_->Prefetch(base, bytes, Location::kDevice, stream); !st.ok()) {
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true)) {
          std::fprintf(stderr, "umpool: warning: prefetch failed (reported once): %s\n",
                       st.ToString().c_str());
        }
      }
    }
  }
  counters_.backend_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto now = counters_.reserved.fetch_add(static_cast<std::int64_t>(m.map_bytes)) +
                   static_cast<std::int64_t>(m.map_bytes);
  MaxInto(counters_.reserved_peak, now);
  return m;
}

absl::StatusOr<Segment*> PoolCore::GrowSegment(Role role, const LargeHeap& space,
                                               std::size_t min_bytes, bool for_slab,
                                               Stream stream) {
  // Few backend calls while a space fills, little slack once it stops:
  // slab space grows by 1/16 of what the heap has in slabs (2 to 256 MiB);
  // a large space, for requests below kLargeSegmentLimit, by 1/8 of what it
  // holds (20 to 128 MiB, shared best fit); bigger requests get a segment of
  // their own. When the chunk would pass the cap, only what the request needs
  // is mapped, so a request that fits under the cap never fails for the chunk.
  std::size_t bytes = (min_bytes + kMapGranularity - 1) & ~(kMapGranularity - 1);
  {
    MutexLock lock(&grow_mu_);
    std::size_t chunk = 0;
    if (for_slab) {
      chunk = std::clamp<std::size_t>(
          heaps_[static_cast<int>(role)]->slab_bytes / 16 & ~(kMapGranularity - 1),
          kMapGranularity, std::size_t{256} << 20);
    } else if (min_bytes < kLargeSegmentLimit) {
      chunk = std::clamp<std::size_t>(space.bytes() / 8 & ~(kMapGranularity - 1),
                                      kLargeSegmentBytes, kLargeSegmentMaxBytes);
    }
    if (chunk > bytes && chunk <= capacity_ - std::min(capacity_, reserved_)) bytes = chunk;
  }
  absl::StatusOr<Mapping> m = MapSpan(bytes, role, stream);
  if (!m.ok()) return m.status();
  auto seg = std::make_unique<Segment>(m->base, bytes, role, m->map_ptr, m->map_bytes);
  seg->prefetched = &BackendFor(role) == backend_.get() && ShouldPrefetch(options_.policy(role), bytes);
  Segment* raw = seg.get();
  {
    MutexLock lock(&grow_mu_);
    UMPOOL_CHECK(pagemap_.Insert(raw), "backend returned an address above 2^48");
    spans_[raw] = std::move(seg);
  }
  counters_.large_segments.fetch_add(1, std::memory_order_relaxed);
  AddLargeReserved(static_cast<std::int64_t>(m->map_bytes));
  return raw;
}

void PoolCore::AddLargeReserved(std::int64_t delta) {
  const std::int64_t now = counters_.large_reserved.fetch_add(delta) + delta;
  if (delta > 0) MaxInto(counters_.large_reserved_peak, now);
}

absl::StatusOr<void*> PoolCore::TakeRange(Role role, std::size_t bytes, Stream stream,
                                          bool for_slab, bool* cross_stream, std::size_t* got,
                                          std::uint64_t* bound_seq, bool* grew) {
  RoleHeap& h = *heaps_[static_cast<int>(role)];
  LargeHeap& heap = for_slab ? h.slab_space : h.large[static_cast<int>(role)];
  std::uint64_t seq = 0;
  // Free memory of the heap, in the order it is tried before the backend is
  // asked: the space itself; empty slabs of any class given back; a wholly
  // free segment of another space (not one much larger than the request: its
  // owner will want it whole again; measured, a limit of twice the growth
  // size let KV blocks fill activation segments); and once more after this
  // thread's cache is flushed, since the blocks it holds may be all that
  // keeps a slab from being empty.
  auto take_free = [&](bool reclaim) -> absl::StatusOr<void*> {
    if (reclaim && ReclaimEmptySlabs(h, /*wait=*/false, nullptr) > 0) {
      absl::StatusOr<void*> p = heap.Take(bytes, stream, fencer_, cross_stream, &seq, got);
      if (!p.ok() || *p != nullptr) return p;
    }
    ReuseTerms terms;
    Segment* s = StealSegment(h, heap, bytes, std::max(2 * bytes, bytes + kLargeSegmentBytes),
                              stream, &terms);
    if (s == nullptr) return nullptr;
    counters_.segments_moved.fetch_add(1, std::memory_order_relaxed);
    heap.AdoptSegment(s, terms);
    return heap.Take(bytes, stream, fencer_, cross_stream, &seq, got);
  };
  absl::StatusOr<void*> p = heap.Take(bytes, stream, fencer_, cross_stream, &seq, got);
  if (p.ok() && *p == nullptr) p = take_free(/*reclaim=*/true);
  if (p.ok() && *p == nullptr) {
    if (ThreadCache* tc = FindOwnedCache(id_); tc != nullptr && tc->cached_bytes > 0) {
      tc->FlushAll();
      p = take_free(/*reclaim=*/true);
    }
  }
  if (!p.ok()) return p;
  if (*p != nullptr) {
    if (bound_seq != nullptr) *bound_seq = seq;
    PrefetchIfNeeded(role, *p, bytes, stream);
    return p;
  }
  absl::StatusOr<Segment*> seg = GrowSegment(role, heap, bytes, for_slab, stream);
  if (!seg.ok()) return seg.status();
  *cross_stream = false;
  if (grew != nullptr) *grew = true;
  if (bound_seq != nullptr) *bound_seq = 0;  // fresh memory: no GPU work touched it
  return heap.AddSegmentAndTake(*seg, bytes, got);
}

Segment* PoolCore::StealSegment(RoleHeap& h, LargeHeap& into, std::size_t bytes,
                                std::size_t max_bytes, Stream stream, ReuseTerms* terms) {
  if (&into != &h.slab_space) {
    if (Segment* s = h.slab_space.StealFreeSegment(bytes, max_bytes, stream, fencer_, terms)) {
      return s;
    }
  }
  // The large spaces of long-lived roles keep their free segments: a KV cache
  // drained between batches fills again, and lending its segments to
  // activations made it grow anew every cycle of a steady workload.
  for (Role r : {Role::kActivations, Role::kDefault}) {
    LargeHeap& space = h.large[static_cast<int>(r)];
    if (&space == &into) continue;
    if (Segment* s = space.StealFreeSegment(bytes, max_bytes, stream, fencer_, terms)) return s;
  }
  return nullptr;
}

void PoolCore::PrefetchIfNeeded(Role role, void* p, std::size_t bytes, Stream stream) {
  if (heap_store_.size() == kNumRoles) return;  // no heap is shared
  const Span* seg = pagemap_.Lookup(p);
  if (seg == nullptr || seg->kind != SpanKind::kSegment || static_cast<const Segment*>(seg)->prefetched ||
      seg->role == role || !ShouldPrefetch(options_.policy(role), bytes) ||
      &BackendFor(role) != backend_.get()) {
    return;
  }
  counters_.prefetch_calls.fetch_add(1, std::memory_order_relaxed);
  (void)backend_->Prefetch(p, bytes, Location::kDevice, stream);  // a hint; failures are harmless
}

absl::StatusOr<Slab*> PoolCore::GrowSlab(Role role, int cls, Stream stream) {
  const std::size_t bytes = kSizeClasses[cls].slab_bytes;
  bool cross = false;
  std::uint64_t bound_seq = 0;
  std::size_t got = 0;
  absl::StatusOr<void*> p =
      TakeRange(role, bytes, stream, /*for_slab=*/true, &cross, &got, &bound_seq);
  if (!p.ok()) return p.status();
  if (cross) counters_.cross_stream_reuses.fetch_add(1, std::memory_order_relaxed);
  const auto base = reinterpret_cast<std::uintptr_t>(*p);
  Span* carrier = pagemap_.Lookup(*p);
  UMPOOL_CHECK(carrier != nullptr && carrier->kind == SpanKind::kSegment,
               "a slab's range is not in a segment");
  auto slab = std::make_unique<Slab>(base, role, cls);
  slab->carrier = carrier;
  if (bound_seq != 0) {  // memory last freed on `stream`: other streams wait for it
    slab->bound = true;
    slab->bound_stream = stream;
    slab->bound_seq = bound_seq;
  }
  Slab* raw = slab.get();
  {
    MutexLock lock(&grow_mu_);
    pagemap_.Cover(base, bytes, raw);
    slabs_[raw] = std::move(slab);
    heaps_[static_cast<int>(role)]->slab_bytes += bytes;
  }
  counters_.slabs.fetch_add(1, std::memory_order_relaxed);
  AddLargeReserved(-static_cast<std::int64_t>(bytes));
  return raw;
}

void PoolCore::ReturnSlab(Slab* slab, ReuseTerms terms) {
  {
    MutexLock lock(&grow_mu_);
    pagemap_.Cover(slab->base, slab->bytes, slab->carrier);
    heaps_[static_cast<int>(slab->role)]->slab_bytes -= slab->bytes;
    auto it = slabs_.find(slab);
    UMPOOL_CHECK(it != slabs_.end(), "returning an unknown slab");
    // Kept until the pool dies: a racing lookup of a stale pointer may still
    // read it (host memory only: its state bytes).
    retired_.push_back(std::move(it->second));
    slabs_.erase(it);
  }
  counters_.slabs.fetch_sub(1, std::memory_order_relaxed);
  counters_.slabs_reclaimed.fetch_add(1, std::memory_order_relaxed);
  AddLargeReserved(static_cast<std::int64_t>(slab->bytes));
  heaps_[static_cast<int>(slab->role)]->slab_space.GiveBack(slab->base, std::move(terms));
}

std::size_t PoolCore::ReclaimEmptySlabs(RoleHeap& heap, bool wait, absl::Status* status) {
  std::vector<CentralBin::EmptySlab> empty;
  for (CentralBin& bin : heap.bins) {
    // An event error leaves that bin as it was.
    absl::Status st = bin.TakeEmpty(fencer_, pagemap_, wait, &empty);
    if (status != nullptr) status->Update(st);
  }
  for (CentralBin::EmptySlab& e : empty) ReturnSlab(e.slab, std::move(e.terms));
  return empty.size();
}

absl::Status PoolCore::UnmapSegment(Segment* seg) {
  MutexLock lock(&grow_mu_);
  pagemap_.Erase(seg);
  auto it = spans_.find(seg);
  UMPOOL_CHECK(it != spans_.end(), "unmapping an unknown segment");
  absl::Status st = BackendFor(seg->role).Unmap(seg->map_ptr, seg->map_bytes);
  reserved_ -= seg->map_bytes;
  counters_.reserved.fetch_sub(static_cast<std::int64_t>(seg->map_bytes));
  counters_.backend_frees.fetch_add(1, std::memory_order_relaxed);
  counters_.large_segments.fetch_sub(1, std::memory_order_relaxed);
  AddLargeReserved(-static_cast<std::int64_t>(seg->map_bytes));
  retired_.push_back(std::move(it->second));
  spans_.erase(it);
  return st;
}

absl::Status PoolCore::ReleaseCached() {
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError(
        "cannot release cached memory during a CUDA graph capture (it would wait for events and "
        "call cudaFree); call Trim after EndCapture");
  }
  DrainDiscards();
  if (ThreadCache* tc = FindOwnedCache(id_)) tc->FlushAll();
  // Other threads flush at their next call.
  flush_epoch_.fetch_add(1, std::memory_order_relaxed);
  absl::Status status;
  std::vector<Segment*> segments;
  for (auto& heap : heap_store_) {
    ReclaimEmptySlabs(*heap, /*wait=*/true, &status);
    for (LargeHeap& space : heap->large) status.Update(space.ReleaseFree(fencer_, &segments));
    status.Update(heap->slab_space.ReleaseFree(fencer_, &segments));
  }
  for (Segment* s : segments) status.Update(UnmapSegment(s));
  return status;
}

absl::Status PoolCore::Trim() {
  counters_.trims.fetch_add(1, std::memory_order_relaxed);
  return ReleaseCached();
}

absl::Status PoolCore::OutOfMemory(std::size_t bytes, Role role, const absl::Status& cause) {
  if (!absl::IsResourceExhausted(cause)) return cause;
  counters_.ooms.fetch_add(1, std::memory_order_relaxed);
  return absl::ResourceExhaustedError(absl::StrCat(
      "umpool: out of memory allocating ", bytes, " bytes (role ", RoleName(role), ") on ",
      backend_->Describe(), ": ", cause.message(), ". Pool: ", GetStats().Summary()));
}

void PoolCore::RetireCache(ThreadCache* cache) {
  cache->FlushAll();
  counters_.allocations.fetch_add(static_cast<std::uint64_t>(cache->allocations.Get()));
  counters_.frees.fetch_add(static_cast<std::uint64_t>(cache->frees.Get()));
  counters_.cache_hits.fetch_add(static_cast<std::uint64_t>(cache->cache_hits.Get()));
  if (cache->unpublished != 0) Publish(cache->unpublished);
  MutexLock lock(&caches_mu_);
  std::erase(caches_, cache);
}

void PoolCore::CheckInvariants() const {
  for (const auto& heap : heap_store_) {
    for (const CentralBin& bin : heap->bins) bin.CheckInvariants(pagemap_);
    for (const LargeHeap& space : heap->large) space.CheckInvariants();
    heap->slab_space.CheckInvariants();
  }
  MutexLock lock(&const_cast<Mutex&>(grow_mu_));
  std::size_t sum = 0;
  for (const auto& [slab, owned] : slabs_) {
    UMPOOL_CHECK(slab->carrier != nullptr && slab->carrier->Contains(slab->base) &&
                     slab->carrier->Contains(slab->base + slab->bytes - 1),
                 "slab outside its segment");
    UMPOOL_CHECK(pagemap_.Lookup(reinterpret_cast<void*>(slab->base)) == slab &&
                     pagemap_.Lookup(reinterpret_cast<void*>(slab->base + slab->bytes - 1)) == slab,
                 "slab not mapped");
  }
  for (const auto& [span, owned] : spans_) {
    sum += span->map_bytes;
    const Span* first = pagemap_.Lookup(reinterpret_cast<void*>(span->base));
    const Span* last = pagemap_.Lookup(reinterpret_cast<void*>(span->base + span->bytes - 1));
    UMPOOL_CHECK(first == span || (first != nullptr && first->kind == SpanKind::kSlab),
                 "segment not mapped");
    UMPOOL_CHECK(last == span || (last != nullptr && last->kind == SpanKind::kSlab),
                 "segment end not mapped");
  }
  UMPOOL_CHECK(sum == reserved_, "reserved bytes disagree with the spans held");
  UMPOOL_CHECK(static_cast<std::int64_t>(sum) == counters_.reserved.load(), "reserved counter drift");
}

}  // namespace umpool::internal
