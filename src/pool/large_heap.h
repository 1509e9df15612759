// src/pool/large_heap.h: a space of segments split into blocks, best or first fit.
//
// Used twice per heap: a role's large space (user blocks above the role's slab_max_bytes, 512 B
// multiples) and the slab spaces (2 MiB-multiple slab ranges). Each segment is split into
// address-ordered blocks; free ones sit in the StreamLists groups (stream_lists.h): freed on a
// stream, pending, or ready. Take's best-fit search first brings in other streams' free blocks
// (OpenSearch), is best fit over the caller's stream group and the ready group, joins neighbours
// of those groups (TakeJoined), then does both again once other streams' groups are fenced (see
// Fit for the variants); the rest of a split stays free. A freed block merges with free
// neighbours whose reuse terms allow it: two ready blocks; a ready block and a block freed on
// stream S (the result is S's); two blocks freed on the same stream. Pending blocks never merge.
//
// The fast path (docs/arena.md, "The parked block"): the block freed last (with no RecordStream
// streams) is parked whole, outside the groups and unmerged, and the next Take of its size on its
// stream gets it back without a search, unless, in a tail-last space, a free block below it is
// usable on that stream (the search carves that room from its front). Anything else that looks for
// free memory first files the parked block like any free (Unpark); so does the next park.
//
// Thread safety: every method takes the heap's mutex (large allocations are
// rare and expensive next to it). Lock order: heap -> fencer.
#ifndef UMPOOL_SRC_POOL_LARGE_HEAP_H_
#define UMPOOL_SRC_POOL_LARGE_HEAP_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "src/pool/best_fit_set.h"
#include "src/pool/fence.h"
#include "src/pool/segment.h"
#include "src/pool/snapshot.h"
#include "src/pool/stream_lists.h"
#include "umpool/pool.h"

namespace umpool::internal {

class LargeHeap {
 public:
  // How Take picks among the free blocks usable on the caller's stream:
  //   kBest  : the smallest block that holds the request; if none does
  //            alone, the fewest bytes of usable neighbours (TakeJoined).
  //   kBestTailLast : kBest, but the free tail of a segment that can still
  //            grow serves only when nothing else does, even joined or fenced
  //            (RolePolicy::tail_last; docs/arena-cycles.md, "The tail last").
  //   kFirst : the lowest-addressed run of usable neighbours (one block or more) that holds
  //            it, segments in the order the space got them. For a space whose blocks are all
  //            freed and taken again every step (the big-slab space): a step that repeats places
  //            its blocks where the step before did (docs/arena-cycles.md, "First fit for big
  //            slabs").
  enum class Fit : std::uint8_t { kBest, kBestTailLast, kFirst };
  // Blocks are multiples of `quantum`; a free block is split only when at least `min_split` bytes
  // would be left over (else the caller gets it all). `holds_slabs`: its blocks are slab ranges.
  LargeHeap(std::size_t quantum, std::size_t min_split, bool holds_slabs, Fit fit = Fit::kBest)
      : quantum_(quantum), min_split_(min_split), holds_slabs_(holds_slabs), fit_(fit) {}
  ~LargeHeap();
  void set_fit(Fit fit) { fit_ = fit; }  // before first use only
  // Take's search fences other streams' groups first (OpenSearch); off where none is adopted.
  void set_fence_at_search(bool on) { fence_at_search_ = on; }  // before first use only
  LargeHeap(const LargeHeap&) = delete;
  LargeHeap& operator=(const LargeHeap&) = delete;
  bool holds_slabs() const { return holds_slabs_; }

