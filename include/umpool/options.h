// umpool/options.h: every knob of a Pool, in one struct, with its default.
#ifndef UMPOOL_OPTIONS_H_
#define UMPOOL_OPTIONS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "umpool/backend.h"
#include "umpool/types.h"

namespace umpool {

// When a new slab or large-block segment is prefetched to the pool's GPU.
enum class PrefetchMode : std::uint8_t {
  kBelowThreshold = 0,  // the seed's rule: prefetch when the range is < threshold
  kAlways = 1,
  kNever = 2,
};

// Placement policy of one role. Applied once per slab / segment, never per
// allocation (invariant 3). Ignored by the device and host backends, except
// that the pool still counts the advice/prefetch operations it asks for.
struct RolePolicy {
  // PreferredLocation advice: the pool's GPU (the seed's choice), or host
  // memory for data the GPU reads once per step (then AccessedBy = GPU gives
  // it a direct mapping instead of migrations).
  Location preferred = Location::kDevice;
  AccessedBy accessed_by = AccessedBy::kCpu;
  PrefetchMode prefetch = PrefetchMode::kBelowThreshold;
  // For kBelowThreshold: ranges strictly smaller than this are prefetched.
  // Default 2 GiB, the seed's threshold ("weights are small and must be in
  // HBM; KV-cache blocks are large and may page-fault").
  std::size_t prefetch_threshold_bytes = std::size_t{2} << 30;
  // cudaMemAdviseSetReadMostly on the role's slabs: read-only copies may be
  // made on each processor that reads them (for weights that never change).
  bool read_mostly = false;
  // Discard a freed block's whole 2 MiB pages (cudaMemDiscardBatchAsync on the
  // freeing stream, before the block can be reused), so the driver never
  // migrates dead contents, e.g. KV blocks evicted to host memory. Blocks
  // smaller than 2 MiB have no whole page to discard, and blocks named by
  // RecordStream are not discarded (other streams may still read them).
  // Managed backend only; where the driver refuses, umpool says so once and
  // stops discarding. Only blocks the pool evicted (Evict, Prefetch or
  // PrefetchBlocks to the host) are discarded: a block freed resident gains
  // nothing. A GPU-preferred role's discarded pages are populated on the GPU
  // in the same batched call (cudaMemDiscardAndPrefetchBatchAsync), so reuse
  // neither copies nor faults; with allow_oversubscription, or a host-preferred
  // role, they are dropped and the next touch faults them in.
  bool discard_on_free = false;
  // Serve this role from plain device memory (cudaMalloc) instead of managed
  // memory: no page faults and no migration, but no CPU access and no
  // Prefetch/Evict/Fetch (they return FailedPrecondition). Meant for
  // activations, which live and die on the GPU. Advice and prefetch are not
  // applied; read_mostly and discard_on_free cannot be combined with it.
  // Shares the pool's cap. On a device pool every role is device memory
  // already; on a host pool (tests) a second host backend stands in for it.
  bool device_memory = false;
  // Requests of at most this many bytes are rounded to a size class and
  // served from slabs (through thread caches: tens of ns); larger ones are
  // rounded to 512 B and served best fit from the role's own large space
  // (a lock and an ordered set: about a microsecond). 0 to 32 MiB. Defaults:
  // 32 MiB for activations (short-lived, many sizes: cheap and reused at
  // once), 64 KiB for kv (long-lived buffers and blocks packed tightly, apart
  // from the slabs short-lived tensors churn through), 1 MiB for default and
  // weights. On the generated LLM traces (bench/results, docs/design.md)
  // these halved the memory held beyond what is live.
  std::size_t slab_max_bytes = std::size_t{1} << 20;
  // Slabs of size classes above this many bytes (up to slab_max_bytes) are
  // carved from the role's large space (2 MiB-aligned ranges of it) rather
  // than from the heap's slab space: their blocks keep the thread caches'
  // speed, and they and the role's large blocks share one space's pages, so
  // neither holds its own peak. Defaults: 256 KiB for default (a PyTorch
  // program's tensors are all of that role: long-lived 256 KiB-1 MiB buffers,
  // such as a per-layer KV cache, next to its large activations), 32 MiB
  // (none) for the other roles. docs/arena-cycles.md, "One role: slabs in the
  // large space".
  std::size_t slab_space_max_bytes = std::size_t{32} << 20;

