#include "src/pool/thread_caches.h"

#include <algorithm>
#include <exception>
#include <memory>

#include "src/base/heavy_fence.h"

namespace umpool::internal {

ThreadCaches::ThreadCaches(CentralCache* central, PoolCounters& counters, int cached_classes,
                           std::size_t publish_bytes, bool drain)
    : central_(central),
      counters_(counters),
      cached_classes_(cached_classes),
      publish_bytes_(static_cast<std::int64_t>(publish_bytes)),
      drain_(drain),
      id_(RegisterPool(this)) {}

ThreadCaches::~ThreadCaches() { UnregisterPool(id_); }

ThreadCache* ThreadCaches::CurrentSlow() {
  if (ThreadCache* c = FindOwnedCache(id_)) {
    tls_memo = TlsMemo{id_, c};
    return c;
  }
  auto cache = std::make_unique<ThreadCache>(central_, id_, cached_classes_);
  cache->epoch.store(epoch_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    caches_.push_back(cache.get());
  }
  return AdoptCache(std::move(cache));
}

CacheUse ThreadCaches::CallerCacheIfAny() const {
  ThreadCache* tc = FindOwnedCache(id_);
  if (tc == nullptr) return CacheUse();
  return CacheUse(tc, EnterOutermost(tc));
}

bool ThreadCaches::DrainIdle() {
  if (!drain_ || !HeavyFenceReady()) return false;
  const ThreadCache* self = FindOwnedCache(id_);
  std::vector<ThreadCache*> picked;
  std::vector<ThreadCache::TakenBin> taken;
  {
    MutexLock lock(&mu_);
    for (ThreadCache* tc : caches_) {
      if (tc != self && tc->cached_bytes.Get() > 0 &&
          !tc->in_use.load(std::memory_order_relaxed)) {
        picked.push_back(tc);
      }
    }
    if (picked.empty()) return false;
    std::size_t room = 0;
    for (const ThreadCache* tc : picked) room += static_cast<std::size_t>(tc->bins());
    taken.reserve(room);
    // Claim, fence, look: an owner that entered before the fence is seen
    // inside (and kept); one that enters after it sees the claim and waits.
    for (ThreadCache* tc : picked) tc->claimed.store(true, std::memory_order_relaxed);
    const bool fenced = HeavyFence();
    std::uint64_t drained = 0;
    for (ThreadCache* tc : picked) {
      if (fenced && !tc->in_use.load(std::memory_order_acquire)) {
        tc->TakeAll(&taken);
        ++drained;
      }
      tc->claimed.store(false, std::memory_order_release);
    }
    counters_.Bump(counters_.caches_drained, drained);
  }
  // A Return that throws (its central bin's lists could not grow) loses at
  // most its own bin, whose blocks it may have filed already: every other bin
  // still goes back, then the first exception goes on.
  std::exception_ptr failed;
  for (const ThreadCache::TakenBin& b : taken) {
    const std::unique_ptr<void*[]> slots(b.slots);
    try {
      central_->Return(b.stream, b.role, b.size_class, b.slots, static_cast<int>(b.count));
    } catch (...) {
      if (failed == nullptr) failed = std::current_exception();
    }
  }
  if (failed != nullptr) std::rethrow_exception(failed);
  return !taken.empty();
}

void ThreadCaches::CatchUp(ThreadCache* tc, std::uint64_t epoch) {
  tc->FlushAll(/*unclaim=*/true);
  tc->epoch.store(epoch, std::memory_order_relaxed);
}

std::uint64_t ThreadCaches::AskAllToFlush() {
  return epoch_.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::uint64_t ThreadCaches::OldestEpoch() const {
  std::uint64_t oldest = epoch_.load(std::memory_order_relaxed);
  MutexLock lock(&mu_);
  for (const ThreadCache* tc : caches_) {
    oldest = std::min(oldest, tc->epoch.load(std::memory_order_relaxed));
  }
  return oldest;
}

namespace {

// Read from another thread the two counts may be one allocation apart.
std::uint64_t Hits(const ThreadCache& tc) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(tc.allocations.Get() - tc.cache_misses.Get(), 0));
}

}  // namespace

void ThreadCaches::CountShared(int op, bool hit, std::int64_t bytes, std::int64_t requested) {
  counters_.Bump(op > 0 ? counters_.allocations : counters_.frees);
  if (hit) counters_.Bump(counters_.cache_hits);
  Publish(bytes, requested);
}

void ThreadCaches::Publish(std::int64_t bytes, std::int64_t requested) {
  counters_.allocated_bytes.Add(bytes);
  counters_.requested_bytes.Add(requested);
}

void ThreadCaches::AddTo(Stats* s) const {
  std::int64_t unpublished = 0, unpublished_requested = 0;
  MutexLock lock(&mu_);
  for (const ThreadCache* tc : caches_) {
    unpublished += tc->unpublished.Get();
    unpublished_requested += tc->unpublished_requested.Get();
    s->allocations += static_cast<std::uint64_t>(tc->allocations.Get());
    s->frees += static_cast<std::uint64_t>(tc->frees.Get());
    s->cache_hits += Hits(*tc);
  }
  s->allocated_bytes.current += unpublished;
  s->requested_bytes.current += unpublished_requested;
}

void ThreadCaches::RetireCache(ThreadCache* cache) {
  {
    MutexLock lock(&mu_);  // out of drainers' reach before its last flush
    std::erase(caches_, cache);
  }
  cache->FlushAll();
  counters_.Bump(counters_.allocations, static_cast<std::uint64_t>(cache->allocations.Get()));
  counters_.Bump(counters_.frees, static_cast<std::uint64_t>(cache->frees.Get()));
  counters_.Bump(counters_.cache_hits, Hits(*cache));
  if (cache->unpublished.Get() != 0 || cache->unpublished_requested.Get() != 0) {
    Publish(cache->unpublished.Get(), cache->unpublished_requested.Get());
  }
}

}  // namespace umpool::internal