  struct Taken {
    void* ptr = nullptr;        // nullptr: nothing fits, the heap must grow
    std::size_t bytes = 0;      // the block's size: `bytes`, or more (a rest too small to split)
    bool cross_stream = false;  // it came from the ready group
    std::uint64_t seq = 0;      // own stream group's stamp: reusable at once on it only
  };
  // A block of `bytes` (a multiple of the quantum) for `stream`, allocated for `requested` bytes.
  // Event errors go to *status; the search goes on.
  Taken Take(std::size_t bytes, Stream stream, std::size_t requested, Fencer& fencer,
             absl::Status* status);
  // Step 3 of a search (stream_lists.h), for a request nothing free serves now: every pending
  // block (fences not all completed) becomes `stream`'s, as if freed on it, once `order` has made
  // the stream wait on the device for those fences (the newest per stream; no host wait). They
  // merge with their neighbours like any free block of `stream`'s, and the caller takes again.
  // `order` is called under the heap's mutex; false (nothing moved) when nothing is pending or
  // `order` fails (its error goes to *status).
  using Order = absl::FunctionRef<absl::Status(const Fences& fences)>;
  bool AdoptPending(Stream stream, Fencer& fencer, Order order, absl::Status* status);
  // Adds a fresh segment (its populated part one free block) and carves
  // `bytes` from its front for `stream`.
  Taken AddSegmentAndTake(Segment* segment, std::size_t bytes, Stream stream,
                          std::size_t requested);
  // Populates `addr`, `n` bytes: the front of `segment`'s reserve (and the bare block ending its
  // populated part, if any). Called under the heap's mutex (lock order: heap -> arena's grow lock).
  using Populate = absl::FunctionRef<absl::Status(Segment* segment, std::uintptr_t addr,
                                                  std::size_t n)>;
  // Grows one segment's populated part into its reserve and takes `bytes` from the free block that
  // ends it, for `stream`: the segment whose free tail (usable on `stream`) leaves the fewest bytes
  // to populate (2 MiB multiples; at least `step` where the reserve has them, the rest staying
  // free; a bare tail refilled is `stream`'s: Unbare). Nothing taken (ptr nullptr) when no
  // reserve is large enough or `populate` fails (its error goes to *status).
  Taken ExtendAndTake(std::size_t bytes, Stream stream, std::size_t requested, std::size_t step,
                      Fencer& fencer, Populate populate, absl::Status* status);
  // The bytes ExtendAndTake would populate for `bytes` on `stream` (a bare tail's refill included,
  // `step` not); SIZE_MAX: no segment can grow so.
  std::size_t ExtensionPages(std::size_t bytes, Stream stream);
  // Carves exactly [p, p + bytes) out of a free block for `stream` (restoring a checkpoint: the
  // block had this address before). Bare blocks the range touches are refilled whole first
  // (`refill`, whose error is returned). FailedPrecondition when that range is not wholly inside
  // one free block of this heap; if its free block is not reusable on `stream` yet, waits for it
  // (host-blocking).
  absl::Status TakeAt(std::uintptr_t p, std::size_t bytes, Stream stream, std::size_t requested,
                      Fencer& fencer, Populate refill);

