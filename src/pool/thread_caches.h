// src/pool/thread_caches.h: the thread-cache tier of one pool.
//
// Finds the calling thread's ThreadCache through a constant-initialised
// thread_local memo (the hot path's only TLS access), asks every thread to
// flush without locks (a flush epoch each thread compares at its next call),
// empties the caches of threads outside the pool (DrainIdle: a thread that
// has gone quiet keeps no memory from the others), and keeps the hot path's
// statistics: per-thread owner-written counters and byte deltas published to
// the pool-wide counters once they pass PoolOptions::stats_publish_bytes
// (docs/design.md, "Threads and locking" and "A thread's cache outlives its
// work").
//
// Thread safety: every method may be called from any thread; Current(),
// Enter(), ForCounts() and the Count functions act on the calling thread's
// own cache.
#ifndef UMPOOL_SRC_POOL_THREAD_CACHES_H_
#define UMPOOL_SRC_POOL_THREAD_CACHES_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "src/base/mutex.h"
#include "src/pool/central_cache.h"
#include "src/pool/counters.h"
#include "src/pool/thread_cache.h"
#include "src/pool/thread_registry.h"
#include "umpool/stats.h"

namespace umpool::internal {

class ThreadCaches final : public CacheOwner {
 public:
  // `central` takes the blocks caches hand back; classes [0, cached_classes)
  // are cached; counts go to `counters`; with `drain`, owners keep the drain
  // handshake and DrainIdle works (PoolOptions::drain_idle_caches).
  ThreadCaches(CentralCache* central, PoolCounters& counters, int cached_classes,
               std::size_t publish_bytes, bool drain);
  // Unregisters: after it returns no thread-exit flush touches the pool.
  ~ThreadCaches();
  ThreadCaches(const ThreadCaches&) = delete;
  ThreadCaches& operator=(const ThreadCaches&) = delete;

  // The calling thread's cache, created on first use and entered until the
  // CacheUse dies; if another thread asked for flushes since its last call,
  // it flushes first.
  CacheUse Current() {
    bool entered;
    ThreadCache* tc = Enter(&entered);
    return CacheUse(tc, entered);
  }
  // The hot paths' Current: the caller calls Done(tc, *entered) after its
  // last touch of the bins. (A CacheUse there, a local with a destructor,
  // made the host's cached pair 11-14% slower even with drains off.)
  ThreadCache* Enter(bool* entered) {
    ThreadCache* tc = ForCounts();
    *entered = EnterOutermost(tc);
    const std::uint64_t epoch = epoch_.load(std::memory_order_relaxed);
    if (ABSL_PREDICT_FALSE(tc->epoch.load(std::memory_order_relaxed) != epoch)) {
      CatchUp(tc, epoch);
    }
    return tc;
  }
  static void Done(ThreadCache* tc, bool entered) {
    if (ABSL_PREDICT_FALSE(entered)) tc->Leave();
  }
  // The calling thread's cache for its counters only (created on first use;
  // not entered: its bins are not to be touched through this pointer).
  ThreadCache* ForCounts() {
    return tls_memo.pool_id == id_ ? tls_memo.cache : CurrentSlow();
  }
  // The calling thread's cache for this pool, entered, or an empty CacheUse
  // (never creates one).
  CacheUse CallerCacheIfAny() const;
  // Empties into the central bins every other thread's cache whose owner is
  // outside the pool now (the caller's own is left alone). Returns whether
  // any block moved. A system call (HeavyFence) when some
  // cache holds blocks; nothing in a pool that does not drain or where the
  // heavy fence is unavailable. Takes mu_ alone; the blocks go to the
  // central bins after it is released. If the central bins' Return throws,
  // the other bins still go back and the first exception is rethrown.
  bool DrainIdle();
  // Every thread flushes its cache (and gives up its stream slots) at its
  // next call. Returns the new epoch.
  std::uint64_t AskAllToFlush();
  // The smallest epoch a live cache has caught up with (the current epoch
  // when there is none).
  std::uint64_t OldestEpoch() const;

  // Statistics of one allocation / free (bytes: the block's size; requested:
  // what was asked for). `tc` null: count straight into the pool's counters.
  void CountAllocation(ThreadCache* tc, std::size_t bytes, std::size_t requested, bool hit) {
    if (tc == nullptr) return CountShared(1, hit, static_cast<std::int64_t>(bytes),
                                          static_cast<std::int64_t>(requested));
    tc->allocations.Add(1);
    if (!hit) tc->cache_misses.Add(1);
    Note(tc, static_cast<std::int64_t>(bytes), static_cast<std::int64_t>(requested));
  }
  void CountFree(ThreadCache* tc, std::size_t bytes, std::size_t requested) {
    if (tc == nullptr) return CountShared(-1, false, -static_cast<std::int64_t>(bytes),
                                          -static_cast<std::int64_t>(requested));
    tc->frees.Add(1);
    Note(tc, -static_cast<std::int64_t>(bytes), -static_cast<std::int64_t>(requested));
  }
  // Adds every live cache's counts and unpublished deltas to `s`.
  void AddTo(Stats* s) const;

  void RetireCache(ThreadCache* cache) override;
  std::uint64_t id() const { return id_; }

 private:
  ThreadCache* CurrentSlow();
  // Enters `tc` (the caller's) if the pool drains and the caller is not
  // inside it already; whether it did (the use must then leave).
  bool EnterOutermost(ThreadCache* tc) const {
    if (ABSL_PREDICT_TRUE(!drain_) || tc->Inside()) return false;
    tc->Enter();
    return true;
  }
  void CatchUp(ThreadCache* tc, std::uint64_t epoch);
  void Note(ThreadCache* tc, std::int64_t bytes, std::int64_t requested) {
    const std::int64_t b = tc->unpublished.Get() + bytes;
    const std::int64_t r = tc->unpublished_requested.Get() + requested;
    if (ABSL_PREDICT_FALSE(b >= publish_bytes_ || -b >= publish_bytes_)) {
      Publish(b, r);
      tc->unpublished.Set(0);
      tc->unpublished_requested.Set(0);
      return;
    }
    tc->unpublished.Set(b);
    tc->unpublished_requested.Set(r);
  }
  void CountShared(int op, bool hit, std::int64_t bytes, std::int64_t requested);
  void Publish(std::int64_t bytes, std::int64_t requested);

  CentralCache* const central_;
  PoolCounters& counters_;
  const int cached_classes_;
  const std::int64_t publish_bytes_;
  const bool drain_;
  const std::uint64_t id_;
  std::atomic<std::uint64_t> epoch_{0};
  // Taken by GetStats and by threads starting or exiting: kept off the line
  // of epoch_ and id_, which every call reads.
  alignas(64) mutable Mutex mu_;
  std::vector<ThreadCache*> caches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_THREAD_CACHES_H_
