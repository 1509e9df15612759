#include "src/pool/sleep_batch.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "src/pool/discard_queue.h"

namespace umpool::internal {
namespace {

// The ranges of `a` then `b`, as one batch.
PageBatch Joined(const PageBatch& a, const PageBatch& b) {
  PageBatch all = a;
  all.ptrs.insert(all.ptrs.end(), b.ptrs.begin(), b.ptrs.end());
  all.sizes.insert(all.sizes.end(), b.sizes.begin(), b.sizes.end());
  all.bytes += b.bytes;
  return all;
}

// Events made for one call and destroyed with it.
class CallEvents {
 public:
  explicit CallEvents(Backend& backend) : backend_(backend) {}
  CallEvents(const CallEvents&) = delete;
  CallEvents& operator=(const CallEvents&) = delete;
  ~CallEvents() {
    for (Event e : events_) backend_.DestroyEvent(e);
  }
  absl::StatusOr<Event> Make() {
    absl::StatusOr<Event> e = backend_.CreateEvent();
    if (e.ok()) events_.push_back(*e);
    return e;
  }

 private:
  Backend& backend_;
  std::vector<Event> events_;
};

// Walks address-ordered runs, handing out the bytes below a rising limit.
class RunCursor {
 public:
  explicit RunCursor(const std::vector<CopyRun>& runs) : runs_(runs) {}
  std::vector<CopyRun> Below(std::uintptr_t limit) {
    std::vector<CopyRun> out;
    while (i_ < runs_.size() && runs_[i_].ptr + done_ < limit) {
      const CopyRun& r = runs_[i_];
      const std::size_t n = std::min<std::uintptr_t>(r.ptr + r.bytes, limit) - (r.ptr + done_);
      out.push_back(CopyRun{r.ptr + done_, r.offset + done_, n, r.span});
      done_ += n;
      if (done_ == r.bytes) {
        ++i_;
        done_ = 0;
      }
    }
    return out;
  }

 private:
  const std::vector<CopyRun>& runs_;
  std::size_t i_ = 0, done_ = 0;
};

// Starts a pipeline: two events to alternate between (`pair`), and the side
// stream ordered after the caller's earlier work.
absl::Status BeginSide(Backend& backend, CallEvents& events, Stream stream, Stream side,
                       Event pair[2]) {
  absl::StatusOr<Event> start = events.Make(), a = events.Make(), b = events.Make();
  if (!start.ok() || !a.ok() || !b.ok()) {
    return !start.ok() ? start.status() : !a.ok() ? a.status() : b.status();
  }
  pair[0] = *a;
  pair[1] = *b;
  if (absl::Status st = backend.RecordEvent(*start, stream); !st.ok()) return st;
  return backend.StreamWaitEvent(side, *start);
}

// The caller's stream waits for the side stream's work. `st`: the work's
// status so far (returned if not ok; the wait is made regardless, so the
// page work queued stays ordered before the caller's later work).
absl::Status JoinSide(Backend& backend, CallEvents& events, Stream stream, Stream side,
                      absl::Status st) {
  absl::StatusOr<Event> done = events.Make();
  if (!done.ok()) return st.ok() ? done.status() : st;
  absl::Status join = backend.RecordEvent(*done, side);
  if (join.ok()) join = backend.StreamWaitEvent(stream, *done);
  return st.ok() ? join : st;
}

}  // namespace

absl::Status PageWork(Backend& backend, const PageBatch& pages, bool wake, Stream stream,
                      std::vector<std::size_t>* discarded) {
  if (pages.ptrs.empty()) return absl::OkStatus();
  absl::Status st = backend.Discard(pages.ptrs.data(), pages.sizes.data(), pages.ptrs.size(),
                                    wake ? DiscardMode::kRefill : DiscardMode::kDrop, stream);
  if (absl::IsUnimplemented(st)) {
    return backend.Prefetch(pages.ptrs.data(), pages.sizes.data(), pages.ptrs.size(),
                            wake ? Location::kDevice : Location::kHost, stream);
  }
  if (st.ok()) discarded->insert(discarded->end(), pages.sizes.begin(), pages.sizes.end());
  return st;
}

void PageBatch::Add(std::uintptr_t start, std::size_t size, std::uintptr_t span) {
  if (size == 0) return;
  if (run_hi != 0 && span == last_span && start == run_hi) {  // the run goes on
    if (run_has_range) {
      bytes -= sizes.back();
      ptrs.pop_back();
      sizes.pop_back();
    }
    run_hi = start + size;
  } else {
    run_lo = start;
    run_hi = start + size;
    last_span = span;
  }
  PageRange pages = outward ? TouchedPages(run_lo, run_hi - run_lo)
                            : WholePages(run_lo, run_hi - run_lo);
  // Touched pages of two runs added in address order may share one: it is
  // the earlier run's (out of order, an overlap is left: refills repeat).
  if (outward && !ptrs.empty()) {
    const auto prev_lo = reinterpret_cast<std::uintptr_t>(ptrs.back());
    const std::uintptr_t prev_hi = prev_lo + sizes.back();
    if (prev_lo <= pages.lo && prev_hi > pages.lo) pages.lo = prev_hi;
  }
  run_has_range = !pages.empty();
  if (!run_has_range) return;
  bytes += pages.hi - pages.lo;
  ptrs.push_back(reinterpret_cast<void*>(pages.lo));
  sizes.push_back(pages.hi - pages.lo);
}

void SleepBatch::AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset,
                           std::uintptr_t span) {
  AddToRuns(ptr, offset, bytes, span, &runs_);
  staged_pages_.Add(ptr, bytes, span);
}

