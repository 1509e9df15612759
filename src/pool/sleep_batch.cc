#include "src/pool/sleep_batch.h"

#include "src/pool/discard_queue.h"

namespace umpool::internal {
namespace {

// Drops (Sleep) or refills on the GPU (Wake) the ranges, on `stream`; where
// the driver cannot discard, evicts or fetches them instead (the same GPU
// memory given up or taken back).
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
  AddToRuns(ptr, offset, bytes, span, &runs_);
  pages_.Add(ptr, bytes, span);
}

void SleepBatch::AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span) {
  pages_.Add(ptr, bytes, span);
}

absl::Status SleepBatch::Sleep(Backend& backend, Staging& staging, Stream stream,
                               std::vector<std::size_t>* discarded) const {
  if (absl::Status st = staging.CopyIn(runs_, stream); !st.ok()) return st;
  if (!runs_.empty() && !pages_.ptrs.empty()) {
    // The host waits for the copies before the pages are dropped (see the
    // file comment of sleep_batch.h).
    if (absl::Status st = staging.WaitForCopies(stream); !st.ok()) return st;
  }
  return PageWork(backend, pages_, /*wake=*/false, stream, discarded);
}

absl::Status SleepBatch::Wake(Backend& backend, Staging& staging, Stream stream,
                              std::vector<std::size_t>* discarded) const {
  absl::Status st = PageWork(backend, pages_, /*wake=*/true, stream, discarded);
  if (!st.ok() || runs_.empty()) return st;
  if (st = staging.CopyOut(runs_, stream); !st.ok()) return st;
  return staging.NoteUse(stream);
}

}  // namespace umpool::internal
