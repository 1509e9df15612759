// src/capi/graph_pools.h: CUDA graph private pools, PyTorch's semantics.
//
// A private pool, named by a (hi, lo) id per device, is a Pool of its own,
// created on first use and never used by anything else, so the addresses a
// captured graph uses stay valid for its replays. Between a begin and its
// end, allocations whose stream the begin's filter picks are routed to it,
// and every umpool pool is told BeginCapture (in the default global capture
// mode an event query from any thread invalidates a capture). A pool counts
// its uses (begins, increfs) like PyTorch's; once ReleasePool has given them
// all back, it returns its memory as soon as its blocks are all freed.
//
// Private pools serve every request as a large block (slab_max_bytes 0,
// no thread cache, no discard) and keep their segments when memory runs
// short (release_on_oom false), so a checkpoint of their live blocks can be
// restored at the same addresses (Pool::RestoreLiveBlocks; CUDA graph trees).
//
// Thread safety: every function may be called from any thread; the routing
// check is one relaxed atomic load while no begin is active.
#ifndef UMPOOL_SRC_CAPI_GRAPH_POOLS_H_
#define UMPOOL_SRC_CAPI_GRAPH_POOLS_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/capi/devices.h"
#include "umpool/pool.h"

namespace umpool::capi {

struct PoolId {
  std::uint64_t hi = 0, lo = 0;
};

absl::Status BeginToPool(int device, PoolId id, std::function<bool(Stream)> filter);
absl::Status EndToPool(int device, PoolId id);
absl::Status ReleasePool(int device, PoolId id);
// The private pool, created if missing; `incref` counts a use of it
// (PyTorch's createOrIncrefPool), which ReleasePool gives back.
absl::StatusOr<Pool*> GraphPool(int device, PoolId id, bool incref);
// Uses not yet released (begins and increfs), 0 for an unknown pool.
int UseCount(int device, PoolId id);
// true while a begin is active on `device` (cheap).
bool Routing(int device);
// The private pool an allocation on (device, stream) goes to, or nullptr;
// *role becomes the pool's role where SetPoolRole gave it one.
Pool* RoutedPool(int device, Stream stream, int* role);
// Gives private pool `id` (created if missing) a role that every allocation
// into it takes, whatever role the caller asked for; -1 clears it.
absl::Status SetPoolRole(int device, PoolId id, int role);
// The role SetPoolRole gave `id`, or -1.
int PoolRole(int device, PoolId id);
// The private pool holding `ptr`, or nullptr.
Pool* GraphPoolHolding(const void* ptr);
// After a free into a released private pool: return its memory once empty.
void MaybeReturnReleased(Pool* pool);
int GraphPoolCount(int device);
// Every private pool of `device` with its id.
std::vector<std::pair<PoolId, Pool*>> GraphPoolsOf(int device);
// The private pool `id` of `device` if it exists (never created), else nullptr.
Pool* FindGraphPool(int device, PoolId id);
// The device's pool (if it exists) and then its private pools: what a
// device-wide call (release a stream, reset peaks, sleep, wake) acts on.
std::vector<Pool*> PoolsOf(int device);

// How a device-wide call meets an error in one of its pools.
enum class OnError {
  kContinue,  // the other pools still run it; the first error is returned
  kStop,      // the rest are left as they are (what ran stays done)
};
// Checks `device`, then runs `f(Pool*) -> absl::Status` on PoolsOf(device).
template <class F>
absl::Status ForPoolsOf(int device, OnError on_error, F&& f) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  absl::Status status;
  for (Pool* p : PoolsOf(device)) {
    status.Update(f(p));
    if (!status.ok() && on_error == OnError::kStop) break;
  }
  return status;
}

}  // namespace umpool::capi

#endif  // UMPOOL_SRC_CAPI_GRAPH_POOLS_H_
