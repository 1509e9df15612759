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
// notices on its next call (ThreadCaches::Current). It reaches the tiers below
// only through CentralCache.
#ifndef UMPOOL_SRC_POOL_THREAD_CACHE_H_
#define UMPOOL_SRC_POOL_THREAD_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "src/pool/central_cache.h"
#include "src/pool/size_class.h"
#include "umpool/types.h"

namespace umpool::internal {

// Owner-written counter readable from other threads.
struct OwnerCounter {
  std::atomic<std::int64_t> v{0};
  void Add(std::int64_t d) { v.store(v.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
  void Set(std::int64_t x) { v.store(x, std::memory_order_relaxed); }
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

  ThreadCache(CentralCache* central, std::uint64_t pool_id, int cached_classes);
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

  // A cached block of (stream, role, class), or nullptr: the hot path.
  void* Pop(Stream stream, Role role, int size_class) {
    Bin& bin = BinFor(stream, role, size_class);
    if (bin.count == 0) return nullptr;
    cached_bytes -= kSizeClasses[size_class].size;
    return bin.slots[--bin.count];
  }
  // Caches a freed block of (stream, role, class); overflow goes down to the
  // central bins: the older half of a full bin, everything of a bin that
  // takes the cache past `max_bytes`.
  void Push(Stream stream, Role role, int size_class, void* block, std::size_t max_bytes) {
    Bin& bin = BinFor(stream, role, size_class);
    if (bin.count == bin.cap) [[unlikely]] Grow(stream, role, size_class, bin);
    bin.slots[bin.count++] = block;
    cached_bytes += kSizeClasses[size_class].size;
    if (cached_bytes > max_bytes) [[unlikely]] Flush(stream, role, size_class, bin, 0);
  }
  // Makes sure the bin has slots (a refill writes into them).
  Bin& PrepareBin(Stream stream, Role role, int size_class);

  // Returns every cached block to the pool's central bins; with `unclaim`
  // the stream slots are given up too (after a stream was released, so that
  // the next use of any stream goes through StreamClaimed).
  void FlushAll(bool unclaim = false);
  // Returns the bin's blocks beyond `keep` to the central bin.
  void Flush(Stream stream, Role role, int size_class, Bin& bin, std::uint32_t keep);
  // Flushes bins of (role, class) held for streams other than `stream`, so the
  // central bin can fence them for `stream` (free on A, allocate on B).
  void FlushOtherStreams(Stream stream, Role role, int size_class);

  std::uint64_t pool_id() const { return pool_id_; }

  // Bin capacity for a class (blocks): 64 for small classes, fewer for large.
  static std::uint32_t CapacityFor(std::size_t block_bytes);

  // The pool flush epoch last seen. Written by the owner, read by the pool
  // (ReleaseStream: which caches have flushed since).
  std::atomic<std::uint64_t> epoch{0};
  std::size_t cached_bytes = 0;   // bytes held in bins
  // Allocated- and requested-bytes deltas not yet in the pool's totals
  // (owner-written, read by GetStats).
  OwnerCounter unpublished, unpublished_requested;
  // A hit costs nothing extra: hits are allocations - cache_misses.
  OwnerCounter allocations, frees, cache_misses;

 private:
  struct StreamSlot {
    Stream stream = nullptr;
    bool used = false;
    std::uint64_t last_use = 0;
    std::unique_ptr<Bin[]> bins;
  };
  StreamSlot* SlotFor(Stream stream);
  void FlushSlot(StreamSlot& slot);
  void Grow(Stream stream, Role role, int size_class, Bin& bin);

  CentralCache* const central_;
  const std::uint64_t pool_id_;
  const int cached_classes_;
  StreamSlot slots_[kStreamSlots];
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_THREAD_CACHE_H_
