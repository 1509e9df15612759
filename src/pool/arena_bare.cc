// Arena: giving free pages back before populating more, and refilling them
// (docs/arena.md, "Bare blocks").
#include <algorithm>
#include <vector>

#include "src/pool/arena.h"

namespace umpool::internal {

absl::Status Arena::DropPages(const std::vector<LargeHeap::PageRange>& ranges, Stream stream) {
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  std::size_t total = 0;
  for (const LargeHeap::PageRange& r : ranges) {
    ptrs.push_back(reinterpret_cast<void*>(r.addr));
    sizes.push_back(r.bytes);
    total += r.bytes;
  }
  {
    MutexLock lock(&drop_mu_);
    Event& done = drop_events_[stream];
    if (done == nullptr) {
      absl::StatusOr<Event> e = backend_.CreateEvent();
      if (!e.ok()) {
        drop_events_.erase(stream);
        return e.status();
      }
      done = *e;
    }
    absl::Status st =
        backend_.Discard(ptrs.data(), sizes.data(), ptrs.size(), DiscardMode::kDrop, stream);
    if (!st.ok()) return st;
    // A refill on another stream waits for this record (earlier drops on
    // `stream` are behind it).
    if (st = backend_.RecordEvent(done, stream); !st.ok()) return st;
  }
  UnclaimReserved(total);
  counters_.reserved_bytes.Add(-static_cast<std::int64_t>(total));
  counters_.bare_bytes.Add(static_cast<std::int64_t>(total));
  AddLargeReserved(-static_cast<std::int64_t>(total));
  counters_.Bump(counters_.page_drops);
  return absl::OkStatus();
}

Stream Arena::DropStream(Stream stream, bool* own_stream) {
  // Where pages populate on touch (managed, host), blocks freed on the
  // caller's stream go too, dropped on that stream after the work that used
  // them. The vmm backend synchronises the stream it drops on, so there
  // ready blocks go, dropped on its side stream (it waits for nothing the
  // caller queued); GiveBackFreePages then drops blocks freed on the
  // caller's stream on that stream, waiting, for what they do not cover.
  *own_stream = backend_.PopulatesOnTouch();
  if (*own_stream) return stream;
  absl::StatusOr<Stream> side = backend_.SideStream();
  return side.ok() ? *side : stream;
}

bool Arena::MayGiveBack(Role role) const {
  return options_.give_back_free_pages && can_drop_.load(std::memory_order_relaxed) && Lazy(role) &&
         options_.policy(role).preferred == Location::kDevice && !fencer_.capturing();
}

void Arena::GiveBackOverBudget(Role role, std::size_t want, Stream stream) {
  if (want == 0 || !MayGiveBack(role) || backend_.IsCapturing(stream)) return;
  LargeHeap& space = heaps_[heap_of(role)]->large[space_of(static_cast<int>(role))];
  // Blocks freed on the caller's stream go too, dropped on that stream after
  // the work that used them: on the vmm backend the drop then waits (on the
  // host) for that stream, once per give_back_slack of the budget.
  absl::StatusOr<std::size_t> n = space.Depopulate(
      stream, /*own_stream=*/true, want, /*keep_tails=*/false, LargeHeap::PageRange{},
      [&](const std::vector<LargeHeap::PageRange>& ranges) { return DropPages(ranges, stream); });
  if (!n.ok() && absl::IsUnimplemented(n.status())) can_drop_.store(false);
  if (!n.ok() || *n >= want) return;
  // Blocks freed on other streams go too (before, an engine fetching on a
  // side stream while its requests' blocks were freed on the compute stream
  // kept those pages until its next allocation on the compute stream: a CPU
  // model of the paged-KV demo's three-group turns held 160 MiB for a 144
  // MiB budget, PopulateOnRequestTest.ABudgetBoundsWhatTheRoleHoldsWithEngineEvictions).
  // Where pages populate on touch a drop is stream-ordered: each is dropped
  // on the stream it was freed on, after the work that used it. The vmm
  // backend's drop waits on the host, so there only those whose streams'
  // work has completed go (fenced now, polled, never waited for).
  std::size_t left = want - *n;
  if (!backend_.PopulatesOnTouch()) {
    space.ReadyOtherStreams(stream, fencer_);
    bool own_stream = false;
    const Stream on = DropStream(stream, &own_stream);  // ready blocks: no wait for `stream`
    (void)space.Depopulate(
        stream, /*own_stream=*/false, left, /*keep_tails=*/false, LargeHeap::PageRange{},
        [&](const std::vector<LargeHeap::PageRange>& ranges) { return DropPages(ranges, on); });
    return;
  }
  for (Stream other : space.StreamsHoldingFrees(stream)) {
    if (left == 0) break;
    if (backend_.IsCapturing(other)) continue;
    absl::StatusOr<std::size_t> m = space.Depopulate(
        other, /*own_stream=*/true, left, /*keep_tails=*/false, LargeHeap::PageRange{},
        [&](const std::vector<LargeHeap::PageRange>& ranges) { return DropPages(ranges, other); });
    if (!m.ok()) return;
    left -= std::min(left, *m);
  }
}

void Arena::GiveBackFreePages(Role role, Heap& h, LargeHeap& space, std::size_t want,
                              std::size_t request, Stream stream, LargeHeap::PageRange keep,
                              bool keep_tail) {
  if (!MayGiveBack(role)) return;
  // Live bytes as the counters have them (each thread's cache publishes its
  // share in batches of stats_publish_bytes: close enough for a budget).
  const std::size_t live = static_cast<std::size_t>(
      std::max<std::int64_t>(counters_.allocated_bytes.current.load(std::memory_order_relaxed), 0));
  std::size_t need = 0;
  {
    MutexLock lock(&grow_mu_);
    if (live + want > live_high_) {  // a new peak: requests' repeats count again
      live_high_ = live + want;
      repeats_.clear();
    }
    // Populating up to the reserved high-water mark sets no new peak, and
    // the slack above peak live is the cache's room: keep the pages.
    const double slack = options_.give_back_slack * static_cast<double>(live_high_);
    const std::size_t slack_room = live_high_ + static_cast<std::size_t>(slack);
    const std::size_t room = std::max(reserved_high_, slack_room);
    if (reserved_ + want <= room) return;
    // A request that finds the pool at its limit again and again (the same
    // size at the same peak live) is a loop whose layout needs a little more
    // room: past kRepeatsBeforeBand it grows into a band of kRepeatBand of
    // peak live above the slack's room, instead of dropping pages that it, or
    // the next step, refills (docs/arena.md, "A repeated request grows into a
    // band"). Measured from the slack's room, not from the high-water mark,
    // so that the band does not ratchet up with each growth into it.
    if (repeats_.size() >= kMaxRepeatSizes) repeats_.clear();
    const auto band = static_cast<std::size_t>(kRepeatBand * static_cast<double>(live_high_));
    if (++repeats_[request] > kRepeatsBeforeBand && reserved_ + want <= slack_room + band) return;
    need = reserved_ + want - room;
  }
  if (backend_.PopulatesOnTouch()) {  // drops are stream-ordered: one pass, on `stream`
    GiveBackOldest(role, h, space, stream, /*own_stream=*/true, stream, keep, keep_tail, need);
    return;
  }
  // The vmm backend's drop waits on the host for the stream it is given.
  // Blocks no queued work uses go first, with no wait (other streams' blocks
  // whose fences have completed, polled now); only if they do not cover
  // `need` do blocks freed on `stream` go, and the drop then waits for
  // `stream` once. Before, they never went: the offload trace under vmm rules
  // kept a 500 MiB free tail and 300 MiB of free blocks populated beside the
  // bare pages it refilled, 1.16-1.25 of peak live where managed memory held
  // 1.01-1.03 (docs/arena.md, "vmm drops wait for the caller's stream").
  space.ReadyOtherStreams(stream, fencer_);
  bool own_stream = false;
  const Stream side = DropStream(stream, &own_stream);
  GiveBackOldest(role, h, space, stream, /*own_stream=*/false, side, keep, keep_tail, need);
  if (need > 0) {
    GiveBackOldest(role, h, space, stream, /*own_stream=*/true, stream, keep, keep_tail, need);
  }
}

void Arena::GiveBackOldest(Role role, Heap& h, LargeHeap& space, Stream stream,
                           bool own_stream, Stream on, LargeHeap::PageRange keep, bool keep_tail,
                           std::size_t& need) {
  auto drop = [&](const std::vector<LargeHeap::PageRange>& ranges) {
    return DropPages(ranges, on);
  };
  // Pages free the longest go first, across the spaces: a page every cycle
  // of a workload uses was free for less than a cycle. One age limit covers
  // `need` in the growing space and the short-lived roles' spaces; the slab
  // space's, the KV cache's and the weights' come last, whatever their age
  // (a KV cache drained between batches fills again: found on a steady
  // trace, whose drained KV pages, the oldest, were refilled page by page;
  // slabs of every class are carved from the slab space, and a class that
  // found no room for its slab in a later cycle refilled pages there: the
  // recorded training trace's calls after warm-up went 20 -> 10, generate's
  // 39 -> 28, at the same peak reserved).
  std::vector<LargeHeap*> first{&space};
  std::vector<LargeHeap*> last;
  for (LargeHeap* slabs : h.slab_spaces()) {
    if (slabs != &space) last.push_back(slabs);
  }
  for (int r = 0; r < kNumRoles; ++r) {
    if (heap_of_[r] == heap_of(role) && space_of_[r] == r && &h.large[r] != &space) {
      (ShortLived(r) ? first : last).push_back(&h.large[r]);
    }
  }
  std::vector<std::pair<std::uint64_t, std::size_t>> ages;
  for (LargeHeap* from : first) {
    from->DroppableAges(stream, own_stream, keep_tail && from == &space, keep, &ages);
  }
  std::sort(ages.begin(), ages.end());
  std::uint64_t freed_by = LargeHeap::kAnyAge;
  std::size_t covered = 0;
  for (const auto& [freed_at, bytes] : ages) {
    covered += bytes;
    if (covered >= need) {
      freed_by = freed_at;
      break;
    }
  }
  auto give_back = [&](LargeHeap* from, std::uint64_t by) {
    if (need == 0) return;
    absl::StatusOr<std::size_t> n =
        from->Depopulate(stream, own_stream, need, keep_tail && from == &space, keep, drop, by);
    if (!n.ok() && absl::IsUnimplemented(n.status())) can_drop_.store(false);
    if (n.ok()) need -= std::min(need, *n);
  };
  for (LargeHeap* from : first) give_back(from, freed_by);
  for (LargeHeap* from : last) give_back(from, LargeHeap::kAnyAge);
}

absl::Status Arena::WaitForDrops() {
  MutexLock lock(&drop_mu_);
  absl::Status st;
  for (const auto& [on, done] : drop_events_) st.Update(backend_.SynchronizeEvent(done));
  return st;
}

absl::Status Arena::RefillPages(std::uintptr_t addr, std::size_t n, Stream stream) {
  absl::Status st;
  {
    MutexLock lock(&drop_mu_);
    for (const auto& [on, done] : drop_events_) {
      if (on == stream || !st.ok()) continue;
      // Drops are quick: usually done already, and then nothing to wait for.
      absl::StatusOr<bool> dropped = backend_.QueryEvent(done);
      if (!dropped.ok() || !*dropped) st = backend_.StreamWaitEvent(stream, done);
    }
  }
  void* p = reinterpret_cast<void*>(addr);
  if (st.ok()) st = backend_.Discard(&p, &n, 1, DiscardMode::kRefill, stream);
  if (absl::IsUnimplemented(st)) st = backend_.Prefetch(p, n, Location::kDevice, stream);
  if (st.ok()) counters_.Bump(counters_.bare_refills);
  return st;
}

absl::Status Arena::Refill(Segment*, std::uintptr_t addr, std::size_t n, Stream stream) {
  if (absl::Status st = ClaimReserved(n); !st.ok()) return st;
  if (absl::Status st = RefillPages(addr, n, stream); !st.ok()) {
    UnclaimReserved(n);
    return st;
  }
  counters_.reserved_bytes.Add(static_cast<std::int64_t>(n));
  counters_.bare_bytes.Add(-static_cast<std::int64_t>(n));
  AddLargeReserved(static_cast<std::int64_t>(n));
  return absl::OkStatus();
}

}  // namespace umpool::internal
