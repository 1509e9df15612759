// PoolCore: creation, growth, release (Trim and the out-of-memory path).
#include <cstdio>
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
  for (auto& h : heaps_) h = std::make_unique<RoleHeap>();
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
  for (auto& h : heaps_) h.reset();  // drops fences and large blocks first
  MutexLock lock(&grow_mu_);
  for (auto& [span, owned] : spans_) {
    (void)BackendFor(span->role).Unmap(reinterpret_cast<void*>(span->base), span->bytes);
  }
  spans_.clear();
}

absl::StatusOr<void*> PoolCore::MapSpan(std::size_t bytes, Role role, Stream stream) {
  {
    MutexLock lock(&grow_mu_);
    if (bytes > capacity_ - std::min(capacity_, reserved_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the pool's cap of ", capacity_, " bytes would be exceeded (", reserved_,
          " reserved, ", bytes, " more needed)"));
    }
    reserved_ += bytes;  // claim before the slow Map, release on failure
  }
  Backend& backend = BackendFor(role);
  absl::StatusOr<void*> p = backend.Map(bytes);
  if (!p.ok()) {
    MutexLock lock(&grow_mu_);
    reserved_ -= bytes;
    return p.status();
  }
  const RolePolicy& policy = options_.policy(role);
  if (&backend != backend_.get()) {  // plain device memory: nothing to advise or prefetch
    counters_.backend_allocations.fetch_add(1, std::memory_order_relaxed);
    const auto now = counters_.reserved.fetch_add(static_cast<std::int64_t>(bytes)) +
                     static_cast<std::int64_t>(bytes);
    MaxInto(counters_.reserved_peak, now);
    return p;
  }
  counters_.advise_calls.fetch_add(1, std::memory_order_relaxed);
  if (absl::Status st = backend_->Advise(*p, bytes, policy); !st.ok()) {
    (void)backend_->Unmap(*p, bytes);
    MutexLock lock(&grow_mu_);
    reserved_ -= bytes;
    return st;
  }
  if (ShouldPrefetch(policy, bytes)) {
    counters_.prefetch_calls.fetch_add(1, std::memory_order_relaxed);
    // As in the seed allocator, a failed prefetch is a warning, not an error.
    if (absl::Status st = backend_->Prefetch(*p, bytes, Location::kDevice, stream); !st.ok()) {
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true)) {
        std::fprintf(stderr, "umpool: warning: prefetch failed (reported once): %s\n",
                     st.ToString().c_str());
      }
    }
  }
  counters_.backend_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto now = counters_.reserved.fetch_add(static_cast<std::int64_t>(bytes)) +
                   static_cast<std::int64_t>(bytes);
  MaxInto(counters_.reserved_peak, now);
  return p;
}

void PoolCore::RegisterSpan(std::unique_ptr<Span> span) {
  MutexLock lock(&grow_mu_);
  UMPOOL_CHECK(pagemap_.Insert(span.get()), "backend returned an address above 2^48");
  Span* raw = span.get();
  spans_[raw] = std::move(span);
}

absl::StatusOr<Slab*> PoolCore::GrowSlab(Role role, int cls, Stream stream) {
  absl::StatusOr<void*> p = MapSpan(kSizeClasses[cls].slab_bytes, role, stream);
  if (!p.ok()) return p.status();
  auto slab = std::make_unique<Slab>(reinterpret_cast<std::uintptr_t>(*p), role, cls);
  Slab* raw = slab.get();
  RegisterSpan(std::move(slab));
  counters_.slabs.fetch_add(1, std::memory_order_relaxed);
  return raw;
}

absl::StatusOr<Segment*> PoolCore::GrowSegment(Role role, std::size_t bytes, Stream stream) {
  absl::StatusOr<void*> p = MapSpan(bytes, role, stream);
  if (!p.ok()) return p.status();
  auto seg = std::make_unique<Segment>(reinterpret_cast<std::uintptr_t>(*p), bytes, role);
  Segment* raw = seg.get();
  RegisterSpan(std::move(seg));
  counters_.large_segments.fetch_add(1, std::memory_order_relaxed);
  const auto now = counters_.large_reserved.fetch_add(static_cast<std::int64_t>(bytes)) +
                   static_cast<std::int64_t>(bytes);
  MaxInto(counters_.large_reserved_peak, now);
  return raw;
}

absl::Status PoolCore::UnmapSpan(Span* span) {
  MutexLock lock(&grow_mu_);
  pagemap_.Erase(span);
  auto it = spans_.find(span);
  UMPOOL_CHECK(it != spans_.end(), "unmapping an unknown span");
  absl::Status st = BackendFor(span->role).Unmap(reinterpret_cast<void*>(span->base), span->bytes);
  reserved_ -= span->bytes;
  counters_.reserved.fetch_sub(static_cast<std::int64_t>(span->bytes));
  counters_.backend_frees.fetch_add(1, std::memory_order_relaxed);
  if (span->kind == SpanKind::kSlab) {
    counters_.slabs.fetch_sub(1, std::memory_order_relaxed);
  } else {
    counters_.large_segments.fetch_sub(1, std::memory_order_relaxed);
    counters_.large_reserved.fetch_sub(static_cast<std::int64_t>(span->bytes));
  }
  retired_.push_back(std::move(it->second));
  spans_.erase(it);
  return st;
}

absl::Status PoolCore::ReleaseCached() {
  DrainDiscards();
  if (ThreadCache* tc = FindOwnedCache(id_)) tc->FlushAll();
  // Other threads flush at their next call.
  flush_epoch_.fetch_add(1, std::memory_order_relaxed);
  absl::Status status;
  std::vector<Slab*> slabs;
  std::vector<Segment*> segments;
  for (auto& heap : heaps_) {
    for (CentralBin& bin : heap->bins) status.Update(bin.ReleaseEmpty(fencer_, pagemap_, &slabs));
    status.Update(heap->large.ReleaseFree(fencer_, &segments));
  }
  for (Slab* s : slabs) status.Update(UnmapSpan(s));
  for (Segment* s : segments) status.Update(UnmapSpan(s));
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
  for (const auto& heap : heaps_) {
    for (const CentralBin& bin : heap->bins) bin.CheckInvariants(pagemap_);
    heap->large.CheckInvariants();
  }
  MutexLock lock(&const_cast<Mutex&>(grow_mu_));
  std::size_t sum = 0;
  for (const auto& [span, owned] : spans_) {
    sum += span->bytes;
    UMPOOL_CHECK(pagemap_.Lookup(reinterpret_cast<void*>(span->base)) == span, "span not mapped");
    UMPOOL_CHECK(pagemap_.Lookup(reinterpret_cast<void*>(span->base + span->bytes - 1)) == span,
                 "span end not mapped");
  }
  UMPOOL_CHECK(sum == reserved_, "reserved bytes disagree with the spans held");
  UMPOOL_CHECK(static_cast<std::int64_t>(sum) == counters_.reserved.load(), "reserved counter drift");
}

}  // namespace umpool::internal
