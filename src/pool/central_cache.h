// src/pool/central_cache.h: how a thread cache talks to the tiers below it.
//
// The only calls a ThreadCache makes downwards: handing blocks back to the
// central bins, and saying that it starts using a stream. The pool forwards
// them to the slab tier (SlabAllocator) and the released-streams registry;
// tests replace it with a fake (tcmalloc's forwarder pattern).
#ifndef UMPOOL_SRC_POOL_CENTRAL_CACHE_H_
#define UMPOOL_SRC_POOL_CENTRAL_CACHE_H_

#include "umpool/types.h"

namespace umpool::internal {

class CentralCache {
 public:
  // Takes back n blocks of (role, size class) last used on `stream`.
  virtual void Return(Stream stream, Role role, int size_class, void* const* blocks, int n) = 0;
  // The thread claims a cache slot for `stream`: the handle is in use
  // (again, if it had been released).
  virtual void StreamClaimed(Stream stream) = 0;

 protected:
  ~CentralCache() = default;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_CENTRAL_CACHE_H_
