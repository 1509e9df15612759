#include "src/pool/sleep_batch.h"

#include "src/pool/discard_queue.h"

namespace umpool::internal {

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

absl::Status SleepBatch::Run(Backend& backend, Staging& staging, Stream stream, bool wake,
                             std::vector<std::size_t>* discarded) const {
  if (!wake) {
    if (absl::Status st = staging.CopyIn(runs_, stream); !st.ok()) return st;
  }
  if (!pages_.ptrs.empty()) {
    absl::Status st = backend.Discard(pages_.ptrs.data(), pages_.sizes.data(), pages_.ptrs.size(),
                                      wake ? DiscardMode::kRefill : DiscardMode::kDrop, stream);
    if (absl::IsUnimplemented(st)) {
      // The driver cannot discard: Sleep evicts the pages (the same GPU
      // memory given up; staged contents are saved already), Wake fetches.
      st = backend.Prefetch(pages_.ptrs.data(), pages_.sizes.data(), pages_.ptrs.size(),
                            wake ? Location::kDevice : Location::kHost, stream);
    } else if (st.ok()) {
      discarded->insert(discarded->end(), pages_.sizes.begin(), pages_.sizes.end());
    }
    if (!st.ok()) return st;
  }
  if (!wake || runs_.empty()) return absl::OkStatus();
  if (absl::Status st = staging.CopyOut(runs_, stream); !st.ok()) return st;
  return staging.NoteUse(stream);
}

}  // namespace umpool::internal