  // Pages given back before the arena populates more (docs/arena.md, "Bare blocks"). A range of
  // whole pages.
  struct PageRange {
    std::uintptr_t addr = 0;
    std::size_t bytes = 0;
  };
  using Drop = absl::FunctionRef<absl::Status(const std::vector<PageRange>& ranges)>;
  // Makes bare the whole 2 MiB pages of ready free blocks and, with `own_stream`, of blocks freed
  // on `stream` (then `drop` must queue on `stream`, after the work that last used them), among
  // those freed no later than `freed_by` (a tick of DroppableAges): the ranges free the longest
  // first (the largest first among equals), until at least `want` bytes (all of them if fewer).
  // Calls `drop` with them under the heap's mutex (nothing changes if it fails, and no one can take
  // them before it returns), then files them as bare blocks. With `keep_tails`, a free block ending
  // a segment that can still grow stays (the space's growth will extend it); so does a block
  // overlapping `keep` (the pages a request is about to take: BareShortfall). Returns the bytes
  // given back (0: none, `drop` not called).
  absl::StatusOr<std::size_t> Depopulate(Stream stream, bool own_stream, std::size_t want,
                                         bool keep_tails, PageRange keep, Drop drop,
                                         std::uint64_t freed_by = kAnyAge);
  static constexpr std::uint64_t kAnyAge = ~std::uint64_t{0};
  // What Depopulate would consider, as (freed_at tick, whole-page bytes) pairs appended to *out:
  // the arena picks one age limit across spaces.
  void DroppableAges(Stream stream, bool own_stream, bool keep_tails, PageRange keep,
                     std::vector<std::pair<std::uint64_t, std::size_t>>* out);
  // The streams other than `but` holding free blocks freed on them and not fenced yet (a budget's
  // give-back drops them on their own stream).
  std::vector<Stream> StreamsHoldingFrees(Stream but);
  // Fences the free blocks of streams other than `stream` (an event on each) and makes ready those
  // whose work has completed. Never blocks.
  void ReadyOtherStreams(Stream stream, Fencer& fencer);
  // Serving `bytes` on `stream` from bare pages: the fewest bare bytes to refill, taking a bare
  // block alone or joined with the free populated blocks either side of it (reusable on `stream`),
  // and in *keep the range of those blocks (to keep populated until TakeBare). 0: no bare block can
  // serve it.
  std::size_t BareShortfall(std::size_t bytes, Stream stream, PageRange* keep);
  // Takes what BareShortfall found (looking again): `refill` populates the bare pages the block
  // needs (under the heap's mutex), and the bare block, joined with those populated free blocks, is
  // handed out as a live block of `bytes` for `stream`; the rest stays free, `stream`'s
  // (Unbare), and pages not refilled stay bare. Nothing taken when no bare block can serve it
  // or `refill` fails (its error goes to *status).
  Taken TakeBare(std::size_t bytes, Stream stream, std::size_t requested, Fencer& fencer,
                 Populate refill, absl::Status* status);
  std::size_t bare_bytes() const;  // bytes in bare blocks

  // Slab ranges in a large space (RolePolicy::slab_space_max_bytes; large_heap_slabs.cc): 2 MiB-
  // aligned whole pages, live blocks marked LargeBlock::slab. TakeSlabRange carves `bytes` for
  // `stream` from the smallest free block usable on it now that holds them aligned (nothing taken
  // when none does). TrimToSlab makes the live block at `p`, just taken for `stream`, such a range:
  // its first aligned `bytes` stay live, the rest is freed on `stream` (stamp `seq`); returns the
  // range's start. slab_range_bytes: the bytes of such ranges now (part of bytes()).
  Taken TakeSlabRange(std::size_t bytes, Stream stream, Fencer& fencer);
  std::uintptr_t TrimToSlab(std::uintptr_t p, std::size_t bytes, Stream stream, std::uint64_t seq);
  std::size_t slab_range_bytes() const { return slab_bytes_.load(std::memory_order_relaxed); }

