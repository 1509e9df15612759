// src/pool/sleep_batch.h: Sleep's and Wake's work on staged and discarded
// blocks, as one batch on one stream.
//
// Sleep copies the staged blocks into the staging buffer, waits on the host
// for the copies, and then discards the whole pages of staged and discarded
// blocks in one batched call; Wake repopulates those pages on the GPU in one
// batched call and then copies the staged contents back. Everything runs on
// the caller's stream. The host wait matters: measured on the H200 (driver
// 580, bench/probes/pool_wake.cu), when the discard was queued right behind
// the copies out, the copies back of a later wake faulted page by page in
// most runs (2-7 s for 4 GiB instead of 0.084 s), whatever the wake did
// (refill first, host waits, 64 MiB pieces); with the host waiting between
// copy-out and discard, every run copied back at 51 GB/s. Overlapping the
// wake's refill with its copies (the next 1 GiB refilled on a second
// stream) brought 8 GiB back in 0.178 s instead of 0.194 s in
// bench/probes/wake_overlap.cu; it was tried in the pool before this was
// understood, and removed. The page work costs about 3 ms per GiB.
//
// Thread safety: none; the pool holds sleep_mu_.
#ifndef UMPOOL_SRC_POOL_SLEEP_BATCH_H_
#define UMPOOL_SRC_POOL_SLEEP_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "src/pool/staging.h"
#include "umpool/backend.h"

namespace umpool::internal {

// The whole 2 MiB pages of blocks, adjacent ones in one span merged (a range
// never crosses backend allocations), as one Discard or Prefetch batch.
struct PageBatch {
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  std::size_t bytes = 0;
  std::uintptr_t last_span = 0;

  void Add(std::uintptr_t start, std::size_t size, std::uintptr_t span);
};

class SleepBatch {
 public:
  // A staged block: copied at `offset` in the staging buffer, pages dropped.
  void AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset, std::uintptr_t span);
  // A discarded block: pages dropped only.
  void AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span);
  std::size_t page_bytes() const { return pages_.bytes; }

  // Sleep: the copies into `staging`, a host wait for them, then the pages
  // dropped (kDrop; evicted where the driver cannot discard), all on
  // `stream`. The sizes of the
  // ranges discarded are appended to `discarded`.
  absl::Status Sleep(Backend& backend, Staging& staging, Stream stream,
                     std::vector<std::size_t>* discarded) const;
  // Wake: the pages repopulated on the GPU (kRefill; fetched where the
  // driver cannot discard), then the copies back, all on `stream`.
  absl::Status Wake(Backend& backend, Staging& staging, Stream stream,
                    std::vector<std::size_t>* discarded) const;

 private:
  std::vector<CopyRun> runs_;
  PageBatch pages_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLEEP_BATCH_H_
