// src/pool/sleep_chunks.h: Sleep's and Wake's work on staged blocks, in
// chunks that overlap copies with page operations.
//
// Sleep copies each chunk of staged blocks into the staging buffer on the
// caller's stream and discards the chunk's pages on the staging work stream
// while the next chunk copies; Wake repopulates a chunk's pages on the work
// stream while the previous chunk copies back. Each copy runs at the copy
// engine's speed (52 GB/s each way on the H200); the page operations (about
// 3 ms per GiB) hide behind them. Without a work stream (host backend, or a
// backend that makes none) everything runs in order on the caller's stream.
//
// Thread safety: none; the pool holds sleep_mu_.
#ifndef UMPOOL_SRC_POOL_SLEEP_CHUNKS_H_
#define UMPOOL_SRC_POOL_SLEEP_CHUNKS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "src/pool/staging.h"
#include "umpool/backend.h"

namespace umpool::internal {

// Staged bytes per chunk.
inline constexpr std::size_t kSleepChunkBytes = std::size_t{1} << 30;

// The whole 2 MiB pages of blocks, adjacent ones in one span merged (a range
// never crosses backend allocations), as one Discard or Prefetch batch.
struct PageBatch {
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  std::size_t bytes = 0;
  std::uintptr_t last_span = 0;

  void Add(std::uintptr_t start, std::size_t size, std::uintptr_t span);
};

struct SleepChunk {
  std::vector<CopyRun> runs;  // staged blocks (none: pages only)
  PageBatch pages;            // discarded on Sleep, repopulated on Wake
  std::size_t copy_bytes = 0;
};

// Builds the chunks: staged blocks in address order, then blocks whose pages
// only are dropped (they join the last chunk).
class SleepChunks {
 public:
  void AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset, std::uintptr_t span);
  void AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span);
  const std::vector<SleepChunk>& chunks() const { return chunks_; }
  std::size_t page_bytes() const;

  // Sleep: copy every chunk into `staging` on `stream`, then drop its pages
  // (kDrop; evicted where the driver cannot discard). Wake (`wake`): the
  // pages repopulated on the GPU (kRefill; prefetched where it cannot), then
  // the copies back. `helper` (may be null) is the stream the page work
  // overlaps on; `stream` is ordered after all of it at the end. The sizes
  // of every range discarded are appended to `discarded`.
  absl::Status Run(Backend& backend, Staging& staging, Stream stream, Stream helper, bool wake,
                   std::vector<std::size_t>* discarded) const;

 private:
  SleepChunk& Open();
  std::vector<SleepChunk> chunks_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLEEP_CHUNKS_H_