  struct Freed {
    std::size_t bytes = 0;
    std::size_t requested = 0;
    Stream stream = nullptr;  // the stream it was freed on
  };
  // Frees the block at `p`, last used on `stream` (nullopt: the stream it was allocated for).
  // InvalidArgument: not a block start of this heap. FailedPrecondition: already free. Unavailable
  // (nothing changed): the block was named by RecordStream and a graph capture is underway, so its
  // fences cannot be recorded yet.
  absl::StatusOr<Freed> Free(std::uintptr_t p, std::optional<Stream> stream, Fencer& fencer);
  absl::Status RecordStream(std::uintptr_t p, Stream stream);
  // Frees the live block at `p` (an empty slab's range) on `terms`. Aborts if `p` is not a live
  // block start (an internal error, not user input).
  void GiveBack(std::uintptr_t p, ReuseTerms terms);
  // A live block's role (else BlockInfo says its segment's), and the live bytes so named: shared
  // spaces' blocks, and those RestoreLiveBlocks puts back.
  void SetRole(void* p, Role role);
  std::size_t role_live_bytes(Role role) const {
    return role_live_[static_cast<int>(role)].load(std::memory_order_relaxed);
  }
  // The live block starting at `p`.
  absl::StatusOr<BlockInfo> Block(std::uintptr_t p) const;
  // The streams that may use the live block starting at `p`: the one it was allocated for, then
  // those RecordStream named (empty if `p` is not a live block start).
  absl::InlinedVector<Stream, 2> UsedOn(std::uintptr_t p) const;
  // Block() for a block about to be discarded and freed; FailedPrecondition if RecordStream named
  // other streams (they may still read it) or if the pool never evicted any of it (its pages are
  // resident: nothing to gain).
  absl::StatusOr<BlockInfo> DiscardableBlock(std::uintptr_t p) const;
  // Notes that the pool evicted (some of) the live block starting at `p`.
  void MarkEvicted(std::uintptr_t p);
  // The live block containing p (p may be interior).
  absl::StatusOr<BlockInfo> Containing(std::uintptr_t p) const;
  // Appends every live block.
  void LiveBlocks(std::vector<BlockInfo>* out) const;

  // Removes and returns the smallest wholly free segment of `min_bytes` to `max_bytes` with no
  // reserve, ready or freed on `stream` (then *terms says so, for AdoptSegment), polling pending
  // fences first; nullptr if none.
  Segment* StealFreeSegment(std::size_t min_bytes, std::size_t max_bytes, Stream stream,
                            Fencer& fencer, ReuseTerms* terms);
  // Cuts the end off the largest reserve of at least `min_bytes` (half of it, or `min_bytes` if
  // more): that segment can no longer grow into it, and the caller makes it a segment of its own
  // (sharing the mapping).
  struct Cut {
    Segment* donor = nullptr;
    std::uintptr_t base = 0;
    std::size_t bytes = 0;
  };
  std::optional<Cut> CutReserve(std::size_t min_bytes);
  // Takes a wholly free segment from another heap, free on `terms`.
  void AdoptSegment(Segment* segment, const ReuseTerms& terms);
  // Waits for every pending fence, then moves every segment that is entirely free into `empty` (the
  // caller unmaps them). A segment holding bare blocks goes only if `may_release_bare` says so (its
  // blocks are not kept: it must be unmapped, not adopted again).
  absl::Status ReleaseFree(Fencer& fencer, std::vector<Segment*>* empty,
                           absl::FunctionRef<bool(const Segment*)> may_release_bare);
  // `stream`'s work has completed (ReleaseStream): its free blocks are ready, and live blocks no
  // longer wait for it (RecordStream).
  void ReleaseStream(Stream stream);

  std::int64_t segments() const;
  // Populated bytes of its segments (slab ranges included). Approximate without the lock.
  std::size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Bytes its segments may grow to (populated and reserves).
  std::size_t mapped_bytes() const { return mapped_.load(std::memory_order_relaxed); }
  std::size_t free_bytes() const;
  // Address order, sizes, no two mergeable neighbours, group membership. Aborts.
  void CheckInvariants() const;
  // Appends a picture of each segment: its blocks in address order.
  void Snapshot(std::vector<SpanSnapshot>* out) const;

