// PoolCore: creation, and the allocation paths (size class or large block).
#include "src/pool/pool_core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/base/check.h"

namespace umpool::internal {
namespace {

bool ValidRole(Role role) { return static_cast<unsigned>(role) < kNumRoles; }

int CachedClasses(const PoolOptions& o) {
  if (!o.thread_cache || o.thread_cache_max_class_bytes < kClassQuantum) return 0;
  return SizeClassIndex(std::min(o.thread_cache_max_class_bytes, kMaxClassBytes)) + 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PoolCore>> PoolCore::Create(
    const PoolOptions& options, std::unique_ptr<Backend> backend,
    std::unique_ptr<Backend> device_memory) {
  if (absl::Status st = options.Validate(); !st.ok()) return st;
  if (backend == nullptr) return absl::InvalidArgumentError("null backend");
  absl::StatusOr<std::size_t> avail = backend->AvailableBytes();
  if (!avail.ok()) return avail.status();
  const std::size_t cap = options.capacity_bytes != 0 ? options.capacity_bytes : *avail;
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
  // What may be mapped: the device's free memory (managed memory must never
  // be asked for more, touched or not). A vmm reserve is address space only,
  // so a vmm pool may map four times that.
  std::size_t map_limit = std::max(cap, *avail);
  if (!backend->PopulatesOnTouch()) map_limit *= 4;
  std::unique_ptr<PoolCore> core(
      new PoolCore(options, std::move(backend), std::move(device_memory), cap, map_limit));
  core->recorder_ = std::move(recorder);
  return core;
}

PoolCore::PoolCore(const PoolOptions& options, std::unique_ptr<Backend> backend,
                   std::unique_ptr<Backend> device_memory, std::size_t capacity,
                   std::size_t map_limit)
    : options_(options),
      backend_(std::move(backend)),
      device_memory_backend_(std::move(device_memory)),
      cached_classes_(CachedClasses(options)),
      fencer_(*backend_),
      arena_(options_, *backend_, device_memory_backend_.get(), pagemap_, fencer_, counters_,
             capacity, map_limit),
      slabs_(arena_, pagemap_, fencer_, counters_),
      caches_(this, counters_, cached_classes_, options.stats_publish_bytes,
              options.drain_idle_caches) {
  arena_.set_free_memory_source(this);
}

PoolCore::~PoolCore() {
  // No queued work may touch memory we return; cudaFree would sync anyway.
  (void)backend_->Synchronize();
}

std::size_t PoolCore::RoundedSize(std::size_t bytes, Role role) const {
  if (bytes == 0) return 0;
  if (!ValidRole(role)) role = Role::kDefault;
  if (bytes <= options_.policy(role).slab_max_bytes) return kSizeClasses[SizeClassIndex(bytes)].size;
  if (bytes > kMaxRequestBytes) return bytes;
  return (bytes + kLargeQuantum - 1) / kLargeQuantum * kLargeQuantum;
}

// Inlined into the hot path: the block came from a thread cache or a central
// bin, so it lies in a live slab (SlabAt, without Lookup's segment checks).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void PoolCore::MarkLive(void* p, Stream stream,
                                                            std::size_t requested) {
  auto* slab = static_cast<Slab*>(pagemap_.SlabAt(p));
  UMPOOL_CHECK(slab != nullptr && slab->kind == SpanKind::kSlab, "cached block outside any slab");
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(p));
  UMPOOL_CHECK(idx >= 0, "cached block is not a block start");
  // The block came off a private list, so no other thread may legitimately
  // touch its record now: a check and plain stores suffice (no locked RMW).
  BlockRecord& r = slab->record(static_cast<std::uint32_t>(idx));
  UMPOOL_CHECK(r.state.load(std::memory_order_relaxed) == kFree, "cached block was not free");
  r.slack = static_cast<std::uint32_t>(slab->info().size - requested);
  r.stream = stream;
  r.state.store(kLive, std::memory_order_release);
}

absl::StatusOr<void*> PoolCore::Allocate(std::size_t bytes, Stream stream, Role role) {
  // Small or large: by the role's slab_max_bytes (bytes - 1 wraps for 0).
  // Blocks waiting for their discard are in no list or cache, so a thread
  // cache hit cannot return one: the slow paths drain the queue.
  if (ABSL_PREDICT_FALSE(!ValidRole(role) || bytes - 1 >= options_.policy(role).slab_max_bytes)) {
    return AllocateUncommon(bytes, stream, role);
  }
  const int cls = SizeClassIndex(bytes);
  if (ABSL_PREDICT_TRUE(cls < cached_classes_)) {
    bool entered;
    ThreadCache* tc = caches_.Enter(&entered);
    void* p = tc->Pop(stream, role, cls);
    ThreadCaches::Done(tc, entered);
    if (ABSL_PREDICT_TRUE(p != nullptr)) {
      MarkLive(p, stream, bytes);
      caches_.CountAllocation(tc, kSizeClasses[cls].size, bytes, /*hit=*/true);
      return p;
    }
  }
  return AllocateSmall(bytes, stream, role, cls);
}

// Out of line, so that the hot path above keeps a small frame (the error's
// string building, inlined, cost every cached pair a larger prologue).
ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<void*> PoolCore::AllocateUncommon(std::size_t bytes,
                                                                        Stream stream, Role role) {
  if (bytes == 0) return nullptr;
  if (!ValidRole(role)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid role ", static_cast<int>(role), " (expected 0..", kNumRoles - 1, ")"));
  }
  return AllocateLarge(bytes, stream, role);
}

absl::StatusOr<void*> PoolCore::AllocateSmall(std::size_t bytes, Stream stream, Role role,
                                              int cls) {
  released_.Renew(stream);
  if (ABSL_PREDICT_FALSE(!discards_.empty())) DrainDiscards();
  const std::size_t size = kSizeClasses[cls].size;
  bool grew = false;
  void* p = nullptr;
  CacheUse tc = cls < cached_classes_ ? caches_.Current() : CacheUse();
  if (cls < cached_classes_) {
    // Blocks this thread freed on other streams become visible to the central
    // bin, which fences them for `stream` if nothing better is there.
    tc->FlushOtherStreams(stream, role, cls);
    ThreadCache::Bin& bin = tc->PrepareBin(stream, role, cls);
    absl::StatusOr<int> n = Refill(stream, role, cls, bin.slots, static_cast<int>(bin.cap), &grew);
    if (!n.ok()) return OutOfMemory(bytes, role, n.status());
    bin.count = static_cast<std::uint32_t>(*n) - 1;
    p = bin.slots[bin.count];
    tc->cached_bytes.Add(static_cast<std::int64_t>(bin.count * size));
  } else {
    absl::StatusOr<int> n = Refill(stream, role, cls, &p, 1, &grew);
    if (!n.ok()) return OutOfMemory(bytes, role, n.status());
  }
  MarkLive(p, stream, bytes);
  caches_.CountAllocation(CounterCache(), size, bytes, /*hit=*/!grew);
  if (grew) AfterGrowth(role);
  return p;
}

template <class Take>
auto PoolCore::WithOomRetry(std::size_t bytes, Role role, Take take) -> decltype(take()) {
  auto r = take();
  if (r.ok() || !absl::IsResourceExhausted(r.status())) return r;
  counters_.Bump(counters_.alloc_retries);
  (void)ReleaseCached(options_.release_on_oom);
  r = take();
  if (r.ok() || !absl::IsResourceExhausted(r.status())) return r;
  absl::Status why;
  for (int i = 0; i < Pool::kPressureRetries && RelievePressure(ShortOf(bytes), role, &why); ++i) {
    r = take();
    if (r.ok() || !absl::IsResourceExhausted(r.status())) return r;
  }
  if (!why.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(r.status().message(), "; ", why.message()));
  }
  return r;
}

