// src/base/heavy_fence.h: an asymmetric fence pair (Dekker's handshake with
// the cost on one side).
//
// A thread that runs often (a thread cache's owner) and one that runs rarely
// (a thread draining idle caches) each store a flag and then load the
// other's. Store-then-load needs a full fence on both sides, which would put
// a locked instruction on every allocation. Here the frequent side pays only
// a compiler fence (LightFence) and the rare side a heavy one (HeavyFence):
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which makes every running
// thread of the process execute a full memory barrier before it returns. So
// for any owner: either its flag store is visible to the drainer after
// HeavyFence, or the owner's load after its LightFence sees the drainer's
// flag. (folly's asymmetric barriers and hazard pointers rest on the same
// guarantee.)
//
// Linux 4.14 or later; HeavyFenceReady() registers the process once and says
// whether it worked (a seccomp filter can refuse the call). Where it did not,
// callers must not rely on the pair (the thread caches then never drain
// another thread's cache).
//
// Thread safety: both functions may be called from any thread at any time.
#ifndef UMPOOL_SRC_BASE_HEAVY_FENCE_H_
#define UMPOOL_SRC_BASE_HEAVY_FENCE_H_

#include <atomic>

namespace umpool::internal {

// The frequent side: orders the caller's own accesses for the compiler only.
inline void LightFence() { std::atomic_signal_fence(std::memory_order_seq_cst); }

// True once the process is registered for HeavyFence (the first call
// registers; later calls return the cached answer).
bool HeavyFenceReady();

// The rare side: a full barrier on every running thread of the process.
// Returns false (and fences nothing) if HeavyFenceReady() is false. A few
// microseconds: a system call and an interrupt per CPU running the process.
bool HeavyFence();

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BASE_HEAVY_FENCE_H_
