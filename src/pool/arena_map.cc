// Arena: mapping, advising and unmapping segments under the cap.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "src/base/check.h"
#include "src/pool/arena.h"

namespace umpool::internal {
namespace {

bool ShouldPrefetch(const RolePolicy& policy, std::size_t range_bytes) {
  if (policy.preferred == Location::kHost) return false;  // it lives in host memory
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

}  // namespace

std::size_t Arena::OnGpuLocked(std::size_t* host) const {
  *host = static_cast<std::size_t>(
      std::max<std::int64_t>(0, counters_.host_bytes.current.load(std::memory_order_relaxed)));
  return reserved_ - std::min(reserved_, *host);
}

std::size_t Arena::BytesOverCap() const {
  MutexLock lock(&grow_mu_);
  std::size_t host = 0;
  const std::size_t on_gpu = OnGpuLocked(&host);
  return on_gpu - std::min(on_gpu, capacity_);
}

absl::Status Arena::ClaimReserved(std::size_t n) {
  MutexLock lock(&grow_mu_);
  std::size_t host = 0;
  const std::size_t on_gpu = OnGpuLocked(&host);
  if (n > capacity_ - std::min(capacity_, on_gpu)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the pool's cap of ", capacity_, " bytes would be exceeded (", reserved_, " reserved, ",
        host > 0 ? absl::StrCat(host, " of them evicted to the host, ") : "", n,
        " more needed)"));
  }
  if (SharedCapacity* shared = options_.shared_capacity.get();
      shared != nullptr && !shared->TryClaim(n)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the cap of ", shared->cap(), " bytes this pool shares with others would be exceeded (",
        shared->reserved(), " reserved, ", n, " more needed)"));
  }
  reserved_ += n;
  reserved_high_ = std::max(reserved_high_, reserved_);
  return absl::OkStatus();
}

void Arena::UnclaimReserved(std::size_t n) {
  MutexLock lock(&grow_mu_);
  reserved_ -= n;
  if (options_.shared_capacity != nullptr) options_.shared_capacity->Release(n);
}

absl::Status Arena::PrefetchPopulated(Role role, void* p, std::size_t bytes, Stream stream) {
  if (IsDeviceMemory(role)) return absl::OkStatus();
  if (!backend_.PopulatesOnTouch()) {  // vmm: the memory exists once populated
    counters_.Bump(counters_.prefetch_calls);
    return backend_.Prefetch(p, bytes, Location::kDevice, stream);
  }
  if (!ShouldPrefetch(options_.policy(role), bytes)) return absl::OkStatus();
  counters_.Bump(counters_.prefetch_calls);
  // As in the seed allocator, a failed prefetch is a warning, not an error.
  if (absl::Status st = backend_.Prefetch(p, bytes, Location::kDevice, stream); !st.ok()) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      std::fprintf(stderr, "umpool: warning: prefetch failed (reported once): %s\n",
                   st.ToString().c_str());
    }
  }
  return absl::OkStatus();
}

absl::Status Arena::PopulateInPlace(Segment* seg, std::uintptr_t addr, std::size_t n,
                                    Stream stream) {
  // Below the populated end: a bare tail, refilled with the growth as any
  // bare pages are (after their drops, never faulting page by page).
  const std::uintptr_t end = seg->base + seg->populated;
  const std::size_t bare = end > addr ? end - addr : 0;
  if (absl::Status st = ClaimReserved(n); !st.ok()) return st;
  absl::Status st = bare > 0 ? RefillPages(addr, bare, stream) : absl::OkStatus();
  if (st.ok()) st = PrefetchPopulated(seg->role, reinterpret_cast<void*>(end), n - bare, stream);
  if (!st.ok()) {
    UnclaimReserved(n);
    return st;
  }
  counters_.Bump(counters_.grown_in_place);
  counters_.reserved_bytes.Add(static_cast<std::int64_t>(n));
  counters_.bare_bytes.Add(-static_cast<std::int64_t>(bare));
  AddLargeReserved(static_cast<std::int64_t>(n));
  return absl::OkStatus();
}

