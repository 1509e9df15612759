// src/pool/sleep_batch.h: Sleep's and Wake's work on staged and discarded
// blocks, as one batch on one stream.
//
// Sleep copies the staged blocks into the staging buffer and then discards
// the whole pages of staged and discarded blocks in one batched call; Wake
// repopulates those pages on the GPU in one batched call and then copies the
// staged contents back. Everything runs on the caller's stream: measured on
// the H200 (driver 580), a copy ordered (by an event) after a discard or a
// refill issued on another stream faulted its pages one by one, at 1-4 GB/s
// instead of 52 GB/s, even when each chunk of pages kept to one stream. So
// the page work is not overlapped with the copies; it costs about 3 ms per
// GiB.
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

  // Sleep: the copies into `staging`, then the pages dropped (kDrop; evicted
  // where the driver cannot discard). Wake (`wake`): the pages repopulated
  // on the GPU (kRefill; prefetched where it cannot), then the copies back.
  // All on `stream`. The sizes of the ranges discarded are appended to
  // `discarded`.
  absl::Status Run(Backend& backend, Staging& staging, Stream stream, bool wake,
                   std::vector<std::size_t>* discarded) const;

 private:
  std::vector<CopyRun> runs_;
  PageBatch pages_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLEEP_BATCH_H_
