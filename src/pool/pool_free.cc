// PoolCore: frees, RecordStream, discard on free, frees deferred across a
// graph capture.
#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/base/check.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {
namespace {

absl::Status Interior(const void* ptr, const Slab& slab) {
  const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(ptr);
  const std::size_t off = (p - slab.base) % slab.info().size;
  return absl::InvalidArgumentError(absl::StrCat(
      "interior pointer ", absl::Hex(p), ": ", off, " bytes into a ", slab.info().size,
      "-byte block"));
}

absl::Status DoubleFree(const void* ptr) {
  return absl::FailedPreconditionError(absl::StrCat(
      "double free: block ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)), " is not allocated"));
}

}  // namespace

// `stream` is where the block was last used, or with kOwnStream (stream
// unused) the stream it was allocated for.
template <bool kOwnStream>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline absl::Status PoolCore::Free(void* ptr, Stream stream) {
  if (ptr == nullptr) return absl::OkStatus();
  Span* span = pagemap_.Lookup(ptr);
  if (ABSL_PREDICT_FALSE(span == nullptr)) return NotOurs(ptr);
  if (ABSL_PREDICT_FALSE(sleeping_.load(std::memory_order_relaxed))) {
    if (absl::Status st = NoteFreedAsleep(ptr); !st.ok()) return st;
  }
  if (ABSL_PREDICT_FALSE(span->kind == SpanKind::kSegment)) {
    if (residency_.tracking()) {
      // Forgotten first, so that no budget picks it from now on (freed
      // first, it stayed a victim to pick while another thread reused it);
      // then a budget's eviction of it already under way in another thread
      // ends (evictions_in_flight.h), and the block is freed as evicted. A
      // pointer that is no live block's start is not tracked: nothing lost.
      residency_.Freed(reinterpret_cast<std::uintptr_t>(ptr));
      evicting_.WaitFor({&ptr, 1});
    }
    return FreeLarge(span, ptr, kOwnStream ? std::nullopt : std::optional<Stream>(stream));
  }
  auto* slab = static_cast<Slab*>(span);
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(ptr));
  if (ABSL_PREDICT_FALSE(idx < 0)) return Interior(ptr, *slab);
  BlockRecord& r = slab->record(static_cast<std::uint32_t>(idx));
  const Stream s = kOwnStream ? r.stream : stream;
  const std::size_t size = slab->info().size;
  const std::size_t requested = size - r.slack;
  const std::uint8_t prev = r.state.exchange(kFree, std::memory_order_acq_rel);
  if (ABSL_PREDICT_FALSE(prev != kLive)) {
    if (prev == kFree) return DoubleFree(ptr);
    StreamSet others = recorded_.Take(ptr, s);
    if (!others.empty()) return FreeRecorded(slab, ptr, s, requested, std::move(others));
  }
  const int cls = slab->size_class();
  const Role role = slab->role;
  // Only blocks the pool evicted are discarded: a resident block gains
  // nothing (its pages never migrate) and would pay to repopulate them.
  if (ABSL_PREDICT_FALSE(size >= kMapGranularity) && DiscardsFor(role) &&
      r.evicted.exchange(0, std::memory_order_relaxed) != 0 && !released_.Contains(s) &&
      EnqueueDiscard(reinterpret_cast<std::uintptr_t>(ptr), size, s, role)) {
    caches_.CountFree(CounterCache(), size, requested);
    return absl::OkStatus();
  }
  // A free on its own stream after that stream was released: its work is
  // done, the block is anybody's (and must not claim the dead handle).
  const bool released = kOwnStream && released_.Contains(s);
  if (ABSL_PREDICT_TRUE(cls < cached_classes_ && !released)) {
    bool entered;
    ThreadCache* tc = caches_.Enter(&entered);
    tc->Push(s, role, cls, ptr, options_.thread_cache_bytes);
    ThreadCaches::Done(tc, entered);
    caches_.CountFree(tc, size, requested);
    return absl::OkStatus();
  }
  if (!kOwnStream) released_.Renew(s);
  Return(s, role, cls, &ptr, 1);  // files released streams' blocks as ready
  caches_.CountFree(CounterCache(), size, requested);
  return absl::OkStatus();
}

absl::Status PoolCore::Deallocate(void* ptr, Stream stream) { return Free<false>(ptr, stream); }
absl::Status PoolCore::DeallocateOwn(void* ptr) { return Free<true>(ptr, nullptr); }

void PoolCore::Return(Stream stream, Role role, int size_class, void* const* blocks, int n) {
  if (ABSL_PREDICT_FALSE(released_.Contains(stream))) {
    slabs_.ReturnReady(role, size_class, blocks, n);
    return;
  }
  slabs_.Return(stream, role, size_class, blocks, n);
}

absl::Status PoolCore::FreeLarge(Span* span, void* ptr, std::optional<Stream> stream) {
  LargeHeap* space = Arena::LargeSpaceOf(span);
  if (ABSL_PREDICT_FALSE(space == nullptr)) return NotOurs(ptr);  // free slab space
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  if (stream.has_value()) released_.Renew(*stream);
  if (staged_out_count_.load(std::memory_order_relaxed) != 0) {
    // Settled before the range is back in the heap: a deferred drop issued
    // after another thread took the range would drop its pages.
    FenceRef drop_unseen;
    ForgetStaged(ptr, &drop_unseen);
    if (drop_unseen != nullptr) return DeferLarge(space, ptr, stream, std::move(drop_unseen));
  }
  if (DiscardsFor(span->role)) {
    if (discards_.Contains(p)) return DoubleFree(ptr);
    absl::StatusOr<BlockInfo> b = space->DiscardableBlock(p);
    const Stream s = b.ok() ? stream.value_or(b->stream) : nullptr;
    if (b.ok() && !released_.Contains(s) && EnqueueDiscard(p, b->bytes, s, span->role)) {
      caches_.CountFree(CounterCache(), b->bytes, b->requested);
      return absl::OkStatus();
    }
  }
  absl::StatusOr<LargeHeap::Freed> freed = space->Free(p, stream, fencer_);
  if (ABSL_PREDICT_FALSE(absl::IsUnavailable(freed.status()))) {
    // Named by RecordStream, freed during a graph capture: deferred.
    return DeferLarge(space, ptr, stream, nullptr);
  }
  if (!freed.ok()) return freed.status();
  if (!stream.has_value() && released_.Contains(freed->stream)) {
    space->ReleaseStream(freed->stream);  // its work is done: ready for anyone
  }
  caches_.CountFree(CounterCache(), freed->bytes, freed->requested);
  return absl::OkStatus();
}

absl::Status PoolCore::DeferLarge(LargeHeap* space, void* ptr, std::optional<Stream> stream,
                                  FenceRef after) {
  absl::StatusOr<BlockInfo> b = space->Block(reinterpret_cast<std::uintptr_t>(ptr));
  if (!b.ok()) return b.status();
  {
    MutexLock lock(&deferred_mu_);
    for (const DeferredFree& d : deferred_) {
      if (d.ptr == ptr) return DoubleFree(ptr);
    }
  }
  Defer(ptr, stream.value_or(b->stream), {}, std::move(after));
  caches_.CountFree(CounterCache(), b->bytes, b->requested);
  return absl::OkStatus();
}

absl::StatusOr<Fences> PoolCore::FencesOn(const StreamSet& streams) {
  Fences fences;
  for (Stream s : streams) {
    absl::StatusOr<FenceRef> f = fencer_.FenceFor(s, fencer_.Stamp());
    if (!f.ok()) return f.status();
    fences.push_back(*std::move(f));
  }
  return fences;
}

absl::Status PoolCore::FreeRecorded(Slab* slab, void* ptr, Stream stream, std::size_t requested,
                                    StreamSet streams) {
  streams.push_back(stream);  // not among them (RecordedStreams::Take)
  const std::size_t size = slab->info().size;
  if (fencer_.capturing()) {
    // No event may be recorded during a graph capture: the block waits,
    // invisible, until the capture ends (EndCapture).
    Defer(ptr, stream, std::move(streams));
    caches_.CountFree(CounterCache(), size, requested);
    return absl::OkStatus();
  }
  absl::StatusOr<Fences> fences = FencesOn(streams);
  if (!fences.ok()) {
    // The block stays free but unusable until the pool dies; report why.
    counters_.Bump(counters_.fence_errors);
    return fences.status();
  }
  slabs_.ReturnPending(slab->role, slab->size_class(), *std::move(fences), ptr);
  caches_.CountFree(CounterCache(), size, requested);
  return absl::OkStatus();
}

absl::Status PoolCore::RecordStream(void* ptr, Stream stream) {
  if (ptr == nullptr) return absl::InvalidArgumentError("record_stream on a null pointer");
  Span* span = pagemap_.Lookup(ptr);
  if (span == nullptr) return NotOurs(ptr);
  released_.Renew(stream);
  if (span->kind == SpanKind::kSegment) {
    if (ABSL_PREDICT_FALSE(WaitsForDiscard(span, ptr))) return WaitingForDiscard(ptr);
    LargeHeap* space = Arena::LargeSpaceOf(span);
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
  recorded_.Add(ptr, stream);
  return absl::OkStatus();
}

bool PoolCore::DiscardsFor(Role role) const {
  return options_.policy(role).discard_on_free && discard_supported_.load(std::memory_order_relaxed);
}

bool PoolCore::WaitsForDiscard(const Span* span, const void* block) const {
  return options_.policy(span->role).discard_on_free && !discards_.empty() &&
         discards_.Contains(reinterpret_cast<std::uintptr_t>(block));
}

bool PoolCore::EnqueueDiscard(std::uintptr_t start, std::size_t size, Stream stream, Role role) {
  // vmm refills (its only mode) every page the block touches: one dropped
  // with an evicted neighbour must come back before the block is reused.
  const PageRange pages = backend_->PopulatesOnTouch() ? WholePages(start, size)
                                                       : TouchedPages(start, size);
  if (pages.empty()) return false;
  if (discards_.Push(PendingDiscard{start, pages.lo, pages.hi, stream, DiscardModeFor(role)})) {
    DrainDiscards();
  }
  return true;
}

DiscardMode PoolCore::DiscardModeFor(Role role) const {
  // Blocks of a GPU-preferred role are repopulated on the GPU as they are
  // discarded (measured on the H200: dropped pages fault back one by one when
  // the block is reused, thousands of times slower than writing resident
  // memory). Where the pool may hold more than the GPU (oversubscription) or
  // the role prefers the host, the pages are dropped: refilling them would
  // take GPU memory the pool promised not to hold.
  // A backend whose pages do not populate on touch (vmm) always refills: a
  // dropped page in a free block would fail the kernel that reuses it.
  return (options_.policy(role).preferred == Location::kDevice &&
          !options_.allow_oversubscription) ||
                 !backend_->PopulatesOnTouch()
             ? DiscardMode::kRefill
             : DiscardMode::kDrop;
}

void PoolCore::CountDiscard(const std::vector<std::size_t>& sizes) {
  counters_.Bump(counters_.discard_calls);
  counters_.Bump(counters_.discarded_blocks, sizes.size());
  for (std::size_t n : sizes) counters_.Bump(counters_.discard_bytes, n);
}

void PoolCore::DrainDiscards() {
  std::vector<PendingDiscard> batch = discards_.TakeAll();
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < batch.size();) {
    std::size_t j = i;
    ptrs.clear();
    sizes.clear();
    for (; j < batch.size() && batch[j].stream == batch[i].stream && batch[j].mode == batch[i].mode;
         ++j) {
      ptrs.push_back(reinterpret_cast<void*>(batch[j].lo));
      sizes.push_back(batch[j].hi - batch[j].lo);
    }
    const Stream stream = batch[i].stream;
    // No discard during a graph capture (it is only an optimisation).
    if (discard_supported_.load(std::memory_order_relaxed) && !fencer_.capturing()) {
      absl::Status st =
          backend_->Discard(ptrs.data(), sizes.data(), ptrs.size(), batch[i].mode, stream);
      if (st.ok()) {
        CountDiscard(sizes);
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
        LargeHeap* space = Arena::LargeSpaceOf(span);
        UMPOOL_CHECK(space != nullptr, "a block waiting for its discard is in slab space");
        UMPOOL_CHECK(space->Free(batch[i].block, stream, fencer_).ok(),
                     "a block waiting for its discard could not be freed");
      } else {
        auto* slab = static_cast<Slab*>(span);
        Return(stream, slab->role, slab->size_class(), &block, 1);
      }
    }
  }
}

void PoolCore::Defer(void* ptr, Stream stream, StreamSet fences_on, FenceRef after) {
  MutexLock lock(&deferred_mu_);
  deferred_.push_back(DeferredFree{ptr, stream, std::move(fences_on), std::move(after)});
}

absl::Status PoolCore::EndCapture() {
  fencer_.CaptureEnded();
  if (fencer_.capturing()) return absl::OkStatus();
  std::vector<DeferredFree> todo;
  {
    MutexLock lock(&deferred_mu_);
    todo.swap(deferred_);
  }
  absl::Status status = GiveSlotsAfterCapture();
  for (DeferredFree& d : todo) {
    Span* span = pagemap_.Lookup(d.ptr);
    UMPOOL_CHECK(span != nullptr, "a deferred free outside any span");
    if (span->kind == SpanKind::kSegment) {
      LargeHeap* space = Arena::LargeSpaceOf(span);
      UMPOOL_CHECK(space != nullptr, "a deferred free in slab space");
      if (d.after != nullptr) status.Update(fencer_.Wait(*d.after));  // its page drop ran
      status.Update(space->Free(reinterpret_cast<std::uintptr_t>(d.ptr), d.stream, fencer_).status());
      continue;
    }
    auto* slab = static_cast<Slab*>(span);
    absl::StatusOr<Fences> fences = FencesOn(d.fences_on);
    if (fences.ok()) {
      slabs_.ReturnPending(slab->role, slab->size_class(), *std::move(fences), d.ptr);
    } else {
      status.Update(fences.status());
    }
  }
  return status;
}

}  // namespace umpool::internal