  // GPU budget of the role's large blocks (0 = none): when an allocation or
  // a fetch (Fetch, Prefetch/PrefetchBlocks to the GPU) would keep more of
  // them on the GPU, the pool evicts the least recently allocated or fetched
  // ones (a paused request's KV first) to host memory, whole, in one batched
  // prefetch ordered on the caller's stream, instead of letting pages fault
  // one at a time. The caller cannot know which blocks the budget picks, so
  // the eviction is also ordered after the work queued so far on the stream
  // each victim was allocated for (an engine fetching on a side stream while
  // decode steps write the KV on its compute stream); work on other streams
  // (RecordStream's) is the caller's to order. Managed backend; counted on
  // the others. Not with device_memory.
  std::size_t hbm_budget_bytes = 0;
  // Free pages the role may hold on the GPU past its hbm_budget_bytes, as a
  // fraction of the budget, before the pool gives them back (down to the
  // budget) at the role's next allocation or fetch: spares a drop per
  // allocation where requests retire and arrive every turn. Its own setting,
  // apart from PoolOptions::give_back_slack (the pool-wide room over peak
  // live bytes), so lowering that one leaves a budget's behaviour as it was
  // measured (docs/residency.md). 0 to 1; no effect without a budget.
  double hbm_budget_slack = 0.03;

  // How the pool evicts the role's large blocks (budget victims, Evict,
  // Prefetch/PrefetchBlocks to the host): false, by the driver's migration
  // (cudaMemPrefetchAsync to the host: contents follow the pages, a kernel
  // that touches an evicted block faults it back; 10-14 GB/s out on the
  // H200); true, by staging: the block is copied into pinned host memory
  // (HostCopies, about 52 GB/s), the host waits for the copy, and its whole
  // pages are discarded; a fetch refills the pages on the GPU and copies the
  // block back (about 47 GB/s). With staging a block must be fetched before
  // kernels use it again (Fetch, Prefetch/PrefetchBlocks to the GPU): its
  // pages hold no contents until then. Needs discard_on_free (a freed
  // evicted block's pages are refilled before reuse); managed memory only.
  bool evict_by_staging = false;

  // Where the role's large space finds room: best fit, but the free pages
  // ending a segment that can still grow (its tail) only when no other free
  // block holds the request, alone or joined with its free neighbours, even
  // once other streams' blocks are fenced. A steady workload's later cycles
  // then place each block where its first cycle did (that cycle grew the
  // tail exactly where this carves it) and never grow again: 0 of 90 steady
  // serving traces grew after warm-up against 8 (docs/arena-cycles.md, "The tail
  // last"). Default true for kv (and the activations sharing its space,
  // PoolOptions::activations_share_kv_space); false for the rest: on a
  // recorded transformers generate (one role) it held 1.025 of peak live
  // instead of 1.016.
  bool tail_last = false;

  bool operator==(const RolePolicy&) const = default;

  // The backend advice this policy gives a new segment.
  Advice advice() const { return Advice{preferred, accessed_by, read_mostly}; }
};

// Defaults per role: default = the seed's rule; weights and activations are
// always prefetched; kv follows the seed's rule.
RolePolicy DefaultRolePolicy(Role role);

// A cap several pools share: a device's pool and its CUDA graph private pools
// (PoolOptions::shared_capacity). Every pool claims the bytes it populates
// (reserved bytes) against it as well as against its own cap, so together
// they never pass it (invariant 5); and the bytes it maps (reserves
// included) against a shared map limit, the lowest of the sharing pools'
// own (the device's free memory when the first was made, at least the cap),
// so together they never map more managed memory than the device had free.
// Thread-safe (a mutex; taken only when a pool maps, populates or unmaps).
class SharedCapacity {
 public:
  explicit SharedCapacity(std::size_t cap_bytes) : reserved_{cap_bytes} {}
  SharedCapacity(const SharedCapacity&) = delete;
  SharedCapacity& operator=(const SharedCapacity&) = delete;
  // Claims `bytes` of reserved (populated) memory if they fit under the cap;
  // false (nothing claimed) if not.
  bool TryClaim(std::size_t bytes);
  void Release(std::size_t bytes);
  // Claims `bytes` of mapping if they fit under the map limit; false if not.
  bool TryMap(std::size_t bytes);
  void Unmap(std::size_t bytes);
  // The cap; the map limit is raised to it if lower.
  void set_cap(std::size_t bytes);
  // Lowers the map limit to `bytes` if higher (each sharing pool's own).
  void LimitMapping(std::size_t bytes);
  std::size_t cap() const;
  std::size_t reserved() const;
  std::size_t map_limit() const;
  std::size_t mapped() const;

 private:
  struct Limited {  // bytes used under a limit
    std::size_t limit;
    std::size_t used = 0;
    bool TryAdd(std::size_t bytes);
    void Sub(std::size_t bytes);
  };
  mutable std::mutex mu_;
  Limited reserved_;                // under the cap
  Limited mapped_{SIZE_MAX};        // under the map limit
};

struct PoolOptions {
  // Where segments come from. kVmm (CUDA's virtual memory API) is GPU memory
  // populated as the pool grows, whose pages Sleep and eviction by staging
  // give back to the driver (other allocators and processes can use them;
  // addresses stay). With kVmm: no host-preferred roles, no oversubscription,
  // budgets evict by staging; a kernel touching memory that sleeps fails
  // (illegal address) instead of faulting it back.
  BackendKind backend = BackendKind::kManaged;

