// umpool/pool.h: the C++ API of umpool.
//
// A Pool is a stream-aware caching allocator for one device. Requests up to
// the role's slab_max_bytes (32 MiB for activations, 1 MiB or less for the
// other roles) are rounded to a size class and served from slabs: ranges of
// 2 MiB-aligned segments, carved into blocks of one class; segments are
// advised and prefetched once, when mapped. Larger requests are rounded to
// 512 B and served best fit from the role's own large space, split and merged
// inside their segments (docs/design.md).
//
// Stream semantics (for every call that takes a stream):
//   * A block freed on stream S may be handed out again for stream S at once:
//     work on S runs in order, so the next user's work queues behind the last.
//   * A block freed on S is handed out for another stream only after an event
//     recorded on S after the free has completed (queried; the hot path never
//     blocks the host), and only after events on every stream named by
//     RecordStream for that block have completed.
//   * Stream lifetime: a stream passed to the pool must stay valid (not be
//     destroyed) while blocks last used on it may still be cached: the pool
//     records events on it lazily, when another stream wants those blocks.
//     Keep streams for the process's lifetime, as PyTorch's stream pool does,
//     or call ReleaseStream before destroying one.
//   * Allocate(bytes, S) returns memory that is ready for work enqueued on S.
//     Using it on another stream T without ordering T after S is the caller's
//     responsibility (as with cudaMallocAsync), or call RecordStream.
//
// Thread safety: every member function may be called from any thread at any
// time, except that the Pool must not be destroyed while another thread is
// inside one of its calls. The hot path (a cached block of a class up to
// PoolOptions::thread_cache_max_class_bytes) takes no lock shared with other
// threads.
//
// Errors are values (absl::Status): ResourceExhausted for out-of-memory (the
// message names the request and the pool's stats), InvalidArgument for bad
// input (unknown or interior pointer, absurd size), FailedPrecondition for a
// double free. Bad input never crashes the process or corrupts the pool.
#ifndef UMPOOL_POOL_H_
#define UMPOOL_POOL_H_

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "umpool/backend.h"
#include "umpool/options.h"
#include "umpool/stats.h"
#include "umpool/types.h"