absl::StatusOr<Arena::Mapping> Arena::MapSpan(std::size_t map_bytes, std::size_t populate_bytes,
                                              Role role, Stream stream) {
  SharedCapacity* shared = options_.shared_capacity.get();
  // Claims before the slow Map, released on failure.
  auto claim_map = [&](std::size_t n) -> absl::Status {
    MutexLock lock(&grow_mu_);
    if (n > map_limit_ - std::min(map_limit_, mapped_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "mapping ", n, " more bytes would pass the ", map_limit_,
          " bytes the device had free (", mapped_, " mapped)"));
    }
    if (shared != nullptr && !shared->TryMap(n)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "mapping ", n, " more bytes would pass the ", shared->map_limit(),
          " bytes the device had free (", shared->mapped(), " mapped by this pool and the pools "
          "sharing its cap)"));
    }
    mapped_ += n;
    return absl::OkStatus();
  };
  auto unclaim_map = [&](std::size_t n) {
    MutexLock lock(&grow_mu_);
    mapped_ -= n;
    if (shared != nullptr) shared->Unmap(n);
  };
  auto unclaim_reserved = [&] { UnclaimReserved(populate_bytes); };
  if (absl::Status st = ClaimReserved(populate_bytes); !st.ok()) return st;
  if (absl::Status st = claim_map(map_bytes); !st.ok()) {
    unclaim_reserved();
    return st;
  }
  Backend& backend = BackendFor(role);
  absl::StatusOr<void*> p = backend.Map(map_bytes);
  if (!p.ok()) {
    unclaim_map(map_bytes);
    unclaim_reserved();
    return p.status();
  }
  Mapping m{*p, map_bytes, reinterpret_cast<std::uintptr_t>(*p)};
  if ((m.base & (kMapGranularity - 1)) != 0) {
    // Slabs are carved at 2 MiB boundaries: map 2 MiB more and align inside.
    (void)backend.Unmap(*p, map_bytes);
    unclaim_map(map_bytes);
    m.map_bytes = map_bytes + kMapGranularity;
    if (absl::Status st = claim_map(m.map_bytes); !st.ok()) {
      unclaim_reserved();
      return st;
    }
    p = backend.Map(m.map_bytes);
    if (!p.ok()) {
      unclaim_map(m.map_bytes);
      unclaim_reserved();
      return p.status();
    }
    m.map_ptr = *p;
    m.base = (reinterpret_cast<std::uintptr_t>(*p) + kMapGranularity - 1) & ~(kMapGranularity - 1);
  }
  void* const base = reinterpret_cast<void*>(m.base);
  if (!IsDeviceMemory(role)) {  // plain device memory has nothing to advise or prefetch
    counters_.Bump(counters_.advise_calls);
    absl::Status st = backend_.Advise(base, map_bytes, options_.policy(role).advice());
    if (st.ok()) st = PrefetchPopulated(role, base, populate_bytes, stream);
    if (!st.ok()) {
      (void)backend_.Unmap(m.map_ptr, m.map_bytes);
      unclaim_map(m.map_bytes);
      unclaim_reserved();
      return st;
    }
  }
  counters_.Bump(counters_.backend_allocations);
  counters_.reserved_bytes.Add(static_cast<std::int64_t>(populate_bytes));
  counters_.mapped_bytes.Add(static_cast<std::int64_t>(m.map_bytes));
  return m;
}

absl::StatusOr<Segment*> Arena::GrowSegment(Role role, const LargeHeap& space,
                                            std::size_t min_bytes, bool for_slab,
                                            Stream stream) {
  std::size_t populate = (min_bytes + kMapGranularity - 1) & ~(kMapGranularity - 1);
  std::size_t map = populate;
  {
    MutexLock lock(&grow_mu_);
    if (!Lazy(role)) {
      // Few backend calls while a space fills, little slack once it stops:
      // slab space grows by 1/16 of what the heap has in slabs (2 to 256
      // MiB); a large space, for requests below kLargeSegmentLimit, by 1/8
      // of what it holds (20 to 128 MiB, shared best fit); bigger requests
      // get a segment of their own. A chunk that would pass the cap is not
      // taken, so a request that fits under the cap never fails for it.
      std::size_t chunk = 0;
      if (for_slab) {
        chunk = std::clamp<std::size_t>(
            HeapSlabBytes(heap_of(role)) / 16 & ~(kMapGranularity - 1), kMapGranularity,
            std::size_t{256} << 20);
      } else if (min_bytes < kLargeSegmentLimit) {
        chunk = std::clamp<std::size_t>(space.bytes() / 8 & ~(kMapGranularity - 1),
                                        kLargeSegmentBytes, kLargeSegmentMaxBytes);
      }
      if (chunk > populate && chunk <= capacity_ - std::min(capacity_, reserved_)) {
        populate = map = chunk;
      }
    } else {
      // The reserve: its space grows into it in place, so the space's free
      // blocks keep merging (no segment boundary) at no cost in GPU memory.
      // Pools sharing a cap (a device's pool and its private pools) share a
      // map limit too: a reserve takes at most a quarter of the room they
      // have left, so one pool's reserves never take it all.
      std::size_t left = map_limit_ - std::min(map_limit_, mapped_);
      if (const SharedCapacity* shared = options_.shared_capacity.get()) {
        const std::size_t limit = shared->map_limit();
        left = std::min(left, limit - std::min(limit, shared->mapped()));
      }
      const std::size_t want = std::max(kMinReserveBytes, 2 * space.mapped_bytes());
      const std::size_t reserve = std::min(want, left / 4) & ~(kMapGranularity - 1);
      if (populate <= left - reserve) map = populate + reserve;
    }
  }
  absl::StatusOr<Mapping> m = MapSpan(map, populate, role, stream);
  if (!m.ok() && map > populate && absl::IsResourceExhausted(m.status())) {
    m = MapSpan(populate, populate, role, stream);  // the reserve did not fit
    map = populate;
  }
  if (!m.ok()) {
    // The map limit (or the backend) refused: a reserve of the heap, cut
    // off its segment, costs no new mapping.
    if (!absl::IsResourceExhausted(m.status()) || !Lazy(role)) return m.status();
    absl::StatusOr<Segment*> cut = CutSegment(role, populate, stream);
    if (!cut.ok() || *cut == nullptr) return m.status();
    return *cut;
  }
  auto seg = std::make_unique<Segment>(m->base, map, role, m->map_ptr, m->map_bytes);
  seg->populated = populate;
  return Register(std::move(seg), /*cut=*/false);
}

