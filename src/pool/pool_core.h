// src/pool/pool_core.h: the pool behind umpool::Pool, where the tiers meet.
//
// Tiers, each with one job (docs/design.md, "Tiers"):
//   ThreadCaches   per-thread stacks of free blocks (the hot path)
//   SlabAllocator  a CentralBin per (heap, size class); slabs from the arena
//   Arena          segments: spaces per heap, growth under the cap, release
//   Fencer         events that tell when a stream's work is done
// PoolCore owns them, wires the forwarders (the thread caches reach the slab
// tier through CentralCache, the arena asks for free memory through
// FreeMemorySource), and is the one place that tells a size-class request
// from a large one (by size and role) and a slab block from a large block
// (by the pagemap). Features that cut across the tiers live here too: frees
// waiting for a discard, frees deferred across a graph capture, streams named
// by RecordStream, released streams, the trace recorder.
//
// Files: pool_core.cc (creation, allocation), pool_free.cc (frees,
// RecordStream, discards, captures), pool_blocks.cc (lookups, prefetch,
// checkpoints), pool_release.cc (Trim, out of memory, capacity,
// ReleaseStream), pool_sleep.cc (Sleep, Wake), pool_pressure.cc (the pressure
// callback), pool_stats.cc, pool_snapshot.cc.
//
// Locks (never two at once except in this order):
//   thread registry -> thread caches -> bin / large heap -> fencer
//   the arena's grow_mu_, slabs_mu_, the discard queue's, the deferred
//   frees', the recorded and released streams' are taken alone; sleep_mu_
//   is held around Sleep and Wake, which take the others (freed_asleep_mu_,
//   otherwise taken alone by frees while the pool sleeps, among them).
#ifndef UMPOOL_SRC_POOL_POOL_CORE_H_
#define UMPOOL_SRC_POOL_POOL_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "src/pool/arena.h"
#include "src/pool/central_cache.h"
#include "src/pool/counters.h"
#include "src/pool/discard_queue.h"
#include "src/pool/evictions_in_flight.h"
#include "src/pool/fence.h"
#include "src/pool/host_copies.h"
#include "src/pool/pagemap.h"
#include "src/pool/recorded_streams.h"
#include "src/pool/residency.h"
#include "src/pool/released_streams.h"
#include "src/pool/slab_allocator.h"
#include "src/pool/staging.h"
#include "src/pool/thread_caches.h"
#include "src/pool/trace_recorder.h"
#include "umpool/backend.h"
#include "umpool/options.h"
#include "umpool/pool.h"
#include "umpool/stats.h"

namespace umpool::internal {

// InvalidArgument: `ptr` is not a block of this pool (pool_blocks.cc).
absl::Status NotOurs(const void* ptr);
// FailedPrecondition: the large block at `ptr` was freed and waits for its
// discard (pool_blocks.cc).
absl::Status WaitingForDiscard(const void* ptr);

// Largest accepted request: 128 TiB (beyond any GPU's address space).
inline constexpr std::size_t kMaxRequestBytes = std::size_t{1} << 47;

class PoolCore final : private FreeMemorySource, private CentralCache {
 public:
  // Takes ownership of the backends. Validates options and resolves the cap.
  // `device_memory`, if given, maps the segments of roles with device_memory
  // set; without it those roles use `backend`.
  static absl::StatusOr<std::unique_ptr<PoolCore>> Create(
      const PoolOptions& options, std::unique_ptr<Backend> backend,
      std::unique_ptr<Backend> device_memory = nullptr);
  ~PoolCore();

  // Wraps a core into the public Pool (Pool's constructor is private), and
  // reaches the core of a Pool (the tiers' own tests).
  static std::unique_ptr<Pool> Wrap(std::unique_ptr<PoolCore> core);
  static PoolCore* Unwrap(Pool& pool);