  // CUDA device ordinal of the pool (managed/device/vmm backends). Must be 0 for
  // the host backend.
  int device = 0;

  // Upper bound on bytes reserved from the backend (invariant 5), less the
  // live large blocks the pool evicted to the host (Stats::host_bytes: they
  // hold no GPU memory), so evicting live blocks (Pool::Evict, budgets, a
  // pressure callback) makes room under the cap; what the pool maps stays
  // under the GPU's free memory when it was created either way.
  // 0 = default: for managed and device pools, the GPU's free memory when the
  // pool is created; for host pools, 1/2 of physical memory.
  // A value above the GPU's free memory is refused by Validate() on a managed
  // pool unless allow_oversubscription is set (GH200 Extended GPU Memory).
  std::size_t capacity_bytes = 0;
  bool allow_oversubscription = false;

  // Placement per role, indexed by static_cast<int>(Role).
  std::array<RolePolicy, kNumRoles> roles = {
      DefaultRolePolicy(Role::kDefault), DefaultRolePolicy(Role::kWeights),
      DefaultRolePolicy(Role::kKv), DefaultRolePolicy(Role::kActivations)};

  // Per-thread caches of free blocks for classes up to
  // thread_cache_max_class_bytes. Off = every call takes the per-class lock.
  bool thread_cache = true;
  std::size_t thread_cache_max_class_bytes = std::size_t{4} << 20;  // 4 MiB
  // A thread's cache holds at most this many bytes of free blocks.
  std::size_t thread_cache_bytes = std::size_t{16} << 20;  // 16 MiB
  // Caches of threads outside the pool are emptied into the central bins
  // before the pool grows and by Trim, so a thread that has gone quiet (the
  // autograd thread of PyTorch between backward passes) holds nothing the
  // others need. Costs every cached allocation and free two stores and a
  // load (the owner's side of an asymmetric handshake: the host's cached
  // pair 3-7% slower), so off by default; umpool.torch turns it on. Linux
  // only (membarrier); elsewhere the option is accepted and does nothing.
  // docs/design.md, "A thread's cache outlives its work".
  bool drain_idle_caches = false;

  // A thread publishes its allocated-bytes delta to the pool-wide counter once
  // it passes this many bytes; `allocated_bytes.peak` may therefore read low
  // by up to (threads x this). 0 = exact peaks (one atomic add per call).
  std::size_t stats_publish_bytes = std::size_t{2} << 20;  // 2 MiB

  // When not empty, the pool writes every allocation, free and RecordStream
  // it serves to this file (CSV, docs/trace.md; replay it with
  // tools/umpool-replay). Pool::Create fails with InvalidArgument if the file
  // cannot be created. Costs a mutex and a formatted line per call.
  std::string trace_path;

  // When an allocation finds no memory under the cap, the pool returns its
  // free segments to the backend and retries (as PyTorch empties its cache).
  // false keeps them: the pool's layout then changes only by Trim, which CUDA
  // graph private pools need (their checkpoints restore blocks at the
  // addresses they had).
  bool release_on_oom = true;

  // Before populating memory that would take the reserved bytes past both
  // their high-water mark and give_back_slack above the peak live bytes, give
  // back the whole free pages the pool holds (largest ranges first, as many
  // as the excess): they become bare (mapped, not reserved) and are refilled
  // when reused. Peak reserved bytes then stay within about give_back_slack
  // of peak live bytes where free pages exist to give back (host replays of
  // recorded PyTorch programs: training 1.097 -> 1.027, generation 1.036 ->
  // 1.018, torch.compile 1.122 -> 1.036), at the cost of a few backend calls
  // after warm-up, each a discard or a populate. Managed and vmm memory (vmm:
  // only free pages no stream's work may still use), GPU-preferred roles;
  // off during graph captures. false keeps every populated page until Trim
  // or the out-of-memory retry. docs/arena.md, "Bare blocks".
  bool give_back_free_pages = true;

  // How far above its peak live (allocated) bytes the pool's reserved bytes
  // may go before free pages are given back, as a fraction of that peak:
  // the cache's working room. Smaller gives back more often (measured on a
  // steady generated trace: 0.02 took thousands of calls after warm-up on
  // one seed, 0.03 at most seven); larger holds more. Thirty-ninth session:
  // 0.01 held recorded PyTorch programs at 1.009-1.021 of peak live on an
  // H200 (0.03: 1.018-1.029), with more calls over a run, and 0.0125 gave 1
  // of 90 steady traces a call after warm-up on the host (docs/arena.md,
  // "Why a slack"). 0 to 1.
  double give_back_slack = 0.03;

