// src/pool/released_streams.h: stream handles the pool was told are going away.
//
// Pool::ReleaseStream waits for a stream's work, makes every cached block of
// it ready, and registers the handle here with the pool's flush epoch at the
// time. Until the handle is used again (CUDA reuses handle values), blocks
// that arrive tagged with it (a thread cache flushing blocks freed before the
// release) are filed as ready, so no event is ever recorded on the dead
// handle. An entry is dropped when the handle is passed to the pool again
// (Renew) or once every thread cache has flushed since its release (Prune):
// then no block tagged with it can arrive any more.
//
// Thread safety: every method may be called from any thread; empty() is one
// relaxed load, so the allocation paths can afford to ask.
#ifndef UMPOOL_SRC_POOL_RELEASED_STREAMS_H_
#define UMPOOL_SRC_POOL_RELEASED_STREAMS_H_

#include <atomic>
#include <cstdint>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "src/base/mutex.h"
#include "umpool/types.h"

namespace umpool::internal {

class ReleasedStreams {
 public:
  bool empty() const { return size_.load(std::memory_order_relaxed) == 0; }
  bool Contains(Stream stream) const {
    if (ABSL_PREDICT_TRUE(empty())) return false;
    MutexLock lock(&mu_);
    return epoch_of_.contains(stream);
  }
  void Add(Stream stream, std::uint64_t epoch) {
    MutexLock lock(&mu_);
    epoch_of_[stream] = epoch;
    size_.store(epoch_of_.size(), std::memory_order_relaxed);
  }
  // `stream` was passed to the pool again: it is a live stream.
  void Renew(Stream stream) {
    if (ABSL_PREDICT_TRUE(empty())) return;
    MutexLock lock(&mu_);
    epoch_of_.erase(stream);
    size_.store(epoch_of_.size(), std::memory_order_relaxed);
  }
  // Forgets handles released at an epoch every thread cache has caught up
  // with (`oldest`).
  void Prune(std::uint64_t oldest) {
    MutexLock lock(&mu_);
    absl::erase_if(epoch_of_, [&](const auto& e) { return e.second <= oldest; });
    size_.store(epoch_of_.size(), std::memory_order_relaxed);
  }

 private:
  mutable Mutex mu_;
  absl::flat_hash_map<Stream, std::uint64_t> epoch_of_ ABSL_GUARDED_BY(mu_);
  std::atomic<std::size_t> size_{0};
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_RELEASED_STREAMS_H_
