// src/pool/thread_registry.h: which pools are alive, and which thread caches
// this thread owns.
//
// A thread's caches are destroyed at thread exit; a cache whose pool is still
// alive is first flushed into it (CacheOwner::RetireCache), under the registry
// mutex so that a pool cannot die mid-flush. Pool ids are never reused, so a
// stale cache of a dead pool is recognised and dropped.
#ifndef UMPOOL_SRC_POOL_THREAD_REGISTRY_H_
#define UMPOOL_SRC_POOL_THREAD_REGISTRY_H_

#include <cstdint>
#include <memory>

#include "src/pool/thread_cache.h"

namespace umpool::internal {

// A pool's thread-cache tier, as the registry sees it.
class CacheOwner {
 public:
  // Thread exit: flush `cache` into the pool and fold its counters in.
  virtual void RetireCache(ThreadCache* cache) = 0;

 protected:
  ~CacheOwner() = default;
};

// One-entry memo of the last (pool, cache) this thread used: the hot path's
// only TLS access. Trivial type, constant-initialised: no TLS guard.
// Initial-exec, as tcmalloc's and jemalloc's thread caches: in the shared
// library the default (global-dynamic) model made every allocation and free
// call __tls_get_addr. It takes 16 bytes of the static TLS block, which glibc
// keeps spare for libraries loaded later (dlopen, as Python and PyTorch do).
#if defined(__GNUC__) || defined(__clang__)
#define UMPOOL_TLS_INITIAL_EXEC __attribute__((tls_model("initial-exec")))
#else
#define UMPOOL_TLS_INITIAL_EXEC
#endif
struct TlsMemo {
  std::uint64_t pool_id = 0;
  ThreadCache* cache = nullptr;
};
extern thread_local constinit TlsMemo tls_memo UMPOOL_TLS_INITIAL_EXEC;

// Registers a live pool and returns its id (never 0, never reused).
std::uint64_t RegisterPool(CacheOwner* pool);
// Unregisters; after it returns no thread-exit flush will touch the pool.
void UnregisterPool(std::uint64_t id);

// This thread's cache for `pool_id`, or nullptr.
ThreadCache* FindOwnedCache(std::uint64_t pool_id);
// Hands `cache` to this thread (destroyed at thread exit) and memoises it.
ThreadCache* AdoptCache(std::unique_ptr<ThreadCache> cache);

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_THREAD_REGISTRY_H_