namespace umpool {

namespace internal {
class PoolCore;
}  // namespace internal

// What Pool::Sleep does with each role's live blocks.
enum class SleepAction : std::uint8_t {
  kKeep = 0,     // left where they are
  kOffload = 1,  // contents kept in host memory, brought back by Wake
  kDiscard = 2,  // contents dropped (whole 2 MiB pages), repopulated by Wake
};

// How kOffload keeps contents.
enum class OffloadBy : std::uint8_t {
  // Copied to a pinned host buffer, then the pages discarded (about 55 GB/s
  // each way on the H200). The buffer is pinned at the first Sleep and kept
  // for the next (Pool::ReleaseStaging frees it). Falls back to kEviction
  // where the backend has no staging memory or the host cannot pin enough.
  kStaging = 0,
  // Pages evicted to host memory by the driver (cudaMemPrefetchAsync to the
  // host: about 10 GB/s out, 41 GB/s back on the H200); no extra memory.
  kEviction = 1,
};

struct SleepOptions {
  std::array<SleepAction, kNumRoles> roles{};  // by role; all kKeep by default
  OffloadBy offload_by = OffloadBy::kStaging;
  // The caller's promise that the blocks to offload were not written since
  // the pool last woke (weights during generation): when the last sleep
  // staged the same blocks at the same offsets and the staging buffer was
  // kept, their copies are skipped and only their pages dropped (no copy,
  // no host wait). Otherwise ignored. A block written meanwhile comes back
  // with its contents of the last sleep.
  bool contents_unchanged = false;
};

// What a Sleep moved (Pool::SleepState).
struct SleepState {
  bool asleep = false;
  std::size_t offloaded_bytes = 0;  // live blocks kept in host memory (staged + evicted)
  std::size_t staged_bytes = 0;     // ... of them in the staging buffer
  std::size_t reused_bytes = 0;     // ... of them not copied again (contents_unchanged)
  std::size_t discarded_bytes = 0;  // whole pages of live blocks discarded (staged ones too)
  std::size_t blocks = 0;
  std::size_t staging_bytes = 0;    // the pinned staging buffer held (kept while awake too)
};

// One role's residency (Pool::GetResidency). The eviction figures count only
// large blocks (above the role's slab_max_bytes); blocks a kernel faults back
// by itself are not seen. reserved_bytes and allocated_bytes split the pool's
// figures of the same names by role (the free part of a slab space shared by
// several roles is in no role's reserved_bytes).
struct RoleResidency {
  std::size_t budget_bytes = 0;    // RolePolicy::hbm_budget_bytes (0: no budget)
  std::size_t resident_bytes = 0;  // budgeted roles: live blocks allocated or fetched, not evicted since
  std::size_t host_bytes = 0;      // live blocks the pool evicted and has not fetched back
  std::uint64_t evictions = 0;     // blocks the pool evicted (Evict, Prefetch/PrefetchBlocks to the host, budget)
  std::uint64_t budget_evictions = 0;  // ... of them chosen by the budget
  std::uint64_t fetches = 0;       // blocks fetched to the GPU (Fetch, Prefetch/PrefetchBlocks)
  std::uint64_t evicted_bytes = 0;
  std::uint64_t fetched_bytes = 0;
  // Populated bytes of the role's large space and slabs. A large space two
  // roles share (PoolOptions::activations_share_kv_space): the activations
  // hold their live blocks of it, KV the rest.
  std::size_t reserved_bytes = 0;
  std::size_t allocated_bytes = 0;  // live blocks of the role (block sizes)
};

// One live block (Pool::LiveBlocks): where it is, how big, for what.
struct BlockInfo {
  void* ptr = nullptr;
  std::size_t bytes = 0;      // usable size (BlockSize)
  std::size_t requested = 0;  // what the caller asked for
  Stream stream = nullptr;    // the stream it was allocated for
  Role role = Role::kDefault;
};

// A picture of one span (Pool::Spans): a segment (a backend allocation) or a
// slab carved from one, with its blocks in address order.
struct SpanBlocks {
  std::size_t offset = 0;     // from the span's base
  std::size_t bytes = 0;      // one block's size
  std::uint32_t count = 1;    // consecutive blocks of this size and state (slabs)
  char state = 'F';           // 'L' live, 'R' live and named by RecordStream,
                              // 'F' free (cached), 'U' never handed out,
                              // 'B' free, its pages given back (bare: not
                              // reserved, refilled when reused)
  std::size_t requested = 0;  // live blocks: bytes asked for, all `count` together
};
struct SpanInfo {
  std::uintptr_t base = 0;
  std::size_t bytes = 0;         // segments: the populated part (see mapped_bytes)
  std::size_t mapped_bytes = 0;  // segments: bytes mapped (populated part and reserve)
  bool slab = false;            // a slab inside a segment, or a segment
  bool slab_space = false;      // a segment of slab space: its live blocks are slabs
                                // (a large space's live block at a slab's base is
                                // that slab's range: RolePolicy::slab_space_max_bytes)
  Role role = Role::kDefault;   // the role it was made for
  std::size_t block_bytes = 0;  // slabs: the class size
  bool device_memory = false;   // plain device memory (RolePolicy::device_memory)
  std::vector<SpanBlocks> blocks;
};

// One row of the size-class table (SizeClassTable()).
struct SizeClassRow {
  std::size_t block_bytes = 0;  // the class size
  std::size_t slab_bytes = 0;   // bytes per slab (a multiple of 2 MiB)
  std::size_t blocks = 0;       // blocks per slab
  std::size_t tail_bytes = 0;   // slab_bytes - blocks * block_bytes
};

class Pool {
 public:
  // Creates a pool on umpool's backend for options.backend. Validates
  // `options` (InvalidArgument), creates the backend (Unavailable when it
  // needs CUDA and there is no usable GPU, or when umpool was built without
  // CUDA; InvalidArgument for a bad device ordinal) and resolves the default
  // capacity. Thread-safe.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(const PoolOptions& options);
  // Creates a pool on `backend` (any implementation of umpool/backend.h;
  // options.backend and options.device are ignored: the backend's own are
  // used). Roles with device_memory get a second backend: a device backend on
  // the same GPU, or a host backend beside a host backend. InvalidArgument
  // for a null backend. Thread-safe.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(const PoolOptions& options,
                                                      std::unique_ptr<Backend> backend);