Segment* Arena::Register(std::unique_ptr<Segment> seg, bool cut) {
  seg->prefetched =
      !IsDeviceMemory(seg->role) && ShouldPrefetch(options_.policy(seg->role), seg->populated);
  Segment* raw = seg.get();
  {
    MutexLock lock(&grow_mu_);
    if (cut) {
      pagemap_.Cover(raw->base, raw->bytes, raw);
    } else {
      UMPOOL_CHECK(pagemap_.Insert(raw), "backend returned an address above 2^48");
      mappings_[raw->map_ptr] = MappingPieces{raw->map_bytes, raw->role, 0};
    }
    ++mappings_.at(raw->map_ptr).pieces;
    segments_[raw] = std::move(seg);
  }
  counters_.large_segments.fetch_add(1, std::memory_order_relaxed);
  AddLargeReserved(static_cast<std::int64_t>(raw->populated));
  return raw;
}

absl::StatusOr<Segment*> Arena::CutSegment(Role role, std::size_t populate, Stream stream) {
  // A vmm reserve costs only address space, so the map limit is never what
  // stops a vmm pool, and a cut whose pages could not be populated could not
  // be undone: none.
  if (!backend_.PopulatesOnTouch()) return nullptr;
  if (absl::Status st = ClaimReserved(populate); !st.ok()) return st;
  Heap& h = *heaps_[heap_of(role)];
  std::optional<LargeHeap::Cut> cut = h.slab_space.CutReserve(populate);
  if (!cut) cut = h.big_slab_space.CutReserve(populate);
  for (LargeHeap& space : h.large) {
    if (!cut) cut = space.CutReserve(populate);
  }
  if (!cut) {
    UnclaimReserved(populate);
    return nullptr;
  }
  // Same heap, so the same advice: the mapping was advised for all of it.
  auto seg = std::make_unique<Segment>(cut->base, cut->bytes, role, cut->donor->map_ptr,
                                       cut->donor->map_bytes);
  seg->populated = populate;
  (void)PrefetchPopulated(role, reinterpret_cast<void*>(cut->base), populate, stream);  // a hint here
  counters_.Bump(counters_.reserves_cut);
  counters_.reserved_bytes.Add(static_cast<std::int64_t>(populate));
  return Register(std::move(seg), /*cut=*/true);
}

absl::Status Arena::UnmapSegment(Segment* seg) {
  MutexLock lock(&grow_mu_);
  pagemap_.Erase(seg);
  auto it = segments_.find(seg);
  UMPOOL_CHECK(it != segments_.end(), "unmapping an unknown segment");
  absl::Status st;
  // Its bare pages left the reserved bytes when they were given back.
  const std::size_t held = seg->reserved();
  reserved_ -= held;
  if (options_.shared_capacity != nullptr) options_.shared_capacity->Release(held);
  counters_.reserved_bytes.Add(-static_cast<std::int64_t>(held));
  counters_.bare_bytes.Add(-static_cast<std::int64_t>(seg->bare_bytes));
  auto m = mappings_.find(seg->map_ptr);
  UMPOOL_CHECK(m != mappings_.end() && m->second.pieces > 0, "unmapping an unknown mapping");
  if (--m->second.pieces == 0) {
    st = BackendFor(m->second.role).Unmap(seg->map_ptr, seg->map_bytes);
    mapped_ -= seg->map_bytes;
    if (options_.shared_capacity != nullptr) options_.shared_capacity->Unmap(seg->map_bytes);
    counters_.mapped_bytes.Add(-static_cast<std::int64_t>(seg->map_bytes));
    counters_.Bump(counters_.backend_frees);
    mappings_.erase(m);
  }
  counters_.large_segments.fetch_sub(1, std::memory_order_relaxed);
  AddLargeReserved(-static_cast<std::int64_t>(held));
  retired_.push_back(std::move(it->second));
  segments_.erase(it);
  return st;
}

void Arena::PrefetchIfNeeded(Role role, void* p, std::size_t bytes, Stream stream) {
  if (heaps_.size() == kNumRoles) return;  // no heap is shared
  const Span* seg = pagemap_.Lookup(p);
  if (seg == nullptr || seg->kind != SpanKind::kSegment ||
      static_cast<const Segment*>(seg)->prefetched || seg->role == role ||
      !ShouldPrefetch(options_.policy(role), bytes) || IsDeviceMemory(role) ||
      !backend_.PopulatesOnTouch()) {
    return;
  }
  counters_.Bump(counters_.prefetch_calls);
  (void)backend_.Prefetch(p, bytes, Location::kDevice, stream);  // a hint; failures are harmless
}

}  // namespace umpool::internal
