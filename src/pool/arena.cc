// Arena: which heap serves a role, the order of tries before growing, moving
// free segments between spaces, releasing. Mapping itself is in arena_map.cc.
#include "src/pool/arena.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "src/base/check.h"

namespace umpool::internal {

Arena::Arena(const PoolOptions& options, Backend& backend, Backend* device_memory,
             PageMap& pagemap, Fencer& fencer, PoolCounters& counters, std::size_t capacity,
             std::size_t map_limit)
    : options_(options),
      backend_(backend),
      device_memory_(device_memory),
      pagemap_(pagemap),
      fencer_(fencer),
      counters_(counters),
      initial_capacity_(capacity),
      map_limit_(std::max(capacity, map_limit)),
      capacity_(capacity),
      capacity_view_(capacity) {
  // Roles whose placement is the same except for the prefetch mode share a heap.
  auto key = [&](int r) {
    const RolePolicy& p = options.roles[r];
    return std::make_tuple(p.preferred, p.accessed_by, p.read_mostly, p.discard_on_free,
                           p.device_memory);
  };
  for (int r = 0; r < kNumRoles; ++r) {
    heap_of_[r] = -1;
    for (int q = 0; q < r && heap_of_[r] < 0; ++q) {
      if (key(q) == key(r)) heap_of_[r] = heap_of_[q];
    }
    if (heap_of_[r] < 0) {
      heap_of_[r] = static_cast<int>(heaps_.size());
      heaps_.push_back(std::make_unique<Heap>());
    }
  }
  // Fences at every search only where pending blocks are adopted (large_heap_pending.cc).
  const bool fence = options.reuse_pending_blocks;
  for (const auto& h : heaps_) {
    for (LargeHeap& space : h->large) space.set_fence_at_search(fence);
    for (LargeHeap* space : h->slab_spaces()) space->set_fence_at_search(fence);
  }
  for (int r = 0; r < kNumRoles; ++r) {
    heaps_[heap_of_[r]]->large[r].set_fit(options.roles[r].tail_last ? LargeHeap::Fit::kBestTailLast
                                                                     : LargeHeap::Fit::kBest);
  }
  // Activations' large blocks in the KV cache's space (activations_share_kv_space).
  for (int r = 0; r < kNumRoles; ++r) space_of_[r] = r;
  constexpr int kAct = static_cast<int>(Role::kActivations), kKv = static_cast<int>(Role::kKv);
  // A budgeted role keeps its space to itself: its budget counts its space's pages.
  if (options.activations_share_kv_space && heap_of_[kAct] == heap_of_[kKv] &&
      options.roles[kAct].hbm_budget_bytes == 0 && options.roles[kKv].hbm_budget_bytes == 0) {
    space_of_[kAct] = kKv;
    shared_space_[kKv] = true;
  }
  counters_.capacity_bytes.store(static_cast<std::int64_t>(capacity), std::memory_order_relaxed);
  if (options.shared_capacity != nullptr) options.shared_capacity->LimitMapping(map_limit_);
}

Arena::~Arena() {
  heaps_.clear();  // drops fences and block lists first
  {
    MutexLock lock(&drop_mu_);
    for (const auto& [stream, done] : drop_events_) backend_.DestroyEvent(done);
  }
  MutexLock lock(&grow_mu_);
  for (auto& [ptr, m] : mappings_) {
    (void)BackendFor(m.role).Unmap(ptr, m.bytes);
    if (options_.shared_capacity != nullptr) options_.shared_capacity->Unmap(m.bytes);
  }
  if (options_.shared_capacity != nullptr) options_.shared_capacity->Release(reserved_);
  segments_.clear();
}

Backend& Arena::BackendFor(Role role) const {
  return options_.policy(role).device_memory && device_memory_ != nullptr ? *device_memory_
                                                                          : backend_;
}

absl::StatusOr<Arena::Range> Arena::TakeLarge(Role role, std::size_t bytes, Stream stream,
                                              std::size_t requested) {
  Heap& h = *heaps_[heap_of(role)];
  const int r = static_cast<int>(role);
  LargeHeap& space = h.large[space_of(r)];
  absl::StatusOr<Range> t = Take(role, space, /*for_slab=*/false, bytes, stream, requested);
  // A space several roles share: the block carries its own (stats, budgets).
  if (t.ok() && t->ptr != nullptr && shared_space_[space_of(r)]) space.SetRole(t->ptr, role);
  return t;
}

bool Arena::MayReusePending(Stream stream) const {
  return options_.reuse_pending_blocks && !fencer_.capturing() && !backend_.IsCapturing(stream);
}

bool Arena::AdoptPending(LargeHeap& space, Stream stream, absl::Status* events) {
  return MayReusePending(stream) &&
         space.AdoptPending(
             stream, fencer_, [&](const Fences& fences) { return OrderAfter(stream, fences); },
             events);
}

absl::Status Arena::OrderAfter(Stream stream, const Fences& fences) {
  for (const FenceRef& f : fences) {
    if (absl::Status st = backend_.StreamWaitEvent(stream, f->event); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<Arena::Range> Arena::Take(Role role, LargeHeap& space, bool for_slab,
                                         std::size_t bytes, Stream stream,
                                         std::size_t requested, bool may_grow) {
  const int heap = heap_of(role);
  Heap& h = *heaps_[heap];
  absl::Status events;
  auto take = [&] { return space.Take(bytes, stream, requested, fencer_, &events); };
  // Free memory of the heap, in the order it is tried before the backend is
  // asked: empty slabs of any class given back; a wholly free segment of
  // another space (not one much larger than the request: its owner will
  // want it whole again; measured, a limit of twice the growth size let KV
  // blocks fill activation segments).
  auto take_free = [&]() -> LargeHeap::Taken {
    if (source_ != nullptr && source_->ReclaimEmptySlabs(heap, /*wait=*/false, nullptr) > 0) {
      LargeHeap::Taken t = take();
      if (t.ptr != nullptr) return t;
    }
    ReuseTerms terms;
    Segment* s = StealSegment(h, space, bytes, std::max(2 * bytes, bytes + kLargeSegmentBytes),
                              stream, &terms);
    if (s == nullptr) return {};
    counters_.Bump(counters_.segments_moved);
    space.AdoptSegment(s, terms);
    return take();
  };
  // A big class out of slabs first gives back the empty slabs of smaller big
  // classes: with first fit its slab then goes as low in the space as what
  // is free allows, and a cached empty slab below does not push it up (the
  // smaller class makes its slab again after it, and bigger classes keep
  // theirs, so the give-and-take settles; docs/arena-cycles.md, "First fit for big
  // slabs").
  if (&space == &h.big_slab_space && source_ != nullptr) {
    source_->ReclaimEmptySlabs(heap, /*wait=*/false, nullptr, kBigSlabBytes, bytes - 1);
  }
  LargeHeap::Taken t = take();
  if (t.ptr == nullptr) t = take_free();
  // The blocks this thread's cache holds may be all that keeps a slab from
  // being empty: flush them and look again.
  if (t.ptr == nullptr && source_ != nullptr && source_->FlushCaches(false)) t = take_free();
  // Free memory whose fences are still pending: the stream waits for them on
  // the device and makes it its own (large_heap_pending.cc), then looks again.
  if (t.ptr == nullptr && may_grow && AdoptPending(space, stream, &events)) {
    t = take();
    if (t.ptr != nullptr) counters_.Bump(counters_.ordered_reuses);
  }
  // About to grow: the blocks quiet threads' caches hold (PyTorch's autograd
  // thread between backward passes) may be what keeps slabs from being
  // empty; drained, look again (docs/design.md, "Drains").
  if (t.ptr == nullptr && may_grow && source_ != nullptr && source_->FlushCaches(true)) {
    t = take_free();
  }
  if (!events.ok() && !absl::IsUnavailable(events)) counters_.Bump(counters_.fence_errors);
  if (t.ptr != nullptr) {
    PrefetchIfNeeded(role, t.ptr, bytes, stream);
    return Range{t.ptr, t.bytes, t.cross_stream, t.seq, false};
  }
  if (!may_grow) return Range{};
  // Before populating anything: the free pages no request could use are
  // given back, then pages given back earlier are refilled if they fit.
  // A bare block (with the free blocks beside it) that serves the request
  // needs only its missing pages refilled: they are what must fit, and the
  // blocks it joins stay populated. Growing the space in place competes:
  // the one that populates fewer pages wins, and room is made for those
  // pages only (docs/arena.md, "A refill of bare pages lets the free tail
  // go": the offload trace's 1000 MiB blocks, up to 1.170 of peak live).
  LargeHeap::PageRange keep;
  std::size_t shortfall = space.bare_bytes() > 0 && !fencer_.capturing()  // 0 unless given back
                              ? space.BareShortfall(bytes, stream, &keep)
                              : 0;
  const std::size_t extension = space.ExtensionPages(bytes, stream);
  if (shortfall > 0 && extension < shortfall) {
    shortfall = 0;
    keep = LargeHeap::PageRange{};
  }
  // A refill grows nothing in place: the space's free tail may go like any
  // other free pages then.
  const std::size_t whole = (bytes + kMapGranularity - 1) & ~(kMapGranularity - 1);
  GiveBackFreePages(role, h, space, shortfall > 0 ? shortfall : std::min(extension, whole), bytes,
                    stream, keep, /*keep_tail=*/shortfall == 0);
  if (shortfall > 0) {
    t = space.TakeBare(
        bytes, stream, requested, fencer_,
        [&](Segment* seg, std::uintptr_t addr, std::size_t n) {
          return Refill(seg, addr, n, stream);
        },
        nullptr);
    // A slab made of refilled pages is bound to this stream: the refill (and
    // a drop on this stream before it, which it did not wait for) must be
    // behind other streams' first blocks of it (found by the model test).
    if (t.ptr != nullptr) return Range{t.ptr, t.bytes, false, for_slab ? fencer_.Stamp() : 0, true};
  }
  // Grow in place: a segment's reserve. A failure (the cap) is the new
  // segment's to report: it needs at least as much.
  std::size_t heap_bytes = h.slab_space.bytes() + h.big_slab_space.bytes();
  for (const LargeSpace& s : h.large) heap_bytes += s.bytes();
  const std::size_t step = std::clamp<std::size_t>(heap_bytes / kPopulateStepDivisor,
                                                   kMapGranularity, kPopulateStepMaxBytes) &
                           ~(kMapGranularity - 1);
  bool refilled = false;  // the growth refilled a bare tail (on this stream)
  t = space.ExtendAndTake(
      bytes, stream, requested, step, fencer_,
      [&](Segment* seg, std::uintptr_t addr, std::size_t n) {
        refilled = refilled || addr < seg->base + seg->populated;
        return PopulateInPlace(seg, addr, n, stream);
      },
      nullptr);
  if (t.ptr != nullptr) {
    PrefetchIfNeeded(role, t.ptr, bytes, stream);
    return Range{t.ptr, t.bytes, false, for_slab && refilled ? fencer_.Stamp() : t.seq, true};
  }
  absl::StatusOr<Segment*> seg = GrowSegment(role, space, bytes, for_slab, stream);
  if (!seg.ok()) return seg.status();
  t = space.AddSegmentAndTake(*seg, bytes, stream, requested);
  return Range{t.ptr, t.bytes, false, 0, true};
}

Segment* Arena::StealSegment(Heap& h, LargeHeap& into, std::size_t bytes, std::size_t max_bytes,
                             Stream stream, ReuseTerms* terms) {
  for (LargeHeap* slabs : h.slab_spaces()) {
    if (slabs == &into) continue;
    if (Segment* s = slabs->StealFreeSegment(bytes, max_bytes, stream, fencer_, terms)) return s;
  }
  // The large spaces of long-lived roles keep their free segments: a KV cache
  // drained between batches fills again, and lending its segments to
  // activations made it grow anew every cycle of a steady workload.
  for (Role r : kShortLivedRoles) {
    if (space_of(static_cast<int>(r)) != static_cast<int>(r)) continue;  // a long-lived role's
    LargeHeap& space = h.large[static_cast<int>(r)];
    if (&space == &into) continue;
    if (Segment* s = space.StealFreeSegment(bytes, max_bytes, stream, fencer_, terms)) return s;
  }
  return nullptr;
}

absl::Status Arena::ReleaseFree() {
  absl::Status status;
  std::vector<Segment*> empty;
  // A segment holding bare blocks is unmapped whole or not at all (adopting
  // it again would forget which of its pages were given back): only one
  // that is the sole piece of its mapping goes.
  auto sole_piece = [this](const Segment* s) {
    MutexLock lock(&grow_mu_);
    return mappings_.at(s->map_ptr).pieces == 1;
  };
  for (auto& heap : heaps_) {
    for (LargeHeap& space : heap->large) {
      status.Update(space.ReleaseFree(fencer_, &empty, sole_piece));
    }
    for (LargeHeap* slabs : heap->slab_spaces()) {
      status.Update(slabs->ReleaseFree(fencer_, &empty, sole_piece));
    }
  }
  // Pages dropped on a stream after work that used them: that work must be
  // done before their memory goes back to the backend (host-blocking, as
  // the rest of this call).
  if (std::any_of(empty.begin(), empty.end(), [](const Segment* s) { return s->bare_bytes > 0; })) {
    status.Update(WaitForDrops());
  }
  // A segment cut from another's mapping goes back only with all of it:
  // its touched pages stay the GPU's until the mapping is freed.
  absl::flat_hash_map<void*, int> wholly_free;
  for (Segment* s : empty) ++wholly_free[s->map_ptr];
  for (Segment* s : empty) {
    bool whole;
    {
      MutexLock lock(&grow_mu_);
      whole = wholly_free[s->map_ptr] == mappings_.at(s->map_ptr).pieces;
    }
    if (whole) {
      status.Update(UnmapSegment(s));
    } else {
      s->space.load(std::memory_order_relaxed)->AdoptSegment(s, ReuseTerms{});
    }
  }
  return status;
}

void Arena::ReleaseStream(Stream stream) {
  for (auto& heap : heaps_) {
    for (LargeHeap& space : heap->large) space.ReleaseStream(stream);
    for (LargeHeap* slabs : heap->slab_spaces()) slabs->ReleaseStream(stream);
  }
}

std::size_t Arena::MaxCapacity() const {
  return backend_.kind() == BackendKind::kManaged && !options_.allow_oversubscription
             ? initial_capacity_
             : SIZE_MAX;
}

absl::Status Arena::SetCapacity(std::size_t bytes, bool* over) {
  MutexLock lock(&grow_mu_);
  capacity_ = bytes;
  map_limit_ = std::max(map_limit_, bytes);
  capacity_view_.store(bytes, std::memory_order_relaxed);
  counters_.capacity_bytes.store(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  *over = reserved_ > bytes;
  return absl::OkStatus();
}

void Arena::LiveBlocks(std::vector<BlockInfo>* out) const {
  for (const auto& heap : heaps_) {
    for (const LargeHeap& space : heap->large) space.LiveBlocks(out);
  }
}

void Arena::Snapshot(std::vector<SpanSnapshot>* out) const {
  for (const auto& heap : heaps_) {
    for (const LargeHeap& space : heap->large) space.Snapshot(out);
    for (const LargeHeap* slabs : heap->slab_spaces()) slabs->Snapshot(out);
  }
}

void Arena::CheckInvariants() const {
  for (const auto& heap : heaps_) {
    for (const LargeHeap& space : heap->large) space.CheckInvariants();
    for (const LargeHeap* slabs : heap->slab_spaces()) slabs->CheckInvariants();
  }
  MutexLock lock(&grow_mu_);
  std::size_t mapped = 0;
  absl::flat_hash_map<void*, int> pieces;
  for (const auto& [seg, owned] : segments_) ++pieces[seg->map_ptr];
  for (const auto& [ptr, m] : mappings_) {
    UMPOOL_CHECK(pieces[ptr] == m.pieces, "a mapping's pieces disagree with the segments held");
    mapped += m.bytes;
  }
  UMPOOL_CHECK(mapped == mapped_, "mapped bytes disagree with the segments held");
  UMPOOL_CHECK(mapped_ <= map_limit_, "mapped past the map limit");
  UMPOOL_CHECK(static_cast<std::int64_t>(mapped) == counters_.mapped_bytes.current.load(),
               "mapped counter drift");
  std::size_t sum = 0;
  for (const auto& [seg, owned] : segments_) {
    sum += seg->reserved();
    const Span* first = pagemap_.Lookup(reinterpret_cast<void*>(seg->base));
    const Span* last = pagemap_.Lookup(reinterpret_cast<void*>(seg->base + seg->limit - 1));
    UMPOOL_CHECK(first == seg || (first != nullptr && first->kind == SpanKind::kSlab),
                 "segment not mapped");
    UMPOOL_CHECK(last == seg || (last != nullptr && last->kind == SpanKind::kSlab),
                 "segment end not mapped");
  }
  UMPOOL_CHECK(sum == reserved_, "reserved bytes disagree with the segments held");
  UMPOOL_CHECK(static_cast<std::int64_t>(sum) == counters_.reserved_bytes.current.load(),
               "reserved counter drift");
}

}  // namespace umpool::internal