 private:
  using Where = LargeBlock::Where;
  static bool CanMerge(const LargeBlock* a, const LargeBlock* b);
  // Free and reusable at once on `stream`: ready, or freed on `stream`.
  // (A parked block is neither: it is reusable only through the fast path.)
  static bool ReusableOn(const LargeBlock* b, Stream stream) {
    return !b->live && (b->where == Where::kReady ||
                        (b->where == Where::kStream && b->stream == stream));
  }
  // A block a run of neighbours for `stream` may hold (FindJoin, FindFirstFit): populated (not
  // bare) and reusable at once on `stream`.
  static bool InRun(const LargeBlock* b, Stream stream) {
    return b != nullptr && !b->bare && ReusableOn(b, stream);
  }
  BestFitSet& SetOf(LargeBlock* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The live block starting at p, or nullptr (a parked block keeps its index entry, not live).
  LargeBlock* FindLive(std::uintptr_t p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Files the parked block, if any, like any block freed on its stream.
  void Unpark() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Parks `b` (live, no recorded streams), freed on `stream` at `seq`; files the one parked before.
  void Park(LargeBlock* b, Stream stream, std::uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Registers a segment as one block covering it (not yet in a group).
  LargeBlock* AddSegment(Segment* segment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A block record: a spare one when there is (a split and the merge that undoes it then
  // allocate nothing), else a new one.
  LargeBlock* NewBlock() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Recycle(LargeBlock* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr std::size_t kSpareBlocks = 8;
  // Drops a leaving segment's block pointers and its bytes from the totals.
  void Forget(Segment* segment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Joins `hi` (free, out of its group) onto `lo`, its lower neighbour.
  void Absorb(LargeBlock* lo, LargeBlock* hi) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Merges a free block (where/stream set) with its neighbours and files it.
  void InsertFree(LargeBlock* b, std::uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cuts `b` (out of any set) at `at` bytes from its start: the new block
  // [b->addr + at, end) keeps b's terms and is returned, unfiled.
  LargeBlock* CutAt(LargeBlock* b, std::size_t at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The free clock: a tick each time a freed block is filed (LargeBlock::freed_at).
  static std::uint64_t NextFreeTick();
  // Calls fn(block, its whole pages) for each free block Depopulate may give back (see there).
  template <typename Fn>
  void ForEachDroppable(Stream stream, bool own_stream, bool keep_tails, PageRange keep, Fn fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A bare block and the free populated neighbours a request of `bytes` on
  // `stream` would join it with (nullptr: none), and the bare bytes to refill.
  struct BareJoin {
    LargeBlock* lo = nullptr;
    LargeBlock* bare = nullptr;
    LargeBlock* hi = nullptr;
    std::size_t refill = 0;
    std::size_t bytes = 0;  // what the three hold together
  };
  BareJoin FindBareJoin(std::size_t bytes, Stream stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The segment whose growth in place serves `bytes` with the fewest new
  // pages (*best_need, starting at SIZE_MAX), or null.
  Segment* BestExtension(std::size_t bytes, Stream stream, std::size_t* best_need)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Files a bare block, merged with bare neighbours.
  void InsertBare(LargeBlock* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the bare block `b` (out of the bare set) a populated block of `stream`'s, which has just
  // refilled its pages, and raises that stream's group stamp to a new one of `fencer`'s
  // (large_heap_bare.cc): the pages were dropped after the work that last used them, and other
  // streams reuse them past a fence on `stream` recorded after the refill (BareBlocksTest:
  // TheRestOf{LargeBlockRefilledByOneStream,PagesRefilledForAnotherStream}WaitsFor*).
  void Unbare(LargeBlock* b, Stream stream, Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Files the blocks of a group whose fences completed (one by one, each
  // merging with neighbours already ready).
  void MakeReady(BestFitSet&& blocks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Files blocks as `stream`'s, as if freed on it (stamp `seq`), merged with its
  // free neighbours (AdoptPending); Adopter: as a search's first-poll callback.
  void Adopt(BestFitSet&& blocks, Stream stream, std::uint64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  auto Adopter(Stream stream, Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return [this, stream, &fencer](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      Adopt(std::move(blocks), stream, fencer.Stamp());
    };
  }
  // The first step of Take's best-fit search for `stream` (large_heap_pending.cc):
  // the other streams' groups fenced, the caller's own fenced blocks taken back
  // (TakeReusable's first poll then adopts the groups past their fences).
  void OpenSearch(Stream stream, Fencer& fencer, absl::Status* status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The least rest worth splitting off `b`: min_split, or a quantum where
  // the rest would end the populated part of a segment that can grow.
  std::size_t MinRest(const LargeBlock* b) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Splits `b` so it has `bytes`, the rest staying free on b's terms.
  void Split(LargeBlock* b, std::size_t bytes, std::size_t min_rest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes free block `b` out of its group, splits `bytes` off its front and
  // hands them out; `t` carries the reuse terms.
  Taken Carve(LargeBlock* b, std::size_t bytes, Stream stream, std::size_t requested, Taken t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkLive(LargeBlock* b, Stream stream, std::size_t requested)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkSlab(LargeBlock* b, Stream stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // live, slab
  // Consecutive free blocks, `lo` to `hi`, each reusable on the stream of a
  // request that none of them serves alone (large_heap_join.cc).
  struct Join {
    LargeBlock* lo = nullptr;
    LargeBlock* hi = nullptr;
    explicit operator bool() const { return lo != nullptr; }
  };
  // The fewest bytes of such blocks that hold `bytes` (lo nullptr: none).
  Join FindJoin(std::size_t bytes, Stream stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fit::kFirst: the lowest-addressed run of one or more such blocks that
  // holds `bytes` (lo nullptr: none).
  Join FindFirstFit(std::size_t bytes, Stream stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a free block below `lo` (in segment order) waits for another
  // stream: one freed on it, or pending.
  bool HeldBelow(const LargeBlock* lo, Stream stream) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Take for Fit::kFirst: FindFirstFit before other streams are fenced,
  // then after, when nothing was found or when HeldBelow.
  Taken TakeFirstFit(std::size_t bytes, Stream stream, std::size_t requested, Fencer& fencer,
                     absl::Status* status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // kBestTailLast's last resort: the smallest usable free tail that holds `bytes` (or none).
  Taken TakeTail(std::size_t bytes, Stream stream, std::size_t requested)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Joins the run `j` and carves `bytes` for `stream` from it.
  Taken TakeJoin(Join j, std::size_t bytes, Stream stream, std::size_t requested)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Joins what FindJoin found and carves `bytes` for `stream` from it (ptr
  // nullptr: nothing to join). The joined block is `stream`'s when any part
  // was (Taken::seq its group's stamp); what the request leaves of a ready
  // last block stays ready.
  Taken TakeJoined(std::size_t bytes, Stream stream, std::size_t requested)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The parked block when it serves `bytes` on `stream` whole (as Carve
  // would hand it out), taken off the spot and live again; else nullptr.
  LargeBlock* TakeParked(std::size_t bytes, Stream stream, std::size_t requested)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Diagnose(std::uintptr_t p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BlockInfo InfoOf(const LargeBlock* b) const;
  void ForgetRole(LargeBlock* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::size_t quantum_;
  const std::size_t min_split_;
  const bool holds_slabs_;
  Fit fit_;
  bool fence_at_search_ = true;
  std::atomic<std::size_t> bytes_{0};
  std::array<std::atomic<std::size_t>, kNumRoles> role_live_{};  // SetRole's blocks, by role
  std::atomic<std::size_t> mapped_{0};
  std::atomic<std::size_t> slab_bytes_{0};  // slab_range_bytes()
  mutable Mutex mu_;
  StreamLists<BestFitSet> free_ ABSL_GUARDED_BY(mu_);
  BestFitSet bare_ ABSL_GUARDED_BY(mu_);  // bare blocks (never in free_)
  std::atomic<std::size_t> bare_total_{0};
  // Live blocks by address, and the parked block (not live).
  absl::flat_hash_map<std::uintptr_t, LargeBlock*> live_ ABSL_GUARDED_BY(mu_);
  LargeBlock* parked_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::uint64_t parked_seq_ ABSL_GUARDED_BY(mu_) = 0;  // the Fencer stamp of its free
  std::vector<Segment*> segments_ ABSL_GUARDED_BY(mu_);
  std::vector<LargeBlock*> spare_blocks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_LARGE_HEAP_H_
