#include "src/pool/sleep_batch.h"

#include <algorithm>
#include <limits>

#include "src/pool/discard_queue.h"

namespace umpool::internal {
namespace {

// Drops (Sleep) or refills on the GPU (Wake) the ranges, on `stream`; where
// the driver cannot discard, evicts or fetches them instead (the same GPU
// memory given up or taken back).
absl::Status PageWork(Backend& backend, void* const* ptrs, const std::size_t* sizes,
                      std::size_t count, bool wake, Stream stream,
                      std::vector<std::size_t>* discarded) {
  if (count == 0) return absl::OkStatus();
  absl::Status st = backend.Discard(ptrs, sizes, count,
                                    wake ? DiscardMode::kRefill : DiscardMode::kDrop, stream);
  if (absl::IsUnimplemented(st)) {
    return backend.Prefetch(ptrs, sizes, count, wake ? Location::kDevice : Location::kHost,
                            stream);
  }
  if (st.ok()) discarded->insert(discarded->end(), sizes, sizes + count);
  return st;
}

// Events made for one call and destroyed with it.
class CallEvents {
 public:
  explicit CallEvents(Backend& backend) : backend_(backend) {}
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

}  // namespace

void PageBatch::Add(std::uintptr_t start, std::size_t size, std::uintptr_t span) {
  const PageRange pages = WholePages(start, size);
  if (pages.empty()) return;
  bytes += pages.hi - pages.lo;
  if (!ptrs.empty() && span == last_span &&
      reinterpret_cast<std::uintptr_t>(ptrs.back()) + sizes.back() == pages.lo) {
    sizes.back() += pages.hi - pages.lo;
    return;
  }
  ptrs.push_back(reinterpret_cast<void*>(pages.lo));
  sizes.push_back(pages.hi - pages.lo);
  last_span = span;
}

void SleepBatch::AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset,
                           std::uintptr_t span) {
  if (pages_only_ || (!runs_.empty() && ptr < runs_.back().ptr + runs_.back().bytes)) {
    ordered_ = false;
  }
  AddToRuns(ptr, offset, bytes, span, &runs_);
  pages_.Add(ptr, bytes, span);
  staged_ranges_ = pages_.ptrs.size();
}

void SleepBatch::AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span) {
  pages_only_ = true;
  pages_.Add(ptr, bytes, span);
}

absl::Status SleepBatch::Sleep(Backend& backend, Staging& staging, Stream stream,
                               std::vector<std::size_t>* discarded) const {
  if (absl::Status st = staging.CopyIn(runs_, stream); !st.ok()) return st;
  return PageWork(backend, pages_.ptrs.data(), pages_.sizes.data(), pages_.ptrs.size(),
                  /*wake=*/false, stream, discarded);
}

absl::Status SleepBatch::Wake(Backend& backend, Staging& staging, Stream stream,
                              std::vector<std::size_t>* discarded,
                              std::size_t group_bytes) const {
  if (!runs_.empty() && ordered_ && pages_.bytes > group_bytes) {
    if (absl::StatusOr<Stream> side = backend.SideStream(); side.ok()) {
      return WakeOverlapped(backend, staging, stream, *side, group_bytes, discarded);
    }
  }
  absl::Status st = PageWork(backend, pages_.ptrs.data(), pages_.sizes.data(),
                             pages_.ptrs.size(), /*wake=*/true, stream, discarded);
  if (!st.ok() || runs_.empty()) return st;
  if (st = staging.CopyOut(runs_, stream); !st.ok()) return st;
  return staging.NoteUse(stream);
}

absl::Status SleepBatch::WakeOverlapped(Backend& backend, Staging& staging, Stream stream,
                                        Stream side, std::size_t group_bytes,
                                        std::vector<std::size_t>* discarded) const {
  CallEvents events(backend);
  absl::StatusOr<Event> start = events.Make();
  if (!start.ok()) return start.status();
  absl::StatusOr<Event> refilled = events.Make();
  if (!refilled.ok()) return refilled.status();
  // The side stream's page work comes after the caller's earlier work.
  if (absl::Status st = backend.RecordEvent(*start, stream); !st.ok()) return st;
  if (absl::Status st = backend.StreamWaitEvent(side, *start); !st.ok()) return st;

  // Page cursor: range `pi`, `poff` bytes of it refilled or queued.
  std::size_t pi = 0, poff = 0;
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  auto refill_next_group = [&]() -> absl::Status {
    ptrs.clear();
    sizes.clear();
    std::size_t got = 0;
    while (pi < pages_.ptrs.size() && got < group_bytes) {
      const std::size_t take = std::min(pages_.sizes[pi] - poff, group_bytes - got);
      ptrs.push_back(static_cast<std::byte*>(pages_.ptrs[pi]) + poff);
      sizes.push_back(take);
      got += take;
      poff += take;
      if (poff == pages_.sizes[pi]) {
        ++pi;
        poff = 0;
      }
    }
    absl::Status st = PageWork(backend, ptrs.data(), sizes.data(), ptrs.size(), /*wake=*/true,
                               side, discarded);
    return st.ok() ? backend.RecordEvent(*refilled, side) : st;
  };
  // Below this address every staged page is refilled (once the host saw the
  // queued groups complete): the first staged page not yet queued.
  auto refilled_below = [&]() -> std::uintptr_t {
    return pi < staged_ranges_ ? reinterpret_cast<std::uintptr_t>(pages_.ptrs[pi]) + poff
                               : std::numeric_limits<std::uintptr_t>::max();
  };
  // Copy cursor: run `ci`, `coff` bytes of it queued.
  std::size_t ci = 0, coff = 0;
  std::vector<CopyRun> copies;
  auto copy_below = [&](std::uintptr_t limit) -> absl::Status {
    copies.clear();
    while (ci < runs_.size() && runs_[ci].ptr + coff < limit) {
      const CopyRun& r = runs_[ci];
      const std::size_t n = std::min<std::uintptr_t>(r.ptr + r.bytes, limit) - (r.ptr + coff);
      copies.push_back(CopyRun{r.ptr + coff, r.offset + coff, n, r.span});
      coff += n;
      if (coff == r.bytes) {
        ++ci;
        coff = 0;
      }
    }
    return staging.CopyOut(copies, stream);
  };

  absl::Status st = refill_next_group();
  while (st.ok()) {
    if (st = backend.SynchronizeEvent(*refilled); !st.ok()) break;
    const std::uintptr_t limit = refilled_below();
    const bool more = pi < pages_.ptrs.size();
    if (more && !(st = refill_next_group()).ok()) break;  // overlaps the copies below
    if (st = copy_below(limit); !st.ok() || !more) break;
  }
  if (ci > 0 || coff > 0) {  // copies were queued: the buffer stays until they ran
    if (absl::Status used = staging.NoteUse(stream); st.ok()) st = used;
  }
  if (st.ok()) st = backend.SynchronizeEvent(*refilled);  // the last page work is done
  return st;
}

}  // namespace umpool::internal
