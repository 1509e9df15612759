// src/pool/thread_cache.h: a thread's private stash of free blocks.
//
// One ThreadCache per (thread, pool). It holds, per stream the thread uses
// (up to kStreamSlots, least recently used slot recycled), one bin per
// (role, thread-cached class): a small stack of blocks freed on that stream.
// Same-stream reuse from here is immediate and touches no shared cache line
// except the block's state byte. Overflow goes to the central bin in batches.
//
// Only the owning thread touches bins. Counters are atomics written only by
// the owner (relaxed load + store, no read-modify-write) and read by GetStats.
// Other threads ask for a flush by bumping the pool's flush epoch; the owner
// notices on its next call.
#ifndef UMPOOL_SRC_POOL_THREAD_CACHE_H_
#define UMPOOL_SRC_POOL_THREAD_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "umpool/types.h"

namespace umpool::internal {

class PoolCore;

// Owner-written counter readable from other threads.
struct OwnerCounter {
  std::atomic<std::int64_t> v{0};
  void Add(std::int64_t d) { v.store(v.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
  std::int64_t Get() const { return v.load(std::memory_order_relaxed); }
};

class ThreadCache {
 public:
  static constexpr int kStreamSlots = 4;

  struct Bin {
    void** slots = nullptr;
    std::uint32_t count = 0;
    std::uint32_t cap = 0;
  };

  ThreadCache(PoolCore* pool, std::uint64_t pool_id, int cached_classes);
  ~ThreadCache();
  ThreadCache(const ThreadCache&) = delete;
  ThreadCache& operator=(const ThreadCache&) = delete;

  // The bin for (stream, role, class); claims (and flushes) an LRU stream slot
  // if `stream` has none.
  Bin& BinFor(Stream stream, Role role, int size_class) {
    StreamSlot* s = &slots_[0];
    if (s->stream != stream || !s->used) s = SlotFor(stream);
    return s->bins[static_cast<int>(role) * cached_classes_ + size_class];
  }

  // Returns every cached block to the pool's central bins.
  void FlushAll();
  // Returns the bin's blocks beyond `keep` to the central bin.
  void Flush(Stream stream, Role role, int size_class, Bin& bin, std::uint32_t keep);
  // Flushes bins of (role, class) held for streams other than `stream`, so the
  // central bin can fence them for `stream` (free on A, allocate on B).
  void FlushOtherStreams(Stream stream, Role role, int size_class);

  std::uint64_t pool_id() const { return pool_id_; }
  PoolCore* pool() const { return pool_; }

  // Bin capacity for a class (blocks): 64 for small classes, fewer for large.
  static std::uint32_t CapacityFor(std::size_t block_bytes);

  std::uint64_t epoch = 0;        // the pool flush epoch last seen
  std::size_t cached_bytes = 0;   // bytes held in bins
  std::int64_t unpublished = 0;   // allocated-bytes delta not yet in the pool total
  OwnerCounter unpublished_view;  // mirror of `unpublished` for GetStats
  OwnerCounter allocations, frees, cache_hits;

 private:
  struct StreamSlot {
    Stream stream = nullptr;
    bool used = false;
    std::uint64_t last_use = 0;
    std::unique_ptr<Bin[]> bins;
  };
  StreamSlot* SlotFor(Stream stream);
  void FlushSlot(StreamSlot& slot);

  PoolCore* const pool_;
  const std::uint64_t pool_id_;
  const int cached_classes_;
  std::uint64_t tick_ = 0;
  StreamSlot slots_[kStreamSlots];
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_THREAD_CACHE_H_