  absl::StatusOr<void*> Allocate(std::size_t bytes, Stream stream, Role role);
  // Frees a block last used on `stream` / on the stream it was allocated for.
  absl::Status Deallocate(void* ptr, Stream stream);
  absl::Status DeallocateOwn(void* ptr);
  absl::Status RecordStream(void* ptr, Stream stream);
  absl::Status ReleaseStream(Stream stream);
  absl::Status Trim();
  absl::Status Sleep(const SleepOptions& options, Stream stream);
  absl::Status Wake(Stream stream);
  SleepState GetSleepState() const;
  absl::Status ReleaseStaging();
  absl::Status ReserveStaging(const SleepOptions& options);
  absl::Status ReserveEvictionStaging(std::size_t bytes) { return host_copies_.Reserve(bytes); }
  RoleResidency GetResidency(Role role) const;
  absl::StatusOr<Location> BlockLocation(const void* ptr) const;
  void SetPressureCallback(Pool::PressureCallback callback);
  void BeginCapture() { fencer_.CaptureBegan(); }
  absl::Status EndCapture();
  bool capturing() const { return fencer_.capturing(); }
  absl::Status Prefetch(const void* ptr, std::size_t bytes, Location where, Stream stream);
  absl::Status PrefetchBlocks(const void* const* ptrs, std::size_t count, Location where,
                              Stream stream);
  // The live block starting at / containing `ptr`.
  absl::StatusOr<BlockInfo> BlockAt(const void* ptr) const;
  absl::StatusOr<BlockInfo> BlockContaining(const void* ptr) const;
  std::vector<BlockInfo> LiveBlocks() const;
  absl::Status RestoreLiveBlocks(const std::vector<BlockInfo>& blocks, std::vector<void*>* freed,
                                 std::vector<void*>* allocated);
  std::vector<SpanInfo> Spans() const;
  Stats GetStats() const;
  std::string SnapshotJson() const;
  void ResetPeaks();
  absl::Status SetCapacity(std::size_t bytes);
  std::size_t MaxCapacity() const { return arena_.MaxCapacity(); }
  std::size_t RoundedSize(std::size_t bytes, Role role) const;

  const PoolOptions& options() const { return options_; }
  Backend& backend() { return *backend_; }
  Backend* device_memory_backend() { return device_memory_backend_.get(); }
  // The trace recorder, or nullptr when PoolOptions::trace_path is empty.
  TraceRecorder* recorder() const { return recorder_.get(); }
  const PageMap& pagemap() const { return pagemap_; }

  // Aborts if any internal structure is inconsistent. Quiescent pools only
  // (no concurrent calls); for tests.
  void CheckInvariants() const;

 private:
  PoolCore(const PoolOptions& options, std::unique_ptr<Backend> backend,
           std::unique_ptr<Backend> device_memory, std::size_t capacity, std::size_t map_limit);

  // CentralCache: what thread caches send down.
  void Return(Stream stream, Role role, int size_class, void* const* blocks, int n) override;
  void StreamClaimed(Stream stream) override { released_.Renew(stream); }
  // FreeMemorySource: what the arena asks for before growing.
  std::size_t ReclaimEmptySlabs(int heap, bool wait, absl::Status* status,
                                std::size_t min_slab_bytes, std::size_t max_slab_bytes) override {
    return slabs_.ReclaimEmptySlabs(heap, wait, status, min_slab_bytes, max_slab_bytes);
  }
  bool FlushCaches(bool others) override;