  // Destroys the pool: waits for the device to finish (so no queued work can
  // touch memory being returned) and returns every slab and segment to the
  // backend, including blocks still allocated. Pointers from this pool are
  // invalid afterwards. No other thread may be inside a call of the pool.
  ~Pool();

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Returns a block of at least `bytes` bytes, aligned to >= 256 bytes
  // (kMinAlignment), ready for use by work enqueued on `stream`. The host
  // may touch a managed block once `stream` has reached this point (as with
  // cudaMallocAsync): a block refilled from given-back pages
  // (PoolOptions::give_back_free_pages) is populated by work on `stream`
  // that would otherwise land after the host's write. Up to the
  // role's slab_max_bytes it is a size-class block (RoundedSize(bytes, role)
  // bytes); above, a large block of the role's own large space.
  //   * bytes == 0: returns nullptr and OK; Deallocate(nullptr) is a no-op.
  //   * bytes larger than 2^47: InvalidArgument ("absurd size").
  //   * a role outside Role: InvalidArgument.
  //   * not enough memory under the cap even after releasing cached memory:
  //     ResourceExhausted, with the request size and the pool's stats.
  // Never blocks the host on GPU work unless memory is short (then it waits
  // for pending frees before giving up). Thread-safe.
  absl::StatusOr<void*> Allocate(std::size_t bytes, Stream stream = kDefaultStream,
                                 Role role = Role::kDefault);

  // Returns `ptr` to the pool. `stream` is the stream on which the block was
  // last used: the block may be reused on that stream at once and on other
  // streams after an event recorded on it completes. nullptr is a no-op.
  //   * a pointer this pool did not hand out, or one pointing inside a block:
  //     InvalidArgument; nothing changes.
  //   * a block already freed: FailedPrecondition ("double free"); nothing changes.
  // Thread-safe; never blocks the host on GPU work, except that a large
  // block of a role with an HBM budget whose eviction (chosen by the budget)
  // another thread is running waits for that eviction to end, then is freed
  // as an evicted block.
  absl::Status Deallocate(void* ptr, Stream stream);
  // The same, on the stream the block was allocated for (as PyTorch frees a
  // tensor: its last use is ordered on its allocation stream, or named by
  // RecordStream).
  absl::Status Deallocate(void* ptr);

  // Marks `ptr` (a live block from this pool) as used on `stream` too: when it
  // is freed, it is not reused until the work queued on `stream` up to the
  // free has completed. A record of the stream the block is then freed on adds
  // nothing (reuse on that stream is ordered after its work; other streams
  // wait for it as for any free), as PyTorch ignores a record of the
  // allocation stream. Same errors as Deallocate for bad pointers.
  // Thread-safe.
  absl::Status RecordStream(void* ptr, Stream stream);

  // Tells the pool that `stream` is about to be destroyed. Waits (host-
  // blocking) for the work queued on it so far, makes every cached block last
  // used on it reusable by any stream, and never records an event on the
  // handle again unless it is passed to the pool anew (CUDA reuses handle
  // values). Call it after the stream's last use and before
  // cudaStreamDestroy; without it, destroying a stream while blocks freed on
  // it are cached crashes the next fence that would be recorded on it. A
  // stream the pool never saw is a no-op. FailedPrecondition during a graph
  // capture; a backend error otherwise. Thread-safe.
  absl::Status ReleaseStream(Stream stream);

  // Moves [ptr, ptr + bytes) to `where` (the pool's GPU or host memory),
  // ordered on `stream` like a kernel: work enqueued on `stream` afterwards
  // sees the data there. Addresses never change. The range must lie inside
  // one live block; ptr may point anywhere in it (a tensor view), and
  // bytes == 0 means "to the end of the block". Migration is page-granular:
  // a small block shares pages with its neighbours, which move with it.
  // On the device and host backends this checks the range and does nothing;
  // on the vmm backend a prefetch to the GPU is a no-op (the memory is
  // there) and one to the host FailedPrecondition (vmm memory cannot
  // migrate; a role with evict_by_staging moves by copies instead; during a
  // capture the request is skipped, as staging is).
  // Errors: InvalidArgument (not inside a live block of this pool, or past
  // its end); FailedPrecondition (the block is plain device memory, or vmm
  // memory asked to migrate); a CUDA error as returned by
  // cudaMemPrefetchAsync. Thread-safe.
  absl::Status Prefetch(const void* ptr, std::size_t bytes, Location where, Stream stream);
  // Prefetch of the whole block containing ptr to host memory / to the GPU:
  // e.g. the KV cache of a paused request, and its return before it resumes.
  absl::Status Evict(const void* ptr, Stream stream);
  absl::Status Fetch(const void* ptr, Stream stream);
  // Moves the whole blocks containing ptrs[0..count) to `where` in one
  // stream-ordered batch (one cudaMemPrefetchBatchAsync on the managed
  // backend): the KV blocks of a paused request in one call. Every pointer is
  // checked before anything moves; InvalidArgument names the first bad one
  // (not in a live block of this pool). count == 0 is a no-op. Thread-safe.
  absl::Status PrefetchBlocks(const void* const* ptrs, std::size_t count, Location where,
                              Stream stream);

