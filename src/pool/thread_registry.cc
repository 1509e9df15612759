#include "src/pool/thread_registry.h"

#include <atomic>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "src/base/mutex.h"

namespace umpool::internal {

thread_local constinit TlsMemo tls_memo UMPOOL_TLS_INITIAL_EXEC;

namespace {

struct Registry {
  Mutex mu;
  absl::flat_hash_map<std::uint64_t, CacheOwner*> live ABSL_GUARDED_BY(mu);
};

// Never destroyed: thread-exit hooks may run after static destructors.
Registry& GetRegistry() {
  static Registry* r = new Registry;
  return *r;
}

std::atomic<std::uint64_t> g_next_id{1};

bool IsLive(std::uint64_t id) {
  Registry& r = GetRegistry();
  MutexLock lock(&r.mu);
  return r.live.contains(id);
}

struct OwnedCaches {
  std::vector<std::unique_ptr<ThreadCache>> caches;
  ~OwnedCaches() {
    tls_memo = TlsMemo{};
    Registry& r = GetRegistry();
    for (auto& c : caches) {
      MutexLock lock(&r.mu);
      auto it = r.live.find(c->pool_id());
      if (it != r.live.end()) it->second->RetireCache(c.get());
    }
    caches.clear();
  }
};

thread_local OwnedCaches tls_owned;

}  // namespace

std::uint64_t RegisterPool(CacheOwner* pool) {
  const std::uint64_t id = g_next_id.fetch_add(1, std::memory_order_relaxed);
  Registry& r = GetRegistry();
  MutexLock lock(&r.mu);
  r.live[id] = pool;
  return id;
}

void UnregisterPool(std::uint64_t id) {
  Registry& r = GetRegistry();
  MutexLock lock(&r.mu);
  r.live.erase(id);
}

ThreadCache* FindOwnedCache(std::uint64_t pool_id) {
  for (auto& c : tls_owned.caches) {
    if (c->pool_id() == pool_id) return c.get();
  }
  return nullptr;
}

ThreadCache* AdoptCache(std::unique_ptr<ThreadCache> cache) {
  // Drop caches of pools that have died since (their blocks died with them).
  std::erase_if(tls_owned.caches, [](const std::unique_ptr<ThreadCache>& c) {
    return !IsLive(c->pool_id());
  });
  ThreadCache* raw = cache.get();
  tls_owned.caches.push_back(std::move(cache));
  tls_memo = TlsMemo{raw->pool_id(), raw};
  return raw;
}

}  // namespace umpool::internal
