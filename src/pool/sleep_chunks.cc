#include "src/pool/sleep_chunks.h"

#include "src/pool/discard_queue.h"

namespace umpool::internal {
namespace {

// Makes work queued later on `to` wait for work queued so far on `from`.
absl::Status Order(Backend& backend, Stream from, Stream to) {
  absl::StatusOr<Event> e = backend.CreateEvent();
  if (!e.ok()) return e.status();
  absl::Status st = backend.RecordEvent(*e, from);
  if (st.ok()) st = backend.StreamWaitEvent(to, *e);
  backend.DestroyEvent(*e);  // released once the wait is done
  return st;
}

absl::Status PageWork(Backend& backend, const PageBatch& pages, bool wake, Stream stream,
                      std::vector<std::size_t>* discarded) {
  if (pages.ptrs.empty()) return absl::OkStatus();
  absl::Status st = backend.Discard(pages.ptrs.data(), pages.sizes.data(), pages.ptrs.size(),
                                    wake ? DiscardMode::kRefill : DiscardMode::kDrop, stream);
  if (absl::IsUnimplemented(st)) {
    // The driver cannot discard: Sleep evicts the pages (the same GPU memory
    // given up; staged contents are saved already), Wake fetches them.
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

SleepChunk& SleepChunks::Open() {
  if (chunks_.empty()) chunks_.emplace_back();
  return chunks_.back();
}

void SleepChunks::AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset,
                            std::uintptr_t span) {
  if (chunks_.empty() || chunks_.back().copy_bytes >= kSleepChunkBytes) chunks_.emplace_back();
  SleepChunk& c = chunks_.back();
  AddToRuns(ptr, offset, bytes, span, &c.runs);
  c.pages.Add(ptr, bytes, span);
  c.copy_bytes += bytes;
}

void SleepChunks::AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span) {
  Open().pages.Add(ptr, bytes, span);
}

std::size_t SleepChunks::page_bytes() const {
  std::size_t n = 0;
  for (const SleepChunk& c : chunks_) n += c.pages.bytes;
  return n;
}

absl::Status SleepChunks::Run(Backend& backend, Staging& staging, Stream stream, Stream helper,
                              bool wake, std::vector<std::size_t>* discarded) const {
  const Stream pages_on = helper != nullptr ? helper : stream;
  if (helper != nullptr && wake) {
    if (absl::Status st = Order(backend, stream, helper); !st.ok()) return st;
  }
  for (const SleepChunk& c : chunks_) {
    if (wake) {
      if (absl::Status st = PageWork(backend, c.pages, true, pages_on, discarded); !st.ok()) {
        return st;
      }
      if (helper != nullptr) {
        if (absl::Status st = Order(backend, helper, stream); !st.ok()) return st;
      }
      if (!c.runs.empty()) {
        if (absl::Status st = staging.CopyOut(c.runs, stream); !st.ok()) return st;
      }
      continue;
    }
    if (absl::Status st = staging.CopyIn(c.runs, stream); !st.ok()) return st;
    if (helper != nullptr) {
      if (absl::Status st = Order(backend, stream, helper); !st.ok()) return st;
    }
    if (absl::Status st = PageWork(backend, c.pages, false, pages_on, discarded); !st.ok()) {
      return st;
    }
  }
  if (helper != nullptr && !wake) return Order(backend, helper, stream);
  return absl::OkStatus();
}

}  // namespace umpool::internal
