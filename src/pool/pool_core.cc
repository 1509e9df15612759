// The allocation and free paths of PoolCore. Growth, release and stats live
// in pool_grow.cc and pool_stats.cc; thread-cache ownership in thread_registry.cc.
#include "src/pool/pool_core.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/pool/check.h"
#include "src/pool/thread_registry.h"

namespace umpool::internal {
namespace {

bool ValidRole(Role role) { return static_cast<unsigned>(role) < kNumRoles; }

absl::Status BadRole(Role role) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid role ", static_cast<int>(role), " (expected 0..", kNumRoles - 1, ")"));
}

absl::Status NotOurs(const void* ptr) {
  return absl::InvalidArgumentError(
      absl::StrCat("pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
                   " was not allocated by this pool"));
}

absl::Status Interior(const void* ptr, const Slab& slab) {
  const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(ptr);
  const std::size_t off = (p - slab.base) % slab.info().size;
  return absl::InvalidArgumentError(absl::StrCat(
      "interior pointer ", absl::Hex(p), ": ", off, " bytes into a ", slab.info().size,
      "-byte block"));
}

absl::Status NotAllocated(const void* ptr) {
  return absl::FailedPreconditionError(
      absl::StrCat("block ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
                   " is not allocated (freed; waiting for its discard)"));
}

}  // namespace

bool PoolCore::WaitsForDiscard(const Span* span, const void* block) const {
  return options_.policy(span->role).discard_on_free && !discards_.empty() &&
         discards_.Contains(reinterpret_cast<std::uintptr_t>(block));
}

std::size_t PoolCore::RoundedSize(std::size_t bytes, Role role) const {
  if (bytes == 0) return 0;
  if (!ValidRole(role)) role = Role::kDefault;
  if (bytes <= options_.policy(role).slab_max_bytes) return kSizeClasses[SizeClassIndex(bytes)].size;
  if (bytes > kMaxRequestBytes) return bytes;
  return (bytes + kLargeQuantum - 1) / kLargeQuantum * kLargeQuantum;
}

ThreadCache* PoolCore::CurrentCache() {
  ThreadCache* tc = tls_memo.pool_id == id_ ? tls_memo.cache : CurrentCacheSlow();
  const std::uint64_t epoch = flush_epoch_.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_FALSE(tc->epoch != epoch)) {
    tc->FlushAll();
    tc->epoch = epoch;
  }
  return tc;
}

ThreadCache* PoolCore::CounterCache() {
  return options_.thread_cache ? CurrentCache() : nullptr;
}

void PoolCore::Publish(std::int64_t delta) {
  const std::int64_t now =
      counters_.allocated.fetch_add(delta, std::memory_order_relaxed) + delta;
  std::int64_t peak = counters_.allocated_peak.load(std::memory_order_relaxed);
  while (now > peak && !counters_.allocated_peak.compare_exchange_weak(
                           peak, now, std::memory_order_relaxed)) {
  }
}

void PoolCore::CountAllocation(ThreadCache* tc, std::size_t bytes, bool hit) {
  if (tc == nullptr) {
    counters_.allocations.fetch_add(1, std::memory_order_relaxed);
    if (hit) counters_.cache_hits.fetch_add(1, std::memory_order_relaxed);
    Publish(static_cast<std::int64_t>(bytes));
    return;
  }
  tc->allocations.Add(1);
  if (hit) tc->cache_hits.Add(1);
  tc->unpublished += static_cast<std::int64_t>(bytes);
  if (tc->unpublished >= static_cast<std::int64_t>(options_.stats_publish_bytes)) {
    Publish(tc->unpublished);
    tc->unpublished = 0;
  }
  tc->unpublished_view.v.store(tc->unpublished, std::memory_order_relaxed);
}

void PoolCore::CountFree(ThreadCache* tc, std::size_t bytes) {
  if (tc == nullptr) {
    counters_.frees.fetch_add(1, std::memory_order_relaxed);
    Publish(-static_cast<std::int64_t>(bytes));
    return;
  }
  tc->frees.Add(1);
  tc->unpublished -= static_cast<std::int64_t>(bytes);
  if (-tc->unpublished >= static_cast<std::int64_t>(options_.stats_publish_bytes)) {
    Publish(tc->unpublished);
    tc->unpublished = 0;
  }
  tc->unpublished_view.v.store(tc->unpublished, std::memory_order_relaxed);
}