  // Puts the pool's memory to sleep between phases (an inference engine
  // beside a trainer on one GPU): first every free cached block goes back to
  // the backend (Trim), then the live blocks of each role are offloaded or
  // discarded as `options` says, ordered after `stream`'s earlier work and
  // before its later work; when blocks are staged, the host waits for their
  // copies before their pages are dropped (measured on the H200: dropping
  // pages queued right behind the copies made later wakes fault page by
  // page), so Sleep returns with the copies done. Above 1 GiB of staged
  // pages the drops run on the backend's side stream, 1 GiB at a time while
  // the next is copied (src/pool/sleep_batch.h). Addresses never change, so
  // CUDA graphs captured over them stay valid. Wake brings them back.
  // Blocks allocated while asleep are ordinary; blocks freed while asleep are
  // skipped by Wake. Managed backend: the GPU memory of evicted or discarded
  // pages can be taken by another allocator's cudaMalloc (the driver evicts
  // them on demand); cudaMemGetInfo keeps counting them until then (measured
  // on the H200, driver 580). vmm backend: the pages are released to the
  // driver (cudaMemGetInfo counts them free) and mapped again by Wake; a
  // block freed while asleep gets its pages back at once (that free fails,
  // the block staying allocated, if the driver has no memory for them); a
  // kernel touching a sleeping block fails with an illegal address; offload
  // by eviction is FailedPrecondition. Sleep while asleep is a no-op.
  // Errors: FailedPrecondition during a graph capture, or for a role served
  // from plain device memory (device_memory) that is not kKeep; a backend
  // error otherwise (nothing is recorded as asleep then). Thread-safe.
  absl::Status Sleep(const SleepOptions& options, Stream stream);
  // Brings back what Sleep moved: evicted blocks are fetched to the GPU,
  // the pages of staged and discarded ones repopulated there (discarded
  // contents undefined) and staged contents copied back, ordered after
  // `stream`'s earlier work and before its later work. Above 1 GiB of staged
  // pages the repopulation runs on the backend's side stream, 1 GiB ahead of
  // the copies, and Wake returns once the host has seen it done (the copies
  // stay queued on `stream`). Wake of a pool that is not asleep is a
  // no-op. Errors: FailedPrecondition during a graph capture; a backend
  // error (the pool stays asleep; Wake may be called again). Thread-safe.
  absl::Status Wake(Stream stream);
  // Whether the pool sleeps, and what its Sleep moved. Thread-safe.
  SleepState GetSleepState() const;
  // Pins the staging buffer a Sleep with `options` would need now (the live
  // blocks of its kOffload roles), so that the first Sleep does not pay for
  // pinning (about 2.7 s per 8 GiB on the H200's host). Host-blocking. No-op
  // while asleep or when the buffer is big enough. Errors: the backend's
  // (Unimplemented where it has no staging memory, ResourceExhausted where
  // the host cannot pin that much). Thread-safe.
  absl::Status ReserveStaging(const SleepOptions& options);
  // Pins `bytes` of host memory for eviction by staging (<role>.evict:staging)
  // now, so that evictions do not pay for pinning as they go (about 75 ms
  // per 256 MiB chunk on the H200's host): an engine with a KV budget
  // reserves what its evicted KV can reach. Host-blocking; no-op where that
  // much is held already; Trim frees the chunks no evicted block uses.
  // Errors: the backend's (Unimplemented where it has no staging memory,
  // ResourceExhausted where the host cannot pin that much; what was pinned
  // stays). Thread-safe.
  absl::Status ReserveEvictionStaging(std::size_t bytes);
  // A role's residency: budget, resident and host bytes, evictions and
  // fetches (RoleResidency). Walks the live blocks (for allocated_bytes):
  // for statistics, not for a hot path. Thread-safe.
  RoleResidency GetResidency(Role role) const;
  // Where the pool keeps the block containing `ptr` (any address inside a
  // live block): kHost for a large block it evicted — chosen by a budget,
  // or moved by Evict or Prefetch/PrefetchBlocks to the host — and has not
  // fetched back since, kDevice otherwise. So an engine under a budget
  // learns which of its blocks the budget took and must be fetched before
  // a kernel uses them (with eviction by staging their pages hold nothing
  // until then). The pool does not see kernels: an evicted managed block a
  // kernel touched is still kHost (its pages faulted back, uncounted);
  // slab blocks (at most the role's slab_max bytes) are never tracked:
  // kDevice. Errors: InvalidArgument for null or memory the pool did not
  // hand out, FailedPrecondition for a freed block. A lock per call, no
  // backend call; thread-safe, no stream semantics. Size 0 blocks do not
  // exist (Allocate(0) returns no block).
  absl::StatusOr<Location> BlockLocation(const void* ptr) const;
  // Frees the pinned staging buffer Sleep keeps between sleeps (waiting for
  // Wake's copies out of it first; host-blocking). While asleep: a no-op
  // (the buffer holds the contents). Thread-safe.
  absl::Status ReleaseStaging();