  ThreadCache* CounterCache() { return options_.thread_cache ? caches_.ForCounts() : nullptr; }
  // Allocate's uncommon cases (size 0, an invalid role, a large block), and its slow paths.
  absl::StatusOr<void*> AllocateUncommon(std::size_t bytes, Stream stream, Role role);
  absl::StatusOr<void*> AllocateSmall(std::size_t bytes, Stream stream, Role role, int cls);
  absl::StatusOr<void*> AllocateLarge(std::size_t bytes, Stream stream, Role role);
  // Runs `take`; if memory ran short, releases cached memory (counted as an
  // allocation retry) and runs it once more (pool_core.cc).
  template <class Take>
  auto WithOomRetry(std::size_t bytes, Role role, Take take) -> decltype(take());
  // Refill with the out-of-memory retry.
  absl::StatusOr<int> Refill(Stream stream, Role role, int cls, void** out, int max, bool* grew);
  // Marks a cached block live for `stream`, for `requested` bytes (inline: pool_core.cc only).
  void MarkLive(void* p, Stream stream, std::size_t requested);
  template <bool kOwnStream>
  absl::Status Free(void* ptr, Stream stream);
  absl::Status FreeLarge(Span* span, void* ptr, std::optional<Stream> stream);
  absl::Status FreeRecorded(Slab* slab, void* ptr, Stream stream, std::size_t requested, StreamSet streams);
  // A fence now on each of `streams` (not during a capture).
  absl::StatusOr<Fences> FencesOn(const StreamSet& streams);
  // Frees that would need events during a graph capture wait for EndCapture.
  void Defer(void* ptr, Stream stream, StreamSet fences_on, FenceRef after = nullptr);
  // A large block's free deferred to EndCapture (`after`: waited for first).
  absl::Status DeferLarge(LargeHeap* space, void* ptr, std::optional<Stream> stream,
                          FenceRef after);
  // Discard on free (see discard_queue.h).
  bool DiscardsFor(Role role) const;
  bool EnqueueDiscard(std::uintptr_t start, std::size_t size, Stream stream, Role role);
  DiscardMode DiscardModeFor(Role role) const;
  // Asks the pressure callback to free memory for a request of `bytes` of `role`: true
  // if it says it did (retry). An exception it throws is reported in *why (as false).
  bool RelievePressure(std::size_t bytes, Role role, absl::Status* why);
  // What a request of `bytes` that ran short needs freed: `bytes`, plus
  // what the GPU-held bytes (reserved less evicted) are over the cap (frees
  // of evicted blocks count again, so the pool can be over it).
  std::size_t ShortOf(std::size_t bytes) const;
  // The installed callback (null: none), kept alive while it runs.
  std::shared_ptr<const Pool::PressureCallback> CurrentPressureCallback() const;
  // After an allocation that grew the pool: calls the pressure callback if
  // reserved bytes just passed the watermark (PoolOptions).
  void AfterGrowth(Role role);
  // Runs `callback` with this thread marked as inside it; an exception it throws goes to *why.
  bool Call(const Pool::PressureCallback& callback, std::size_t bytes, Role role,
            absl::Status* why);
  // Counts one batched discard of ranges of `sizes` bytes.
  void CountDiscard(const std::vector<std::size_t>& sizes);
  // One batched prefetch of whole ranges (none: nothing), counted.
  absl::Status PrefetchBatch(const std::vector<void*>& ptrs, const std::vector<std::size_t>& sizes,
                             Location where, Stream stream);
  // Marks the live block at `block` as evicted by the pool (discard on free
  // applies to it).
  void NoteEvicted(const void* block);
  // true for an eviction during a capture on a backend that cannot migrate
  // (vmm): skipped, as staging is then.
  bool MigrationSkipped(Location where) const;
  bool IsLarge(const void* block) const;
  // Residency (residency.h): a budgeted role's new large block, large blocks
  // moved by Prefetch/PrefetchBlocks (their victims evicted first, on
  // `stream`), and the eviction of victims.
  absl::Status AdmitBudgeted(void* p, std::size_t bytes, Role role, Stream stream);
  absl::Status NoteMoved(const std::vector<BlockInfo>& blocks, Location where, Stream stream);
  // A budget bounds what its role holds on the GPU, free pages included:
  // a budgeted role past its budget (and give_back_slack of it) gives back
  // free pages (Arena::GiveBackOverBudget). After each budgeted allocation,
  // and after a fetch's pages are in.
  void GiveBackOverBudgets(Stream stream);
  absl::Status EvictVictims(const Victims& victims, Stream stream);
  // An engine's eviction of `blocks` (large ones) around its copies out:
  // Begin takes the resident ones from the budgets (Residency::Claim) and
  // waits for a budget's evictions of the others under way, so that two
  // evictions never copy out one block (the second would read the pages
  // the first dropped); End releases them (back to resident unless `ok`).
  Victims BeginEngineEviction(const std::vector<void*>& blocks);
  void EndEngineEviction(const Victims& claimed, bool ok);
  absl::Status MoveOutVictims(const Victims& victims, Stream stream);  // EvictVictims' moves
  // Orders `stream` after the work queued so far on the streams that may
  // use the victims: each one's allocation stream, those RecordStream named
  // for it and the stream it was last fetched on (those other than `stream`
  // and not released). Not during a graph capture.
  absl::Status OrderAfterVictims(const Victims& victims, Stream stream);
  // Eviction by staging (RolePolicy::evict_by_staging, pool_staged.cc).
  // Evicts the large blocks among `ptrs` whose role evicts by staging and
  // that are not out already (copied into host_copies_, the host waits,
  // pages dropped) and erases them from `ptrs`/`sizes`, leaving the blocks
  // to migrate; a block that gets no pinned slot stays (migrated instead).
  // `defer_drop` (an engine's eviction, not a budget's or the pressure
  // callback's, which need the memory now): the host does not wait; the
  // pages are dropped by a later staging call once the copies are seen done
  // (DropDeferred).
  absl::Status StageOut(std::vector<void*>* ptrs, std::vector<std::size_t>* sizes, Stream stream,
                        bool defer_drop = false);
  // Drops the pages of deferred evictions whose copies out are done (all of
  // them, waiting on the host, if `wait`); not during a graph capture.
  void DropDeferred(bool wait);
  void DropDeferredLocked(bool wait) ABSL_EXCLUSIVE_LOCKS_REQUIRED(drops_mu_);
  // `block` (staged out) is fetched or freed: a drop still deferred is
  // cancelled (returns true: its pages were never dropped), one already
  // issued is waited for on the host unless done.
  // When the host may not wait (a graph capture), the copy out or drop not
  // seen done goes to *unsettled (if given) instead.
  struct Unsettled {
    FenceRef copied;
    FenceRef dropped;
  };
  bool SettleDeferred(std::uintptr_t block, Unsettled* unsettled = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(drops_mu_);
  // Every deferred drop issued and seen done (Sleep).
  void SettleAllDeferred();
  // Brings back the blocks among `ptrs` that are staged out (pages refilled
  // on the GPU, contents copied back, slots given back once the copies ran)
  // and erases them from `ptrs`/`sizes`.
  absl::Status StageIn(std::vector<void*>* ptrs, std::vector<std::size_t>* sizes, Stream stream);
  // A block being freed, before its range goes back to its heap: if it was
  // staged out, its deferred drop is settled and its slot given back (during
  // a graph capture, if its copy out may still run, at EndCapture); a drop
  // issued and not seen done during a capture goes to *drop_unseen (the
  // free must wait for it: DeferLarge).
  void ForgetStaged(const void* block, FenceRef* drop_unseen);
  // The slots of blocks freed during the capture that just ended
  // (slots_after_capture_), each once its copy out ran.
  absl::Status GiveSlotsAfterCapture();
  // FailedPrecondition when a graph is being captured and one of `blocks`
  // is staged out (checked before residency counts a fetch).
  absl::Status CheckFetchable(const std::vector<void*>& blocks, Stream stream) const;
  static absl::Status FetchInCapture();
  bool EvictsByStaging(const void* block) const;
  // The base of the span (segment or slab) holding `block`; 0 if none: what
  // PageBatch and CopyList keep runs within.
  std::uintptr_t SpanBase(const void* block) const;
  void DrainDiscards();
  bool WaitsForDiscard(const Span* span, const void* block) const;
  // Releases cached memory (this thread's cache, every empty slab after its
  // fences, and with `unmap` every free segment); the out-of-memory path,
  // Trim and SetCapacity.
  absl::Status ReleaseCached(bool unmap);
  absl::Status OutOfMemory(std::size_t bytes, Role role, const absl::Status& cause);

  const PoolOptions options_;
  const std::unique_ptr<Backend> backend_;
  const std::unique_ptr<Backend> device_memory_backend_;  // may be null
  std::unique_ptr<TraceRecorder> recorder_;                // set once by Create
  const int cached_classes_;  // classes [0, cached_classes_) go through thread caches

  // The counters take their own cache lines: threads publishing large
  // blocks' bytes write them, the hot path only reads the fields around them.
  alignas(64) mutable PoolCounters counters_;
  alignas(64) PageMap pagemap_;
  Fencer fencer_;
  Arena arena_;
  SlabAllocator slabs_;
  ThreadCaches caches_;  // after the slab tier: destroyed (unregistered) first
  DiscardQueue discards_;
  std::atomic<bool> discard_supported_{true};
  RecordedStreams recorded_;
  ReleasedStreams released_;

  struct DeferredFree {
    void* ptr = nullptr;
    Stream stream = nullptr;
    StreamSet fences_on;  // slab blocks: every stream to fence
    FenceRef after;       // large blocks: waited for before the free (a page drop)
  };
  // What the current Sleep moved (empty while awake).
  static constexpr std::size_t kNotStaged = ~std::size_t{0};
  struct Slept {
    std::uintptr_t ptr;
    std::size_t bytes;                // the whole block
    std::uintptr_t span;              // its span's base: ranges never merge across spans
    std::size_t staged = kNotStaged;  // its offset in staging_, if copied there
    bool evicted = false;             // offloaded by eviction (Wake fetches it)
  };
  // Sleep and Wake's steps (pool_sleep.cc).
  // Reserves the staging buffer for `offload` and gives each block its
  // offset there; leaves them unstaged (evicted) where it cannot be had.
  absl::Status Stage(std::vector<Slept>& offload, Stream stream, SleepState* state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sleep_mu_);
  absl::Status Repopulate(const std::vector<Slept>& blocks, Stream stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sleep_mu_);
  // The frees of a sleeping pool are noted so Wake skips their blocks (which
  // may be somebody else's by then). On a backend whose pages do not
  // populate on touch (vmm), a slept block's dropped pages are populated
  // again before it can be reused; if they cannot be, the free fails (the
  // block stays allocated) with the backend's error.
  absl::Status NoteFreedAsleep(const void* ptr);
  // vmm: the slept blocks whose pages Sleep dropped, so a free while asleep
  // refills them; those already freed during the Sleep are refilled now.
  absl::Status KeepDropped(const std::vector<Slept>& slept) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sleep_mu_);
  absl::Status RefillPages(std::uintptr_t ptr, std::size_t bytes);
  // Frees stop noting themselves and the notes are dropped (the end of a
  // Wake, or a Sleep that failed).
  void StopNotingFrees();
  mutable Mutex pressure_mu_;
  std::shared_ptr<const Pool::PressureCallback> pressure_ ABSL_GUARDED_BY(pressure_mu_);
  std::atomic<bool> watermark_armed_{true};
  Residency residency_{BudgetsOf(options_), &counters_.host_bytes};
  EvictionsInFlight evicting_;  // the budget's victims being moved out now