void PoolCore::MarkLive(void* p) {
  auto* slab = static_cast<Slab*>(pagemap_.Lookup(p));
  UMPOOL_CHECK(slab != nullptr && slab->kind == SpanKind::kSlab, "cached block outside any slab");
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(p));
  UMPOOL_CHECK(idx >= 0, "cached block is not a block start");
  // The block came off a private list, so no other thread may legitimately
  // touch its state now: a check and a plain store suffice (no locked RMW).
  std::atomic<std::uint8_t>& state = slab->state(static_cast<std::uint32_t>(idx));
  UMPOOL_CHECK(state.load(std::memory_order_relaxed) == kFree, "cached block was not free");
  state.store(kLive, std::memory_order_release);
}

absl::StatusOr<void*> PoolCore::Allocate(std::size_t bytes, Stream stream, Role role) {
  // Blocks waiting for their discard are in no list or cache, so a thread
  // cache hit cannot return one: the slow paths drain the queue.
  if (ABSL_PREDICT_FALSE(!ValidRole(role) || bytes - 1 >= options_.policy(role).slab_max_bytes)) {
    if (bytes == 0) return nullptr;
    if (!ValidRole(role)) return BadRole(role);
    return AllocateLarge(bytes, stream, role);
  }
  const int cls = SizeClassIndex(bytes);
  if (ABSL_PREDICT_TRUE(cls < cached_classes_)) {
    ThreadCache* tc = CurrentCache();
    ThreadCache::Bin& bin = tc->BinFor(stream, role, cls);
    if (ABSL_PREDICT_TRUE(bin.count > 0)) {
      void* p = bin.slots[--bin.count];
      tc->cached_bytes -= kSizeClasses[cls].size;
      MarkLive(p);
      CountAllocation(tc, kSizeClasses[cls].size, /*hit=*/true);
      return p;
    }
  }
  return AllocateSmall(bytes, stream, role, cls);
}

absl::StatusOr<void*> PoolCore::AllocateSmall(std::size_t bytes, Stream stream, Role role,
                                              int cls) {
  if (ABSL_PREDICT_FALSE(!discards_.empty())) DrainDiscards();
  const std::size_t size = kSizeClasses[cls].size;
  bool grew = false;
  void* p = nullptr;
  ThreadCache* tc = CounterCache();
  if (cls < cached_classes_) {
    // Blocks this thread freed on other streams become visible to the central
    // bin, which fences them for `stream` if nothing better is there.
    tc->FlushOtherStreams(stream, role, cls);
    ThreadCache::Bin& bin = tc->BinFor(stream, role, cls);
    if (bin.slots == nullptr) {
      bin.cap = ThreadCache::CapacityFor(size);
      bin.slots = new void*[bin.cap];
    }
    absl::StatusOr<int> n = Refill(stream, role, cls, bin.slots, static_cast<int>(bin.cap), &grew);
    if (!n.ok()) return OutOfMemory(bytes, role, n.status());
    bin.count = static_cast<std::uint32_t>(*n) - 1;
    p = bin.slots[bin.count];
    tc->cached_bytes += static_cast<std::size_t>(bin.count) * size;
  } else {
    absl::StatusOr<int> n = Refill(stream, role, cls, &p, 1, &grew);
    if (!n.ok()) return OutOfMemory(bytes, role, n.status());
  }
  MarkLive(p);
  CountAllocation(tc, size, /*hit=*/!grew);
  return p;
}

absl::StatusOr<void*> PoolCore::AllocateLarge(std::size_t bytes, Stream stream, Role role) {
  if (bytes > kMaxRequestBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "absurd allocation size ", bytes, " bytes (the limit is 2^47 bytes)"));
  }
  if (!discards_.empty()) DrainDiscards();
  const std::size_t rounded = RoundedSize(bytes, role);
  bool cross = false, grew = false;
  std::size_t got = 0;
  absl::StatusOr<void*> p;
  for (int attempt = 0;; ++attempt) {
    p = TakeRange(role, rounded, stream, /*for_slab=*/false, &cross, &got, nullptr, &grew);
    if (p.ok() || !absl::IsResourceExhausted(p.status()) || attempt > 0) break;
    counters_.alloc_retries.fetch_add(1, std::memory_order_relaxed);
    (void)ReleaseCached();
  }
  if (!p.ok()) return OutOfMemory(bytes, role, p.status());
  if (cross) counters_.cross_stream_reuses.fetch_add(1, std::memory_order_relaxed);
  CountAllocation(CounterCache(), got, /*hit=*/!grew);
  return *p;
}