  // Returns every cached block that is free to the backend: empty slabs and
  // free large-block segments. A segment goes back only when wholly free:
  // its pages stay populated (reserved) while any block in it lives, since
  // managed memory is freed a whole mapping at a time. Waits (host-blocking)
  // for events of pending frees first, so it is not for hot paths. Blocks
  // cached by other threads' caches are handed back at those threads' next
  // call and released by a later Trim. Returns the first backend error, if
  // any; FailedPrecondition during a graph capture. Thread-safe.
  absl::Status Trim();

  // CUDA graph capture. Call BeginCapture before cudaStreamBeginCapture on a
  // stream whose work uses this pool's memory (or whenever any capture may be
  // underway in the process: in cudaStreamCaptureModeGlobal an event query
  // from any thread invalidates it) and EndCapture after cudaStreamEndCapture.
  // In between the pool records and queries no events: blocks freed on one
  // stream are reused on that stream only (on others after EndCapture), frees
  // of blocks named by RecordStream wait until EndCapture, no discard or
  // prefetch is issued on a capturing stream, and Trim fails with
  // FailedPrecondition. New memory may still be mapped (under
  // cudaStreamCaptureModeRelaxed, as PyTorch does for cudaMalloc). Blocks the
  // graph will touch on replay must stay allocated while it can be replayed:
  // allocate them from a pool kept for the graph (PyTorch's private pools;
  // the C ABI does this for torch.cuda.graph). Calls nest; thread-safe.
  // EndCapture returns the first error of the deferred frees it completes.
  void BeginCapture();
  absl::Status EndCapture();

  // A snapshot of the counters (umpool/stats_table.h). Thread-safe; see
  // Stats for its accuracy while other threads allocate.
  Stats GetStats() const;

  // Every slab and large-block segment with the state of each block, as JSON
  // (format: docs/trace.md, "Snapshots"; draw it with tools/umpool-snapshot).
  // Blocks in thread caches show as free. Exact when no other thread is
  // inside the pool, approximate otherwise. Thread-safe; takes each bin's and
  // heap's lock in turn, so not for hot paths.
  std::string SnapshotJson() const;

  // Every slab and segment with its blocks, in address order (what
  // SnapshotJson writes). Same accuracy and cost as SnapshotJson.
  std::vector<SpanInfo> Spans() const;

  // Every live block, in address order (a checkpoint of the pool's use).
  // Exact when no other thread is inside the pool. Thread-safe; not for hot
  // paths.
  std::vector<BlockInfo> LiveBlocks() const;
  // Makes the live blocks exactly `blocks` (LiveBlocks() of an earlier
  // moment), as CUDA graph trees need when they record a new graph from an
  // earlier state (PyTorch's setCheckpointPoolState): every live block is
  // freed (on its own stream) and appended to *freed, then every block of
  // `blocks` is allocated again at its address and appended to *allocated
  // (a pointer live at both moments is in both lists); each comes back with
  // its role. Large blocks only (a pool whose roles have slab_max_bytes 0,
  // as graph private pools are): FailedPrecondition for a size-class block
  // or memory this pool no longer holds, InvalidArgument for a role outside
  // Role — all checked before any live block is freed, so nothing changes.
  // FailedPrecondition too when the memory of a block to restore is no
  // longer free once the live blocks are freed (something else holds it):
  // those stay freed. A block whose memory is not yet reusable on its
  // stream is waited for (host-blocking).
  // FailedPrecondition during a capture. No other thread may use the pool
  // meanwhile.
  absl::Status RestoreLiveBlocks(const std::vector<BlockInfo>& blocks, std::vector<void*>* freed,
                                 std::vector<void*>* allocated);

