// src/pool/recorded_streams.h: the streams RecordStream named for live slab blocks.
//
// A slab block's record says only that it was recorded (kLiveRecorded); the
// streams themselves are kept here, keyed by block address, until its free
// turns them into fences. Large blocks keep theirs in their LargeBlock.
//
// Thread safety: every method takes the registry's mutex (taken alone).
#ifndef UMPOOL_SRC_POOL_RECORDED_STREAMS_H_
#define UMPOOL_SRC_POOL_RECORDED_STREAMS_H_

#include <algorithm>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "src/base/mutex.h"
#include "umpool/types.h"

namespace umpool::internal {

using StreamSet = absl::InlinedVector<Stream, 2>;

class RecordedStreams {
 public:
  void Add(void* block, Stream stream) {
    MutexLock lock(&mu_);
    StreamSet& streams = by_block_[block];
    if (std::find(streams.begin(), streams.end(), stream) == streams.end()) {
      streams.push_back(stream);
    }
  }
  // `stream`'s work has completed (ReleaseStream): no free waits for it.
  void Forget(Stream stream) {
    MutexLock lock(&mu_);
    for (auto& [block, streams] : by_block_) {
      streams.erase(std::remove(streams.begin(), streams.end(), stream), streams.end());
    }
  }
  // Removes the block's streams and returns those other than `freeing`
  // (empty if none): the freeing stream's own work is ordered before any
  // reuse by the free-on-stream rule, as PyTorch ignores a record_stream of
  // the allocation stream.
  StreamSet Take(void* block, Stream freeing) {
    MutexLock lock(&mu_);
    auto it = by_block_.find(block);
    if (it == by_block_.end()) return {};
    StreamSet streams = std::move(it->second);
    by_block_.erase(it);
    streams.erase(std::remove(streams.begin(), streams.end(), freeing), streams.end());
    return streams;
  }

 private:
  Mutex mu_;
  absl::flat_hash_map<void*, StreamSet> by_block_ ABSL_GUARDED_BY(mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_RECORDED_STREAMS_H_