absl::StatusOr<int> PoolCore::Refill(Stream stream, Role role, int cls, void** out, int max,
                                     bool* grew) {
  CentralBin& bin = heaps_[static_cast<int>(role)]->bins[cls];
  for (int attempt = 0;; ++attempt) {
    TakeResult t = bin.Take(stream, out, max, fencer_);
    if (t.count > 0) {
      counters_.cross_stream_reuses.fetch_add(static_cast<std::uint64_t>(t.cross_stream),
                                              std::memory_order_relaxed);
      return t.count;
    }
    absl::StatusOr<Slab*> slab = GrowSlab(role, cls, stream);
    if (slab.ok()) {
      *grew = true;
      return bin.AddSlabAndTake(*slab, stream, fencer_, out, max);
    }
    if (!absl::IsResourceExhausted(slab.status()) || attempt > 0) return slab.status();
    counters_.alloc_retries.fetch_add(1, std::memory_order_relaxed);
    (void)ReleaseCached();
  }
}

absl::Status PoolCore::Deallocate(void* ptr, Stream stream) {
  if (ptr == nullptr) return absl::OkStatus();
  Span* span = pagemap_.Lookup(ptr);
  if (ABSL_PREDICT_FALSE(span == nullptr)) return NotOurs(ptr);
  if (ABSL_PREDICT_FALSE(span->kind == SpanKind::kSegment)) {
    LargeHeap* space = LargeSpaceOf(span);
    if (ABSL_PREDICT_FALSE(space == nullptr)) return NotOurs(ptr);  // free slab space
    LargeHeap& heap = *space;
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    if (DiscardsFor(span->role)) {
      if (discards_.Contains(p)) {
        return absl::FailedPreconditionError(
            absl::StrCat("double free: block ", absl::Hex(p), " is not allocated"));
      }
      absl::StatusOr<std::size_t> n = heap.DiscardableSize(p);
      if (n.ok() && EnqueueDiscard(p, *n, stream)) {
        CountFree(CounterCache(), *n);
        return absl::OkStatus();
      }
    }
    absl::StatusOr<std::size_t> n = heap.Free(p, stream, fencer_);
    if (ABSL_PREDICT_FALSE(absl::IsUnavailable(n.status()))) {
      // Named by RecordStream, freed during a graph capture: deferred.
      absl::StatusOr<std::size_t> size = heap.BlockSize(p);
      if (!size.ok()) return size.status();
      MutexLock lock(&deferred_mu_);
      for (const DeferredFree& d : deferred_) {
        if (d.ptr == ptr) {
          return absl::FailedPreconditionError(
              absl::StrCat("double free: block ", absl::Hex(p), " is not allocated"));
        }
      }
      deferred_.emplace_back().ptr = ptr;
      deferred_.back().stream = stream;
      CountFree(CounterCache(), *size);
      return absl::OkStatus();
    }
    if (!n.ok()) return n.status();
    CountFree(CounterCache(), *n);
    return absl::OkStatus();
  }
  auto* slab = static_cast<Slab*>(span);
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(ptr));
  if (ABSL_PREDICT_FALSE(idx < 0)) return Interior(ptr, *slab);
  const std::uint8_t prev =
      slab->state(static_cast<std::uint32_t>(idx)).exchange(kFree, std::memory_order_acq_rel);
  if (ABSL_PREDICT_FALSE(prev != kLive)) {
    if (prev == kFree) {
      return absl::FailedPreconditionError(absl::StrCat(
          "double free: block ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
          " is not allocated"));
    }
    return FreeRecorded(slab, ptr, stream);
  }
  const int cls = slab->size_class();
  const std::size_t size = slab->info().size;
  const Role role = slab->role;
  if (ABSL_PREDICT_FALSE(size >= kMapGranularity) && DiscardsFor(role) &&
      EnqueueDiscard(reinterpret_cast<std::uintptr_t>(ptr), size, stream)) {
    CountFree(CounterCache(), size);
    return absl::OkStatus();
  }
  if (ABSL_PREDICT_TRUE(cls < cached_classes_)) {
    ThreadCache* tc = CurrentCache();
    ThreadCache::Bin& bin = tc->BinFor(stream, role, cls);
    if (ABSL_PREDICT_FALSE(bin.count == bin.cap)) {
      if (bin.slots == nullptr) {
        bin.cap = ThreadCache::CapacityFor(size);
        bin.slots = new void*[bin.cap];
      } else {
        tc->Flush(stream, role, cls, bin, bin.cap / 2);
      }
    }
    bin.slots[bin.count++] = ptr;
    tc->cached_bytes += size;
    if (ABSL_PREDICT_FALSE(tc->cached_bytes > options_.thread_cache_bytes)) {
      tc->Flush(stream, role, cls, bin, 0);
    }
    CountFree(tc, size);
    return absl::OkStatus();
  }
  ReturnToCentral(stream, role, cls, &ptr, 1);
  CountFree(CounterCache(), size);
  return absl::OkStatus();
}