void SleepBatch::AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span) {
  other_pages_.Add(ptr, bytes, span);
}

std::vector<CopyRun> SleepBatch::SortedRuns() const {
  std::vector<CopyRun> runs = runs_;
  std::sort(runs.begin(), runs.end(),
            [](const CopyRun& a, const CopyRun& b) { return a.ptr < b.ptr; });
  return runs;
}

std::vector<SleepBatch::Group> SleepBatch::Groups(std::size_t group_bytes) const {
  std::vector<std::size_t> order(staged_pages_.ptrs.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return staged_pages_.ptrs[a] < staged_pages_.ptrs[b];
  });
  std::vector<Group> groups(1);
  for (std::size_t i : order) {
    auto lo = reinterpret_cast<std::uintptr_t>(staged_pages_.ptrs[i]);
    std::size_t left = staged_pages_.sizes[i];
    while (left > 0) {
      PageBatch& pages = groups.back().pages;
      const std::size_t take = std::min(left, group_bytes - pages.bytes);
      pages.ptrs.push_back(reinterpret_cast<void*>(lo));
      pages.sizes.push_back(take);
      pages.bytes += take;
      lo += take;
      left -= take;
      if (pages.bytes == group_bytes) {
        groups.back().limit = lo;
        groups.emplace_back();
      }
    }
  }
  if (groups.back().pages.ptrs.empty() && groups.size() > 1) groups.pop_back();
  groups.back().limit = std::numeric_limits<std::uintptr_t>::max();
  return groups;
}

bool SleepBatch::Pipelined(Backend& backend, std::size_t* group_bytes, Stream* side) const {
  *group_bytes = std::max(kMapGranularity, *group_bytes & ~(kMapGranularity - 1));
  if (runs_.empty() || staged_pages_.bytes <= *group_bytes) return false;
  absl::StatusOr<Stream> s = backend.SideStream();
  if (!s.ok()) return false;
  *side = *s;
  return true;
}

absl::Status SleepBatch::Sleep(Backend& backend, Staging& staging, Stream stream,
                               std::vector<std::size_t>* discarded,
                               std::size_t group_bytes) const {
  if (Stream side; Pipelined(backend, &group_bytes, &side)) {
    return SleepPipelined(backend, staging, stream, side, group_bytes, discarded);
  }
  if (absl::Status st = staging.CopyIn(runs_, stream); !st.ok()) return st;
  if (!runs_.empty() && page_bytes() > 0) {
    if (absl::Status st = staging.WaitForCopies(stream); !st.ok()) return st;
  }
  return DropPages(backend, stream, discarded);
}