  // Sets every peak to its current value. Thread-safe.
  void ResetPeaks();

  // Changes the cap on reserved bytes (e.g. PyTorch's set_memory_fraction).
  // Lowering it below what is reserved releases cached memory first; live
  // blocks are never taken back, so reserved may stay above the new cap until
  // they are freed (new growth fails meanwhile). InvalidArgument below 2 MiB,
  // or above the cap the pool was created with on a managed pool that does
  // not allow oversubscription. Thread-safe.
  absl::Status SetCapacity(std::size_t bytes);

  // Called when an allocation is about to fail for lack of memory, after the
  // pool has returned its own cached memory: `bytes` is the size class or
  // rounded size it needs, plus what the pool's GPU-held bytes (reserved less
  // Stats::host_bytes) are over the cap (a freed evicted block counts against
  // the cap again), `role` the request's role. Return true if it freed
  // memory (an engine evicting or discarding paused requests' KV, freeing a
  // cache; evicted live blocks do not count against the cap): the pool
  // retries, and asks again while the callback returns true and the retry
  // still runs short (at most kPressureRetries times). Return false to let
  // the allocation fail.
  // It runs on the allocating thread with no pool lock held, so it may free
  // and allocate through this pool; it is never re-entered from its own
  // allocations, and never called during a CUDA graph capture. An exception
  // it throws fails the allocation with ResourceExhausted naming it.
  // With PoolOptions::pressure_watermark_bytes it is also called once when a
  // growth takes reserved bytes past the watermark, after that allocation
  // succeeded, with `bytes` = reserved bytes above the watermark and the
  // role of the allocation that grew the pool; its result, and an exception
  // it throws, are ignored then (that allocation has succeeded). Not during
  // a graph capture (the crossing is then skipped). nullptr removes it.
  // Thread-safe.
  using PressureCallback = std::function<bool(std::size_t bytes, Role role)>;
  static constexpr int kPressureRetries = 8;
  void SetPressureCallback(PressureCallback callback);
  // The largest cap SetCapacity accepts: the creation cap on a managed pool
  // without oversubscription, else SIZE_MAX. Thread-safe.
  std::size_t MaxCapacity() const;

  // The size a request of `bytes` for `role` is rounded to (0 for 0): a size
  // class up to the role's slab_max_bytes, else a multiple of 512 B. A large
  // block may come out up to 1 MiB bigger (a free block's rest below 1 MiB is
  // not split off); BlockSize says what a live block has. Thread-safe.
  std::size_t RoundedSize(std::size_t bytes, Role role = Role::kDefault) const;

  // true when ptr lies in memory this pool holds (a live or a cached block,
  // or a slab's unused tail): one lock-free lookup. Says nothing about
  // whether the block is live; use it to find the pool that owns a pointer.
  bool Holds(const void* ptr) const;

  // The usable size of a live block (its rounded size), or InvalidArgument
  // (not a block start of this pool) / FailedPrecondition (not allocated).
  absl::StatusOr<std::size_t> BlockSize(const void* ptr) const;
  // The live block containing `ptr` (which may point inside it).
  absl::StatusOr<BlockInfo> BlockContaining(const void* ptr) const;

  const PoolOptions& options() const;
  // The backend's description, e.g. "managed: NVIDIA H100 80GB HBM3 (device 0)".
  std::string Describe() const;
  // The device's total memory, through the backend (TotalBytes).
  absl::StatusOr<std::size_t> DeviceTotalBytes() const;

 private:
  friend class internal::PoolCore;
  explicit Pool(std::unique_ptr<internal::PoolCore> core);
  std::unique_ptr<internal::PoolCore> core_;
};

// The size-class table every pool uses (tools/umpool-size-classes prints it).
std::vector<SizeClassRow> SizeClassTable();

}  // namespace umpool

#endif  // UMPOOL_POOL_H_
