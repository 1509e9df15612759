// src/pool/sleep_batch.h: Sleep's and Wake's work on staged and discarded
// blocks, as one batch.
//
// Sleep copies the staged blocks into the staging buffer and drops the whole
// pages of staged and discarded blocks; Wake repopulates those pages on the
// GPU and copies the staged contents back. A page is dropped only after the
// host has seen its copies complete: measured on the H200 (driver 580,
// bench/probes/pool_wake.cu), when the discard was queued right behind the
// copies out, the copies back of a later wake faulted page by page in most
// runs (2-7 s for 4 GiB instead of 0.084 s), whatever the wake did; with the
// host waiting between copy-out and discard, every run copied back at
// 51 GB/s.
//
// With a backend side stream (Backend::SideStream) and more than one group
// of staged pages (kSleepGroupBytes), the page work overlaps the copies:
// Sleep drops the discarded blocks' pages on the side stream at once and
// each group's pages once the host saw its copies done, while the next
// group is copied; Wake refills group k+1 on the side stream while group k
// is copied back (the host waits for each refill before queueing its
// copies), then the discarded blocks' pages. The caller's stream waits for
// the side stream at the end. Measured for 16 GiB on the H200
// (bench/probes/sleep_pipeline.cu): sleep 0.378 s instead of 0.386 s, wake
// 0.363 s instead of 0.385 s; a plain 16 GiB copy takes 0.327 s out, 0.311 s
// in. Otherwise everything runs on the caller's stream, page work batched
// into one call each way (about 3.7 ms per GiB).
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

// The whole 2 MiB pages of runs of blocks, as one Discard or Prefetch batch:
// blocks added one after another that are adjacent in one span make one run
// (a page two of them share is the run's, and a range never crosses backend
// allocations). `outward`: every page a run touches instead (refills of a
// backend whose pages do not populate on touch: a page dropped with a
// neighbour must come back under any block that uses it).
struct PageBatch {
  PageBatch() = default;
  explicit PageBatch(bool outward_pages) : outward(outward_pages) {}

  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  std::size_t bytes = 0;
  bool outward = false;
  // The run the last range came from: [run_lo, run_hi) in span last_span;
  // whether it has a range (the last one) yet.
  std::uintptr_t run_lo = 0, run_hi = 0, last_span = 0;
  bool run_has_range = false;

  void Add(std::uintptr_t start, std::size_t size, std::uintptr_t span);
};

// Drops (kDrop) or refills on the GPU (`wake`) the ranges of `pages` in one
// batched call on `stream`; where the driver cannot discard, evicts or
// fetches them instead (the same GPU memory given up or taken back). The
// sizes discarded are appended to `discarded`.
absl::Status PageWork(Backend& backend, const PageBatch& pages, bool wake, Stream stream,
                      std::vector<std::size_t>* discarded);

// Staged pages per group of Sleep's and Wake's pipeline (a multiple of the
// 2 MiB page).
inline constexpr std::size_t kSleepGroupBytes = std::size_t{1} << 30;

class SleepBatch {
 public:
  // `outward_refills`: the batch's pages are every page its runs touch, for a
  // Wake on a backend whose pages do not populate on touch (PageBatch).
  explicit SleepBatch(bool outward_refills = false)
      : staged_pages_(outward_refills), other_pages_(outward_refills) {}
  // A staged block: copied at `offset` in the staging buffer, pages dropped.
  void AddStaged(std::uintptr_t ptr, std::size_t bytes, std::size_t offset, std::uintptr_t span);
  // A discarded block: pages dropped only.
  void AddPagesOnly(std::uintptr_t ptr, std::size_t bytes, std::uintptr_t span);
  std::size_t page_bytes() const { return staged_pages_.bytes + other_pages_.bytes; }

  // Sleep: the copies into `staging`, and the pages dropped (kDrop; evicted
  // where the driver cannot discard) once the host saw their copies done;
  // ordered after `stream`'s earlier work and before its later work;
  // pipelined in groups of `group_bytes` (see the file comment). The sizes
  // of the ranges discarded are appended to `discarded`.
  absl::Status Sleep(Backend& backend, Staging& staging, Stream stream,
                     std::vector<std::size_t>* discarded,
                     std::size_t group_bytes = kSleepGroupBytes) const;
  // Sleep without copies (the staging buffer already holds the staged
  // blocks' contents): every page dropped in one batched call on `stream`.
  absl::Status DropPages(Backend& backend, Stream stream,
                         std::vector<std::size_t>* discarded) const;
  // Wake: the pages repopulated on the GPU (kRefill; fetched where the
  // driver cannot discard) and the staged contents copied back after their
  // pages, ordered as Sleep.
  absl::Status Wake(Backend& backend, Staging& staging, Stream stream,
                    std::vector<std::size_t>* discarded,
                    std::size_t group_bytes = kSleepGroupBytes) const;

 private:
  // A group of staged pages and the address below which its copies lie
  // (every run byte at or above the previous group's limit and below this).
  struct Group {
    PageBatch pages;
    std::uintptr_t limit = 0;
  };
  // The staged pages in address order, cut into groups of `group_bytes`.
  std::vector<Group> Groups(std::size_t group_bytes) const;
  // The runs in address order.
  std::vector<CopyRun> SortedRuns() const;
  // Whether the pipeline applies: a side stream and more than one group
  // (*group_bytes first made a whole number of 2 MiB pages, at least one).
  bool Pipelined(Backend& backend, std::size_t* group_bytes, Stream* side) const;
  absl::Status SleepPipelined(Backend& backend, Staging& staging, Stream stream, Stream side,
                              std::size_t group_bytes, std::vector<std::size_t>* discarded) const;
  absl::Status WakePipelined(Backend& backend, Staging& staging, Stream stream, Stream side,
                             std::size_t group_bytes, std::vector<std::size_t>* discarded) const;

  std::vector<CopyRun> runs_;
  PageBatch staged_pages_;  // whole pages of staged blocks
  PageBatch other_pages_;   // whole pages of discarded blocks
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLEEP_BATCH_H_
