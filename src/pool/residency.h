// src/pool/residency.h: which of a role's blocks the pool keeps on the GPU,
// under the role's HBM budget (RolePolicy::hbm_budget_bytes), and the
// per-role eviction and fetch counts (Pool::GetResidency).
//
// A budgeted role's large blocks (those above its slab_max_bytes) are tracked
// from allocation to free, in least-recently-fetched order: a block counts as
// resident from its allocation or its last fetch to the GPU until the pool
// evicts it. When an allocation or a fetch would take the role's resident
// bytes past its budget, the least recently allocated or fetched resident
// blocks (a paused request's KV, whose blocks the engine stopped fetching)
// are chosen as victims, which the pool evicts in one batched prefetch to the
// host before the new block is used. A victim counts as evicted from the
// moment it is chosen, so that no other thread chooses it again while its
// eviction runs (the pool's EvictionsInFlight makes fetches of it wait).
// The pool cannot see kernels touch a block: an evicted block a kernel reads
// faults back without being counted resident until the engine fetches it.
// Unbudgeted roles' blocks are tracked only while the pool holds them
// evicted (so host bytes are known for every role). Slab blocks are never
// tracked.
//
// Thread safety: every method takes the tracker's mutex (taken alone, after
// any pool lock is released).
#ifndef UMPOOL_SRC_POOL_RESIDENCY_H_
#define UMPOOL_SRC_POOL_RESIDENCY_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "src/base/mutex.h"
#include "src/pool/counters.h"
#include "umpool/options.h"
#include "umpool/pool.h"
#include "umpool/types.h"

namespace umpool::internal {

// Blocks to evict (whole blocks), and the streams the pool last fetched any
// of them on (their copies in may still be queued there).
struct Victims {
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  std::vector<Stream> fetched_on;  // each stream once
  bool empty() const { return ptrs.empty(); }
};

// The budgets of `options`' roles.
inline std::array<std::size_t, kNumRoles> BudgetsOf(const PoolOptions& options) {
  std::array<std::size_t, kNumRoles> b{};
  for (int r = 0; r < kNumRoles; ++r) b[r] = options.roles[r].hbm_budget_bytes;
  return b;
}

class Residency {
 public:
  // `host_total` follows the sum of every role's host bytes (the pool's
  // host_bytes statistic, which its cap leaves out).
  Residency(const std::array<std::size_t, kNumRoles>& budgets, AtomicValue* host_total);

  bool budgeted(Role role) const { return budgets_[static_cast<int>(role)] != 0; }
  bool any_budget() const { return any_budget_; }
  // Whether any block is tracked (a free need not look otherwise).
  bool tracking() const { return tracked_.load(std::memory_order_relaxed) != 0; }

  // A new live block of a budgeted role: resident, most recent. Victims to
  // bring the role back under budget are appended (never this block).
  void Allocated(Role role, std::uintptr_t p, std::size_t bytes, Victims* out);
  // Large blocks the pool fetched to the GPU (`where` kDevice) on `stream`
  // or evicted to the host (kHost), whole. Fetching appends victims for
  // every budgeted role that went over (never one of `blocks`); counts per
  // role either way.
  void Moved(const std::vector<BlockInfo>& blocks, Location where, Stream stream, Victims* out);
  // Victims the pool evicted (after Allocated/Moved chose them): counted.
  void Evicted(const Victims& victims);
  // Victims the pool could not evict: resident again (unless freed).
  void Unclaim(const Victims& victims);
  // Those of `victims` still tracked and evicted: not freed, nor fetched
  // back, since Allocated/Moved chose them (`fetched_on` kept whole).
  Victims StillEvicted(const Victims& victims) const;
  // Blocks an engine is about to evict (Evict, Prefetch or PrefetchBlocks
  // to the host): those of budgeted roles still resident count as evicted
  // from now on, so that no budget chooses them while they move; returned
  // (Unclaim puts them back if the eviction fails).
  Victims Claim(const std::vector<void*>& blocks);
  // Blocks whose fetch is under way, from before Moved counts them resident
  // until their copies in are queued: no budget picks them as victims in
  // between (its copy out, ordered after their fetch stream as it was then,
  // could run before a copy in queued later, and its drop would take the
  // pages that copy writes to). Calls nest per block.
  void BeginFetch(const std::vector<void*>& blocks);
  void EndFetch(const std::vector<void*>& blocks);
  // A live block freed: forgotten.
  void Freed(std::uintptr_t p);
  RoleResidency Get(Role role) const;
  // Whether the large block starting at `p` is tracked and evicted (chosen
  // as a victim, or moved to the host, and not fetched since).
  bool IsEvicted(std::uintptr_t p) const;

 private:
  struct Entry {
    Role role;
    std::size_t bytes;
    bool resident;
    std::list<std::uintptr_t>::iterator lru;  // valid while resident
    std::optional<Stream> fetched_on;  // the stream of its last fetch, if any
  };
  void MakeResident(std::uintptr_t p, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MakeEvicted(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the block at `p` (if tracked) from every count.
  void Forget(std::uintptr_t p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `delta` to `role`'s host bytes and to the pool's total.
  void AddHost(Role role, std::int64_t delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks victims of `role` until its resident bytes fit, skipping `keep`.
  void Trim(Role role, const std::vector<std::uintptr_t>& keep, Victims* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::array<std::size_t, kNumRoles> budgets_;
  const bool any_budget_;
  AtomicValue* const host_total_;
  std::atomic<std::size_t> tracked_{0};
  mutable Mutex mu_;
  absl::flat_hash_map<std::uintptr_t, Entry> blocks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::uintptr_t, int> fetching_ ABSL_GUARDED_BY(mu_);  // BeginFetch counts
  // Resident blocks of each budgeted role; front = most recently allocated or fetched.
  std::array<std::list<std::uintptr_t>, kNumRoles> lru_ ABSL_GUARDED_BY(mu_);
  std::array<RoleResidency, kNumRoles> stats_ ABSL_GUARDED_BY(mu_);
};

// Residency::BeginFetch .. EndFetch around a fetch, however it returns.
// Without a budget nothing is recorded (no budget could pick them).
class FetchUnderWay {
 public:
  FetchUnderWay(Residency& residency, absl::Span<const BlockInfo> blocks) : residency_(residency) {
    if (!residency_.any_budget()) return;
    for (const BlockInfo& b : blocks) blocks_.push_back(b.ptr);
    residency_.BeginFetch(blocks_);
  }
  ~FetchUnderWay() {
    if (!blocks_.empty()) residency_.EndFetch(blocks_);
  }
  FetchUnderWay(const FetchUnderWay&) = delete;
  FetchUnderWay& operator=(const FetchUnderWay&) = delete;

 private:
  Residency& residency_;
  std::vector<void*> blocks_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_RESIDENCY_H_