absl::Status SleepBatch::DropPages(Backend& backend, Stream stream,
                                   std::vector<std::size_t>* discarded) const {
  return PageWork(backend, Joined(staged_pages_, other_pages_), /*wake=*/false, stream,
                  discarded);
}

absl::Status SleepBatch::Wake(Backend& backend, Staging& staging, Stream stream,
                              std::vector<std::size_t>* discarded,
                              std::size_t group_bytes) const {
  if (Stream side; Pipelined(backend, &group_bytes, &side)) {
    return WakePipelined(backend, staging, stream, side, group_bytes, discarded);
  }
  absl::Status st = PageWork(backend, Joined(staged_pages_, other_pages_), /*wake=*/true, stream,
                             discarded);
  if (!st.ok() || runs_.empty()) return st;
  if (st = staging.CopyOut(runs_, stream); !st.ok()) return st;
  return staging.NoteUse(stream);
}

absl::Status SleepBatch::SleepPipelined(Backend& backend, Staging& staging, Stream stream,
                                        Stream side, std::size_t group_bytes,
                                        std::vector<std::size_t>* discarded) const {
  CallEvents events(backend);
  Event copied[2];
  if (absl::Status st = BeginSide(backend, events, stream, side, copied); !st.ok()) return st;
  // Nothing is copied out of the discarded blocks: dropped at once.
  absl::Status st = PageWork(backend, other_pages_, /*wake=*/false, side, discarded);
  const std::vector<Group> groups = Groups(group_bytes);
  const std::vector<CopyRun> runs = SortedRuns();
  RunCursor cursor(runs);
  for (std::size_t g = 0; st.ok() && g <= groups.size(); ++g) {
    if (g < groups.size()) {
      if (st = staging.CopyIn(cursor.Below(groups[g].limit), stream); !st.ok()) break;
      if (st = backend.RecordEvent(copied[g % 2], stream); !st.ok()) break;
    }
    if (g > 0) {  // the last group's copies done: its pages dropped
      if (st = backend.SynchronizeEvent(copied[(g - 1) % 2]); !st.ok()) break;
      st = PageWork(backend, groups[g - 1].pages, /*wake=*/false, side, discarded);
    }
  }
  return JoinSide(backend, events, stream, side, st);
}

absl::Status SleepBatch::WakePipelined(Backend& backend, Staging& staging, Stream stream,
                                       Stream side, std::size_t group_bytes,
                                       std::vector<std::size_t>* discarded) const {
  CallEvents events(backend);
  Event ready[2];
  if (absl::Status st = BeginSide(backend, events, stream, side, ready); !st.ok()) return st;
  const std::vector<Group> groups = Groups(group_bytes);
  const std::vector<CopyRun> runs = SortedRuns();
  RunCursor cursor(runs);
  auto refill = [&](std::size_t g) -> absl::Status {
    absl::Status st = PageWork(backend, groups[g].pages, /*wake=*/true, side, discarded);
    return st.ok() ? backend.RecordEvent(ready[g % 2], side) : st;
  };
  absl::Status st = refill(0);
  bool copied = false;
  for (std::size_t g = 0; st.ok() && g < groups.size(); ++g) {
    // Group g's pages are on the GPU before its copies are queued; group
    // g+1's refill runs meanwhile.
    if (st = backend.SynchronizeEvent(ready[g % 2]); !st.ok()) break;
    if (g + 1 < groups.size() && !(st = refill(g + 1)).ok()) break;
    st = staging.CopyOut(cursor.Below(groups[g].limit), stream);
    copied = true;
  }
  if (st.ok()) st = PageWork(backend, other_pages_, /*wake=*/true, side, discarded);
  st = JoinSide(backend, events, stream, side, st);
  if (copied) {  // copies were queued: the buffer stays until they ran
    if (absl::Status used = staging.NoteUse(stream); st.ok()) st = used;
  }
  return st;
}

}  // namespace umpool::internal
