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

absl::StatusOr<Arena::Mapping> Arena::MapSpan(std::size_t bytes, Role role, Stream stream) {
  SharedCapacity* shared = options_.shared_capacity.get();
  auto claim = [&](std::size_t n) -> absl::Status {
    MutexLock lock(&grow_mu_);
    if (n > capacity_ - std::min(capacity_, reserved_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the pool's cap of ", capacity_, " bytes would be exceeded (", reserved_,
          " reserved, ", n, " more needed)"));
    }
    if (shared != nullptr && !shared->TryClaim(n)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the cap of ", shared->cap(), " bytes this pool shares with others would be exceeded (",
          shared->reserved(), " reserved, ", n, " more needed)"));
    }
    reserved_ += n;  // claim before the slow Map, release on failure
    return absl::OkStatus();
  };
  auto unclaim = [&](std::size_t n) {
    MutexLock lock(&grow_mu_);
    reserved_ -= n;
    if (shared != nullptr) shared->Release(n);
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
  if (!IsDeviceMemory(role)) {  // plain device memory has nothing to advise or prefetch
    counters_.Bump(counters_.advise_calls);
    if (absl::Status st = backend_.Advise(base, bytes, policy.advice()); !st.ok()) {
      (void)backend_.Unmap(m.map_ptr, m.map_bytes);
      unclaim(m.map_bytes);
      return st;
    }
    if (ShouldPrefetch(policy, bytes)) {
      counters_.Bump(counters_.prefetch_calls);
      // As in the seed allocator, a failed prefetch is a warning, not an error.
      if (absl::Status st = backend_.Prefetch(base, bytes, Location::kDevice, stream); !st.ok()) {
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true)) {
          std::fprintf(stderr, "umpool: warning: prefetch failed (reported once): %s\n",
                       st.ToString().c_str());
        }
      }
    }
  }
  counters_.Bump(counters_.backend_allocations);
  counters_.reserved_bytes.Add(static_cast<std::int64_t>(m.map_bytes));
  return m;
}

absl::StatusOr<Segment*> Arena::GrowSegment(Role role, const LargeHeap& space,
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
      chunk = std::clamp<std::size_t>(heaps_[heap_of(role)]->slab_bytes / 16 & ~(kMapGranularity - 1),
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
  seg->prefetched = !IsDeviceMemory(role) && ShouldPrefetch(options_.policy(role), bytes);
  Segment* raw = seg.get();
  {
    MutexLock lock(&grow_mu_);
    UMPOOL_CHECK(pagemap_.Insert(raw), "backend returned an address above 2^48");
    segments_[raw] = std::move(seg);
  }
  counters_.large_segments.fetch_add(1, std::memory_order_relaxed);
  AddLargeReserved(static_cast<std::int64_t>(m->map_bytes));
  return raw;
}

absl::Status Arena::UnmapSegment(Segment* seg) {
  MutexLock lock(&grow_mu_);
  pagemap_.Erase(seg);
  auto it = segments_.find(seg);
  UMPOOL_CHECK(it != segments_.end(), "unmapping an unknown segment");
  absl::Status st = BackendFor(seg->role).Unmap(seg->map_ptr, seg->map_bytes);
  reserved_ -= seg->map_bytes;
  if (options_.shared_capacity != nullptr) options_.shared_capacity->Release(seg->map_bytes);
  counters_.reserved_bytes.Add(-static_cast<std::int64_t>(seg->map_bytes));
  counters_.Bump(counters_.backend_frees);
  counters_.large_segments.fetch_sub(1, std::memory_order_relaxed);
  AddLargeReserved(-static_cast<std::int64_t>(seg->map_bytes));
  retired_.push_back(std::move(it->second));
  segments_.erase(it);
  return st;
}

void Arena::PrefetchIfNeeded(Role role, void* p, std::size_t bytes, Stream stream) {
  if (heaps_.size() == kNumRoles) return;  // no heap is shared
  const Span* seg = pagemap_.Lookup(p);
  if (seg == nullptr || seg->kind != SpanKind::kSegment ||
      static_cast<const Segment*>(seg)->prefetched || seg->role == role ||
      !ShouldPrefetch(options_.policy(role), bytes) || IsDeviceMemory(role)) {
    return;
  }
  counters_.Bump(counters_.prefetch_calls);
  (void)backend_.Prefetch(p, bytes, Location::kDevice, stream);  // a hint; failures are harmless
}

}  // namespace umpool::internal