bool PoolCore::DiscardsFor(Role role) const {
  return options_.policy(role).discard_on_free && discard_supported_.load(std::memory_order_relaxed);
}

bool PoolCore::EnqueueDiscard(std::uintptr_t start, std::size_t size, Stream stream) {
  // Only whole pages inside the block: a partial page may hold a neighbour.
  const std::uintptr_t lo = (start + kMapGranularity - 1) & ~(kMapGranularity - 1);
  const std::uintptr_t hi = (start + size) & ~(kMapGranularity - 1);
  if (hi <= lo) return false;
  if (discards_.Push(PendingDiscard{start, lo, hi, stream})) DrainDiscards();
  return true;
}

void PoolCore::DrainDiscards() {
  std::vector<PendingDiscard> batch = discards_.TakeAll();
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < batch.size();) {
    std::size_t j = i;
    ptrs.clear();
    sizes.clear();
    for (; j < batch.size() && batch[j].stream == batch[i].stream; ++j) {
      ptrs.push_back(reinterpret_cast<void*>(batch[j].lo));
      sizes.push_back(batch[j].hi - batch[j].lo);
    }
    const Stream stream = batch[i].stream;
    // No discard during a graph capture (it is only an optimisation).
    if (discard_supported_.load(std::memory_order_relaxed) && !fencer_.capturing()) {
      absl::Status st = backend_->Discard(ptrs.data(), sizes.data(), ptrs.size(), stream);
      if (st.ok()) {
        counters_.discard_calls.fetch_add(1, std::memory_order_relaxed);
        counters_.discarded_blocks.fetch_add(ptrs.size(), std::memory_order_relaxed);
        for (std::size_t n : sizes) counters_.discard_bytes.fetch_add(n, std::memory_order_relaxed);
      } else if (discard_supported_.exchange(false)) {
        std::fprintf(stderr, "umpool: warning: discard on free disabled for this pool: %s\n",
                     st.ToString().c_str());
      }
    }
    // Only now may the blocks be reused: the discard precedes any reuse.
    for (; i < j; ++i) {
      void* block = reinterpret_cast<void*>(batch[i].block);
      Span* span = pagemap_.Lookup(block);
      UMPOOL_CHECK(span != nullptr, "discarded block outside any span");
      if (span->kind == SpanKind::kSegment) {
        LargeHeap* space = LargeSpaceOf(span);
        UMPOOL_CHECK(space != nullptr, "a block waiting for its discard is in slab space");
        absl::StatusOr<std::size_t> n = space->Free(batch[i].block, stream, fencer_);
        UMPOOL_CHECK(n.ok(), "a block waiting for its discard could not be freed");
      } else {
        auto* slab = static_cast<Slab*>(span);
        ReturnToCentral(stream, slab->role, slab->size_class(), &block, 1);
      }
    }
  }
}

void PoolCore::BeginCapture() { fencer_.CaptureBegan(); }

