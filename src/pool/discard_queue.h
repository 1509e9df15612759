// src/pool/discard_queue.h: freed blocks waiting for one batched discard.
//
// A role with discard_on_free does not hand a freed block back to its free
// lists at once: the block waits here, invisible to every allocation, until
// the queue is drained. Drain issues one cudaMemDiscardBatchAsync per stream
// for all waiting blocks freed on that stream (so freeing the 40 KV blocks of
// a retiring request costs one driver call, not 40), and only then returns the
// blocks to their heaps. Because a block is never reusable before its discard
// is enqueued on the stream it was freed on, the discard is stream-ordered
// before any reuse: same-stream reuse follows it in stream order, and
// cross-stream reuse waits for a fence recorded after it.
//
// The pool drains when the queue holds kDiscardBatch blocks, at the start of
// every allocation that misses the thread cache (a cache hit cannot return a
// waiting block: they are in no list or cache), and before Trim or the
// out-of-memory retry.
//
// Thread safety: every method may be called from any thread; Push/TakeAll/
// Contains lock the queue's mutex (taken alone, never with another lock).
#ifndef UMPOOL_SRC_POOL_DISCARD_QUEUE_H_
#define UMPOOL_SRC_POOL_DISCARD_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "src/base/mutex.h"
#include "umpool/backend.h"
#include "umpool/types.h"

namespace umpool::internal {

// Blocks that make the pool drain at once.
inline constexpr std::size_t kDiscardBatch = 64;

// The whole 2 MiB pages inside [start, start + size): a partial page may
// hold a neighbour. None when lo >= hi.
struct PageRange {
  std::uintptr_t lo = 0, hi = 0;
  bool empty() const { return hi <= lo; }
};
inline PageRange WholePages(std::uintptr_t start, std::size_t size) {
  return PageRange{(start + kMapGranularity - 1) & ~(kMapGranularity - 1),
                   (start + size) & ~(kMapGranularity - 1)};
}

// Every 2 MiB page [start, start + size) touches: what a refill covers where
// pages populate only when asked (Backend::PopulatesOnTouch false), so that
// no byte of the block is left on a page dropped with a neighbour.
inline PageRange TouchedPages(std::uintptr_t start, std::size_t size) {
  return PageRange{start & ~(kMapGranularity - 1),
                   (start + size + kMapGranularity - 1) & ~(kMapGranularity - 1)};
}

struct PendingDiscard {
  std::uintptr_t block = 0;  // block start (what the user freed)
  std::uintptr_t lo = 0;     // whole 2 MiB pages inside it: [lo, hi)
  std::uintptr_t hi = 0;
  Stream stream = nullptr;   // the freeing stream
  DiscardMode mode = DiscardMode::kDrop;
};

class DiscardQueue {
 public:
  // Adds a block; returns true when the queue is full and should be drained.
  bool Push(const PendingDiscard& d);
  // Removes and returns every waiting block, grouped by stream (stable order).
  std::vector<PendingDiscard> TakeAll();
  // true if `block` waits here (a second free of it is a double free).
  bool Contains(std::uintptr_t block) const;
  // Cheap check for the allocation path.
  bool empty() const { return size_.load(std::memory_order_relaxed) == 0; }

 private:
  mutable Mutex mu_;
  std::vector<PendingDiscard> waiting_ ABSL_GUARDED_BY(mu_);
  alignas(64) std::atomic<std::size_t> size_{0};  // own cache line: read by every allocation
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_DISCARD_QUEUE_H_