  // When a request would grow the pool and the only free memory that serves
  // it waits for fences (events on the streams that last used it) not yet
  // complete, the requesting stream waits for those events on the device
  // (cudaStreamWaitEvent, enqueued: the host does not wait) and the request
  // gets that memory (a large space's pending blocks all become the stream's
  // and merge; a size class hands over pending blocks). Without it, how much
  // a workload reserves depends on when events complete: on an H200, 11 of
  // 16 replays of steady multi-stream traces diverged from run to run (up to
  // 1.031 above live bytes and 191 backend calls after warm-up); with it, 16
  // of 16 gave the same figures (docs/design.md, "Pending blocks behind a
  // stream wait"). The cost: the stream's later work starts after those
  // streams' work up to the events (CUDA's stream-ordered pools reuse memory
  // the same way by default). false: such memory waits for its events and
  // the pool grows (other streams' free blocks are then fenced only when a
  // search found nothing: docs/arena-streams.md, "No fences at every search
  // without stream waits"). Never during graph captures. Stats::ordered_reuses
  // counts the requests served so.
  bool reuse_pending_blocks = true;

  // Activations' large blocks (above their slab_max_bytes) share the KV
  // cache's large space when both roles share a heap (the same placement, as
  // by default): the KV cache grows into the pages a prefill's activations
  // left free, as every tensor shares an expandable segment in PyTorch.
  // Apart, the activations' space kept those pages at the KV cache's peak
  // (within give_back_slack): on 90 steady serving traces (host replays)
  // 1.007-1.023 of peak live, mean 1.014; shared 1.006-1.016, mean 1.009,
  // below PyTorch's expandable segments on every per-layer-KV trace replayed
  // on an H200 (docs/arena.md, "Activations in the KV cache's
  // space"). Not when either role has an hbm_budget_bytes (a budget counts
  // its role's own pages). In RoleResidency::reserved_bytes the activations
  // hold their live blocks of the shared space, KV the rest of it. false: one
  // large space per role.
  bool activations_share_kv_space = true;

  // How evictions and fetches by staging (RolePolicy::evict_by_staging) move
  // blocks between the GPU and pinned host memory: true, large aligned runs
  // by eight SMs (Backend::CopyBeside); false, by the copy engines
  // (cudaMemcpyAsync). On managed memory the copy engines' copies hold up the
  // kernels of every stream while they run, where eight SMs' copies slow them
  // by 5-16% (H200: a kernel beside 4 MiB copies 2-3.5x longer by the
  // engines, 1.05-1.16x by the SMs; bench/probes/managed_kernels.cu), at
  // 42.6 / 50.5 GB/s in / out against the engines' ~51 / ~52. The paged-KV
  // demo's 50% budget ran the same either way (11 alternated rounds, medians
  // 0.857 / 0.842 of all resident). Other backends copy by the engines
  // either way (no such stall). Sleep and wake copy as before.
  bool staging_copies_by_sms = true;

  // When a growth takes the pool's reserved bytes past this many, the
  // pressure callback (Pool::SetPressureCallback) is called once, after the
  // allocation, with the bytes above the watermark: an engine can evict or
  // free before memory runs out. Armed again once reserved bytes are at or
  // below it at a later growth. 0 = off. At most the cap.
  std::size_t pressure_watermark_bytes = 0;

  // A cap shared with other pools (null: none). See SharedCapacity.
  std::shared_ptr<SharedCapacity> shared_capacity;

  // Checks the options for contradictions and out-of-range values. Does not
  // look at the hardware (Pool::Create does). Returns InvalidArgument naming
  // the offending field.
  absl::Status Validate() const;

  const RolePolicy& policy(Role role) const {
    return roles[static_cast<int>(role)];
  }
};

// `base` with configuration text applied: UMPOOL_CONF's language
// (docs/conf.md: comma-separated `key:value` pairs, a `<role>.` key per role
// option), validated as Validate() does. For programs that build their own
// pools from a user's settings (umpool-replay --conf). Errors:
// InvalidArgument naming the key or value (unknown key, bad value, a key
// given twice, `raise_on_oom`, which belongs to the C ABI's PyTorch fallback
// and is no pool option); `base` is never changed. Empty text: `base`,
// validated. Thread-safe (no shared state). Defined with the C ABI's parser
// (src/capi/conf.cc).
absl::StatusOr<PoolOptions> ParsePoolOptions(std::string_view conf,
                                             const PoolOptions& base = PoolOptions());

}  // namespace umpool

#endif  // UMPOOL_OPTIONS_H_
