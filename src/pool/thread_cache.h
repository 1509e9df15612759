// src/pool/thread_cache.h: a thread's private stash of free blocks.
//
// One ThreadCache per (thread, pool). It holds, per stream the thread uses
// (up to kStreamSlots, least recently used slot recycled), one bin per
// (role, thread-cached class): a small stack of blocks freed on that stream.
// Same-stream reuse from here is immediate and touches no shared cache line
// except the block's state byte. Overflow goes to the central bin in batches.
//
// Only the owning thread touches bins, except in pools that drain
// (PoolOptions::drain_idle_caches): there the owner touches them between
// Enter and Leave, and one other thread may take them while the owner is
// outside (TakeAll, a drain: ThreadCaches::DrainIdle), through a handshake on
// `in_use` and `claimed` whose cost falls on the drainer
// (src/base/heavy_fence.h). Counters are atomics written only by the owner
// (relaxed load + store, no read-modify-write) and read by GetStats. Other
// threads may also ask for a flush by bumping the pool's flush epoch; the
// owner notices on its next call (ThreadCaches::Enter). It reaches the tiers
// below only through CentralCache.
#ifndef UMPOOL_SRC_POOL_THREAD_CACHE_H_
#define UMPOOL_SRC_POOL_THREAD_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/optimization.h"
#include "src/base/heavy_fence.h"
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
    cached_bytes.Add(-static_cast<std::int64_t>(kSizeClasses[size_class].size));
    return bin.slots[--bin.count];
  }
  // Caches a freed block of (stream, role, class); overflow goes down to the
  // central bins: the older half of a full bin, everything of a bin that
  // takes the cache past `max_bytes`.
  void Push(Stream stream, Role role, int size_class, void* block, std::size_t max_bytes) {
    Bin& bin = BinFor(stream, role, size_class);
    if (bin.count == bin.cap) [[unlikely]] Grow(stream, role, size_class, bin);
    bin.slots[bin.count++] = block;
    cached_bytes.Add(static_cast<std::int64_t>(kSizeClasses[size_class].size));
    if (static_cast<std::size_t>(cached_bytes.Get()) > max_bytes) [[unlikely]] {
      Flush(stream, role, size_class, bin, 0);
    }
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

  // The owner's side of the drain handshake (used only by pools that drain,
  // PoolOptions::drain_idle_caches): Enter before touching bins, Leave
  // after (CacheUse does both). Not nested: a caller already inside
  // (Inside()) neither enters nor leaves. Enter waits while a drainer holds
  // the cache (a few microseconds: the drainer takes no lock meanwhile). A
  // call that throws between the two (bad_alloc growing a bin) leaves the
  // flag set: the cache is then never drained, which is safe.
  void Enter() {
    in_use.store(true, std::memory_order_relaxed);
    LightFence();
    if (ABSL_PREDICT_FALSE(claimed.load(std::memory_order_acquire))) WaitWhileClaimed();
  }
  void Leave() { in_use.store(false, std::memory_order_release); }
  // Owner only: whether the calling thread is inside its cache already.
  bool Inside() const { return in_use.load(std::memory_order_relaxed); }

  // A bin a drainer took whole: its blocks and the array holding them (the
  // drainer's to return and delete[]).
  struct TakenBin {
    Stream stream;
    Role role;
    int size_class;
    void** slots;
    std::uint32_t count;
  };
  // The drainer's side, with `claimed` set and the owner seen outside: moves
  // every non-empty bin into *out (which has room: bins() entries). Takes
  // no lock and allocates nothing.
  void TakeAll(std::vector<TakenBin>* out);
  // How many bins the cache has (the most TakeAll can add).
  int bins() const { return kStreamSlots * kNumRoles * cached_classes_; }

  // Bin capacity for a class (blocks): 64 for small classes, fewer for large.
  static std::uint32_t CapacityFor(std::size_t block_bytes);

  // The pool flush epoch last seen. Written by the owner, read by the pool
  // (ReleaseStream: which caches have flushed since).
  std::atomic<std::uint64_t> epoch{0};
  // Bytes held in bins: written by the owner (and a drainer holding the
  // cache); read by drainers choosing caches.
  OwnerCounter cached_bytes;
  // The drain handshake: the owner's flag (inside the cache), and the flag
  // a drainer raises before it looks at the owner's.
  std::atomic<bool> in_use{false};
  std::atomic<bool> claimed{false};
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
  void WaitWhileClaimed();

  CentralCache* const central_;
  const std::uint64_t pool_id_;
  const int cached_classes_;
  StreamSlot slots_[kStreamSlots];
};

// The calling thread's use of its cache. The outermost use of a thread in
// a pool that drains has entered the cache (Enter) and leaves it when
// destroyed; a nested use (a pressure callback freeing blocks during an
// allocation's refill), one in a pool that does not drain and an empty one
// (no cache) leave nothing.
class CacheUse {
 public:
  CacheUse() = default;
  CacheUse(ThreadCache* tc, bool entered) : tc_(tc), entered_(entered) {}
  CacheUse(CacheUse&& other) noexcept
      : tc_(std::exchange(other.tc_, nullptr)), entered_(std::exchange(other.entered_, false)) {}
  CacheUse& operator=(CacheUse&&) = delete;
  ~CacheUse() {
    if (ABSL_PREDICT_FALSE(entered_)) tc_->Leave();
  }
  ThreadCache* get() const { return tc_; }
  ThreadCache* operator->() const { return tc_; }
  explicit operator bool() const { return tc_ != nullptr; }

 private:
  ThreadCache* tc_ = nullptr;
  bool entered_ = false;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_THREAD_CACHE_H_