std::size_t PoolCore::ShortOf(std::size_t bytes) const { return bytes + arena_.BytesOverCap(); }

absl::StatusOr<int> PoolCore::Refill(Stream stream, Role role, int cls, void** out, int max,
                                     bool* grew) {
  return WithOomRetry(kSizeClasses[cls].size, role,
                      [&] { return slabs_.Refill(stream, role, cls, out, max, grew); });
}

absl::StatusOr<void*> PoolCore::AllocateLarge(std::size_t bytes, Stream stream, Role role) {
  if (bytes > kMaxRequestBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "absurd allocation size ", bytes, " bytes (the limit is 2^47 bytes)"));
  }
  released_.Renew(stream);
  if (!discards_.empty()) DrainDiscards();
  const std::size_t rounded = RoundedSize(bytes, role);
  absl::StatusOr<Arena::Range> r =
      WithOomRetry(rounded, role, [&] { return arena_.TakeLarge(role, rounded, stream, bytes); });
  if (!r.ok()) return OutOfMemory(bytes, role, r.status());
  if (r->cross_stream) counters_.Bump(counters_.cross_stream_reuses);
  caches_.CountAllocation(CounterCache(), r->bytes, bytes, /*hit=*/!r->grew);
  if (ABSL_PREDICT_FALSE(residency_.budgeted(role))) {
    // Over budget: older blocks go to the host (a hint: an error leaves them
    // where they are, the allocation stands).
    (void)AdmitBudgeted(r->ptr, r->bytes, role, stream);
  }
  if (r->grew) AfterGrowth(role);
  return r->ptr;
}

absl::Status PoolCore::OutOfMemory(std::size_t bytes, Role role, const absl::Status& cause) {
  if (!absl::IsResourceExhausted(cause)) return cause;
  counters_.Bump(counters_.ooms);
  return absl::ResourceExhaustedError(absl::StrCat(
      "umpool: out of memory allocating ", bytes, " bytes (role ", RoleName(role), ") on ",
      backend_->Describe(), ": ", cause.message(), ". Pool: ", GetStats().Summary()));
}

void PoolCore::CheckInvariants() const {
  slabs_.CheckInvariants();
  arena_.CheckInvariants();
}

}  // namespace umpool::internal
