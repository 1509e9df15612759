// src/pool/evictions_in_flight.h: the blocks a budget's eviction is moving
// out right now, so that a fetch of one of them waits for it.
//
// A budget's victims are chosen under the residency tracker's mutex, then
// evicted without it (copies out, a host wait for them, pages dropped). A
// fetch of the same block from another thread in between would find nothing
// to bring back yet (the block is recorded as staged out only once its pages
// are dropped) and return while the eviction still drops the pages under it:
// the engine then reads a dropped page (zeros on managed memory, a crash on
// the vmm backend). So an eviction claims its victims here first and a fetch
// waits until none of its blocks is claimed, then brings back what went out.
// A free waits too: freed at once, the block could be handed out again while
// the eviction still copied it out and then dropped its pages under the new
// owner (FreeRacingTheBudgetsEviction crashed so on the strict emulation).
//
// Thread safety: every method may be called from any thread; WaitFor blocks
// (without any pool lock held by its caller).
#ifndef UMPOOL_SRC_POOL_EVICTIONS_IN_FLIGHT_H_
#define UMPOOL_SRC_POOL_EVICTIONS_IN_FLIGHT_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/types/span.h"

namespace umpool::internal {

class EvictionsInFlight {
 public:
  // `blocks` are being evicted (from now until End).
  void Begin(const std::vector<void*>& blocks);
  // Their eviction is over (done or failed): waiting fetches go on.
  void End(const std::vector<void*>& blocks);
  // Returns once none of `blocks` is being evicted. One atomic load when no
  // eviction is under way.
  // (A vector converts; one block: {&ptr, 1}.)
  void WaitFor(absl::Span<void* const> blocks) const;

 private:
  bool AnyOf(absl::Span<void* const> blocks) const;  // with mu_ held

  mutable std::mutex mu_;
  mutable std::condition_variable done_;
  absl::flat_hash_set<std::uintptr_t> blocks_;  // guarded by mu_
  std::atomic<std::size_t> count_{0};
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_EVICTIONS_IN_FLIGHT_H_