absl::Status PoolCore::EndCapture() {
  fencer_.CaptureEnded();
  if (fencer_.capturing()) return absl::OkStatus();
  std::vector<DeferredFree> todo;
  {
    MutexLock lock(&deferred_mu_);
    todo.swap(deferred_);
  }
  absl::Status status;
  for (DeferredFree& d : todo) {
    Span* span = pagemap_.Lookup(d.ptr);
    UMPOOL_CHECK(span != nullptr, "a deferred free outside any span");
    if (span->kind == SpanKind::kSegment) {
      LargeHeap* space = LargeSpaceOf(span);
      UMPOOL_CHECK(space != nullptr, "a deferred free in slab space");
      status.Update(
          space->Free(reinterpret_cast<std::uintptr_t>(d.ptr), d.stream, fencer_).status());
      continue;
    }
    auto* slab = static_cast<Slab*>(span);
    absl::InlinedVector<FenceRef, 2> fences;
    for (Stream s : d.streams) {
      absl::StatusOr<FenceRef> f = fencer_.FenceFor(s, fencer_.Stamp());
      if (!f.ok()) {
        status.Update(f.status());
        break;
      }
      fences.push_back(*std::move(f));
    }
    if (fences.size() == d.streams.size()) {
      heaps_[static_cast<int>(slab->role)]->bins[slab->size_class()].PutPending(std::move(fences), d.ptr);
    }
  }
  return status;
}

absl::Status PoolCore::FreeRecorded(Slab* slab, void* ptr, Stream stream) {
  absl::InlinedVector<Stream, 2> streams;
  {
    MutexLock lock(&recorded_mu_);
    auto it = recorded_.find(ptr);
    if (it != recorded_.end()) {
      streams = std::move(it->second);
      recorded_.erase(it);
    }
  }
  if (std::find(streams.begin(), streams.end(), stream) == streams.end()) streams.push_back(stream);
  if (fencer_.capturing()) {
    // No event may be recorded during a graph capture: the block waits,
    // invisible, until the capture ends (EndCapture).
    MutexLock lock(&deferred_mu_);
    deferred_.push_back({ptr, stream, std::move(streams)});
    CountFree(CounterCache(), slab->info().size);
    return absl::OkStatus();
  }
  absl::InlinedVector<FenceRef, 2> fences;
  for (Stream s : streams) {
    absl::StatusOr<FenceRef> f = fencer_.FenceFor(s, fencer_.Stamp());
    if (!f.ok()) {
      // The block stays free but unusable until the pool dies; report why.
      return f.status();
    }
    fences.push_back(*std::move(f));
  }
  heaps_[static_cast<int>(slab->role)]->bins[slab->size_class()].PutPending(std::move(fences), ptr);
  CountFree(CounterCache(), slab->info().size);
  return absl::OkStatus();
}

absl::Status PoolCore::RecordStream(void* ptr, Stream stream) {
  if (ptr == nullptr) return absl::InvalidArgumentError("record_stream on a null pointer");
  Span* span = pagemap_.Lookup(ptr);
  if (span == nullptr) return NotOurs(ptr);
  if (span->kind == SpanKind::kSegment) {
    if (ABSL_PREDICT_FALSE(WaitsForDiscard(span, ptr))) return NotAllocated(ptr);
    LargeHeap* space = LargeSpaceOf(span);
    if (space == nullptr) return NotOurs(ptr);
    return space->RecordStream(reinterpret_cast<std::uintptr_t>(ptr), stream);
  }
  auto* slab = static_cast<Slab*>(span);
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(ptr));
  if (idx < 0) return Interior(ptr, *slab);
  auto& state = slab->state(static_cast<std::uint32_t>(idx));
  std::uint8_t s = state.load(std::memory_order_acquire);
  do {
    if (s == kFree) {
      return absl::FailedPreconditionError(absl::StrCat(
          "record_stream on block ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
          ", which is not allocated"));
    }
  } while (s == kLive && !state.compare_exchange_weak(s, kLiveRecorded, std::memory_order_acq_rel));
  MutexLock lock(&recorded_mu_);
  auto& streams = recorded_[ptr];
  if (std::find(streams.begin(), streams.end(), stream) == streams.end()) streams.push_back(stream);
  return absl::OkStatus();
}

void PoolCore::ReturnToCentral(Stream stream, Role role, int size_class, void* const* blocks,
                               int n) {
  heaps_[static_cast<int>(role)]->bins[size_class].Put(stream, blocks, n, fencer_.Stamp());
}

absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> PoolCore::ContainingBlock(
    const void* ptr) const {
  Span* span = pagemap_.Lookup(ptr);
  if (span == nullptr) return NotOurs(ptr);
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  if (span->kind == SpanKind::kSegment) {
    LargeHeap* space = LargeSpaceOf(span);
    if (space == nullptr) return NotOurs(ptr);
    absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> b = space->Containing(p);
    if (b.ok() && WaitsForDiscard(span, reinterpret_cast<void*>(b->first))) return NotAllocated(ptr);
    return b;
  }
  auto* slab = static_cast<Slab*>(span);
  const std::uint64_t idx = DivideByClass(p - slab->base, slab->info());
  if (idx >= slab->info().blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address ", absl::Hex(p), " is in the unused tail of a slab"));
  }
  if (slab->state(static_cast<std::uint32_t>(idx)).load(std::memory_order_acquire) == kFree) {
    return absl::FailedPreconditionError(absl::StrCat(
        "address ", absl::Hex(p), " is in a block that is not allocated"));
  }
  return std::make_pair(slab->base + idx * slab->info().size, slab->info().size);
}

absl::Status PoolCore::Prefetch(const void* ptr, std::size_t bytes, Location where,
                                Stream stream) {
  absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> block = ContainingBlock(ptr);
  if (!block.ok()) return block.status();
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  const std::uintptr_t end = block->first + block->second;
  if (bytes == 0) bytes = end - p;
  if (bytes > end - p) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prefetch of ", bytes, " bytes at ", absl::Hex(p), " runs ", bytes - (end - p),
        " bytes past the end of its ", block->second, "-byte block"));
  }
  if (absl::Status st = CheckMovable(pagemap_.Lookup(ptr), ptr); !st.ok()) return st;
  counters_.prefetch_calls.fetch_add(1, std::memory_order_relaxed);
  return backend_->Prefetch(const_cast<void*>(ptr), bytes, where, stream);
}

absl::Status PoolCore::CheckMovable(const Span* span, const void* ptr) const {
  if (span == nullptr || &BackendFor(span->role) == backend_.get()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "block at ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)), " (role ", RoleName(span->role),
      ") is plain device memory (device_memory policy) and cannot be prefetched or evicted"));
}

absl::Status PoolCore::PrefetchBlocks(const void* const* ptrs, std::size_t count,
                                      Location where, Stream stream) {
  if (count == 0) return absl::OkStatus();
  if (ptrs == nullptr) return absl::InvalidArgumentError("PrefetchBlocks: null pointer array");
  std::vector<void*> starts(count);
  std::vector<std::size_t> sizes(count);
  for (std::size_t i = 0; i < count; ++i) {
    absl::StatusOr<std::pair<std::uintptr_t, std::size_t>> b = ContainingBlock(ptrs[i]);
    if (!b.ok()) {
      return absl::Status(b.status().code(),
                          absl::StrCat("PrefetchBlocks: pointer ", i, ": ", b.status().message()));
    }
    if (absl::Status st = CheckMovable(pagemap_.Lookup(ptrs[i]), ptrs[i]); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("PrefetchBlocks: pointer ", i, ": ", st.message()));
    }
    starts[i] = reinterpret_cast<void*>(b->first);
    sizes[i] = b->second;
  }
  counters_.prefetch_calls.fetch_add(1, std::memory_order_relaxed);
  return backend_->Prefetch(starts.data(), sizes.data(), count, where, stream);
}

absl::StatusOr<std::size_t> PoolCore::BlockSize(const void* ptr) const {
  Span* span = pagemap_.Lookup(ptr);
  if (span == nullptr) return NotOurs(ptr);
  if (span->kind == SpanKind::kSegment) {
    if (WaitsForDiscard(span, ptr)) return NotAllocated(ptr);
    LargeHeap* space = LargeSpaceOf(span);
    if (space == nullptr) return NotOurs(ptr);
    return space->BlockSize(reinterpret_cast<std::uintptr_t>(ptr));
  }
  auto* slab = static_cast<Slab*>(span);
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(ptr));
  if (idx < 0) return Interior(ptr, *slab);
  if (slab->state(static_cast<std::uint32_t>(idx)).load(std::memory_order_acquire) == kFree) {
    return absl::FailedPreconditionError("block is not allocated");
  }
  return slab->info().size;
}

}  // namespace umpool::internal
