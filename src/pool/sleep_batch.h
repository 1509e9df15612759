// src/pool/sleep_batch.h: Sleep's and Wake's work on staged and discarded
// blocks, as one batch on one stream.
//
// Sleep copies the staged blocks into the staging buffer and then discards
// the whole pages of staged and discarded blocks in one batched call, on the
// caller's stream. Wake repopulates those pages on the GPU and copies the
// staged contents back, overlapping the two where the backend has a side
// stream: the pages are refilled there in groups of about 1 GiB (staged pages
// first, in address order), and the copies of a group go to the caller's
// stream once the host has seen that group's refill complete, while the next
// group is refilled. The host wait matters: measured on the H200 (driver
// 580), a copy ordered after a refill on another stream by an event alone
// faulted its pages one by one (1-4 GB/s instead of 52). With it, 8 GiB came
// back in 0.177 s instead of 0.183 s, refill and copies in one stream
// (bench/probes/wake_overlap.cu); the refill of discarded roles' pages (KV)
// hides behind the copies altogether.
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
  // Wake's refill group: big enough that a group's host wait costs little,
  // small enough that the first copy starts early.
  static constexpr std::size_t kWakeGroupBytes = std::size_t{1} << 30;

  // A staged block: copied at `offset` in the staging buffer, pages dropped.
  // Staged blocks come in address order, before any discarded block (else
  // Wake does not overlap).
  void AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset, std::uintptr_t span);
  // A discarded block: pages dropped only.
  void AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span);
  std::size_t page_bytes() const { return pages_.bytes; }

  // Sleep: the copies into `staging`, then the pages dropped (kDrop; evicted
  // where the driver cannot discard), all on `stream`. The sizes of the
  // ranges discarded are appended to `discarded`.
  absl::Status Sleep(Backend& backend, Staging& staging, Stream stream,
                     std::vector<std::size_t>* discarded) const;
  // Wake: the pages repopulated on the GPU (kRefill; prefetched where it
  // cannot), then the copies back on `stream`, overlapped in groups of
  // `group_bytes` (above). Returns when the pages are refilled; the copies
  // are queued on `stream`.
  absl::Status Wake(Backend& backend, Staging& staging, Stream stream,
                    std::vector<std::size_t>* discarded,
                    std::size_t group_bytes = kWakeGroupBytes) const;

 private:
  absl::Status WakeOverlapped(Backend& backend, Staging& staging, Stream stream, Stream side,
                              std::size_t group_bytes, std::vector<std::size_t>* discarded) const;

  std::vector<CopyRun> runs_;
  PageBatch pages_;
  std::size_t staged_ranges_ = 0;  // pages_' first ranges, of staged blocks
  bool ordered_ = true;            // staged blocks in address order, first
  bool pages_only_ = false;        // a discarded block was added
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLEEP_BATCH_H_