  mutable Mutex sleep_mu_;
  bool asleep_ ABSL_GUARDED_BY(sleep_mu_) = false;
  std::vector<Slept> slept_ ABSL_GUARDED_BY(sleep_mu_);
  SleepState sleep_state_ ABSL_GUARDED_BY(sleep_mu_);
  Staging staging_ ABSL_GUARDED_BY(sleep_mu_){backend_.get()};
  // Blocks evicted by staging: block start -> its pinned slot.
  struct StagedOut {
    std::byte* slot;
    std::size_t bytes;
    FenceRef copied;   // deferred drop: the copy out, until the pages are dropped
    FenceRef dropped;  // deferred drop issued: after it (until seen done)
  };
  // Evictions whose page drops wait for their copies out (StageOut's
  // defer_drop), in order; the lock is taken before staged_mu_.
  struct DeferredDrop {
    FenceRef copied;
    Stream stream;
    std::vector<std::uintptr_t> blocks;
  };
  Mutex drops_mu_;
  std::vector<DeferredDrop> deferred_drops_ ABSL_GUARDED_BY(drops_mu_);
  std::atomic<std::size_t> deferred_count_{0};  // blocks whose drop is deferred or unseen
  HostCopies host_copies_{backend_.get()};
  mutable Mutex staged_mu_;  // taken alone
  absl::flat_hash_map<std::uintptr_t, StagedOut> staged_out_ ABSL_GUARDED_BY(staged_mu_);
  std::atomic<std::size_t> staged_out_count_{0};  // staged_out_.size(), read without the lock
  // Slots of blocks freed during a graph capture while their copy out may
  // still run (the host cannot wait then): given back by EndCapture, after
  // the copy.
  struct SlotAfterCopy {
    FenceRef copied;
    std::byte* slot;
    std::size_t bytes;
  };
  std::vector<SlotAfterCopy> slots_after_capture_ ABSL_GUARDED_BY(staged_mu_);
  // What the staging buffer holds since the last sleep that staged: the
  // blocks (address, bytes) in buffer order, of staging_'s generation
  // `staged_generation_` (SleepOptions::contents_unchanged).
  std::vector<std::pair<std::uintptr_t, std::size_t>> staged_layout_ ABSL_GUARDED_BY(sleep_mu_);
  std::uint64_t staged_generation_ ABSL_GUARDED_BY(sleep_mu_) = ~std::uint64_t{0};
  // Set from the start of Sleep to the end of Wake: frees note their blocks.
  std::atomic<bool> sleeping_{false};
  Mutex freed_asleep_mu_;  // after sleep_mu_
  absl::flat_hash_set<std::uintptr_t> freed_asleep_ ABSL_GUARDED_BY(freed_asleep_mu_);
  absl::flat_hash_map<std::uintptr_t, std::size_t> dropped_asleep_ ABSL_GUARDED_BY(freed_asleep_mu_);

  Mutex deferred_mu_;
  std::vector<DeferredFree> deferred_ ABSL_GUARDED_BY(deferred_mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_POOL_CORE_H_
