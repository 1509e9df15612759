// src/pool/central_bin.h: the shared free lists of one (heap, size class).
//
// Free blocks are kept by the stream rules (stream_lists.h: on a stream,
// pending, ready), plus the never-carved tails of the bin's slabs. Take()
// looks at the caller's stream and the ready blocks, then fresh blocks, then
// other streams' blocks after fencing them (which succeeds at once only if
// those streams are idle). It never blocks the host and never calls the
// backend except to record or query events.
//
// Thread safety: all methods lock the bin's mutex; no other lock is taken
// while holding it except the Fencer's (lock order: bin -> fencer).
#ifndef UMPOOL_SRC_POOL_CENTRAL_BIN_H_
#define UMPOOL_SRC_POOL_CENTRAL_BIN_H_

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "src/base/mutex.h"
#include "src/pool/fence.h"
#include "src/pool/pagemap.h"
#include "src/pool/slab.h"
#include "src/pool/snapshot.h"
#include "src/pool/stream_lists.h"

namespace umpool::internal {

struct TakeResult {
  int count = 0;         // blocks written to `out`
  int cross_stream = 0;  // of which came from another stream after a fence
  absl::Status status;   // an event error (the search went on); count may be > 0
};

class CentralBin {
 public:
  CentralBin() = default;
  CentralBin(const CentralBin&) = delete;
  CentralBin& operator=(const CentralBin&) = delete;
  // The pool's page map (each free block's slab is looked up in it); set
  // once, before any other call.
  void Attach(const PageMap* pagemap) { pagemap_ = pagemap; }

  // Writes up to `max` blocks usable on `stream` to `out`.
  TakeResult Take(Stream stream, void** out, int max, Fencer& fencer);

  // After Take found nothing and no slab could be made without growing:
  // up to `max` blocks of the oldest pending group, for a stream that
  // `order` has made wait for that group's fences not yet complete (the
  // host does not wait). 0 if no block is pending or `order` fails (its
  // error in *status). Called with no lock of the bin held by the caller;
  // calls `order` under the bin's mutex.
  int TakeOrdered(void** out, int max, Fencer& fencer,
                  absl::FunctionRef<absl::Status(const Fences&)> order, absl::Status* status);

  // Adds a new slab and carves up to `max` of its blocks into `out` for `stream`.
  int AddSlabAndTake(Slab* slab, Stream stream, Fencer& fencer, void** out, int max);

  // Returns blocks freed on `stream`, stamped `seq` (Fencer::Stamp()).
  void Put(Stream stream, void* const* blocks, int n, std::uint64_t seq);
  // Returns blocks reusable by any stream now (their stream's work completed).
  void PutReady(void* const* blocks, int n);
  // Returns a block that may be reused once every fence has completed.
  void PutPending(Fences fences, void* block);

  // Removes the bin's empty slabs (every carved block free in this bin's
  // lists, none in a thread cache) and appends them to `out` with the terms
  // on which their range may be reused: the fences of the streams their
  // blocks were freed on (recorded now, lazily, as for any cross-stream
  // reuse) and of their pending blocks. With `wait` (Trim) every fence is
  // waited for first (host-blocking), so all terms come back "ready".
  // An event error leaves the bin unchanged and is returned.
  struct EmptySlab {
    Slab* slab;
    ReuseTerms terms;
  };
  // The `keep` lowest-addressed empty slabs stay.
  absl::Status TakeEmpty(Fencer& fencer, bool wait, std::vector<EmptySlab>* out,
                         std::size_t keep = 0);
  // How many of its slabs are empty now (read without the lock: a hint).
  int empty_slabs() const { return empty_slabs_.load(std::memory_order_relaxed); }
  // `stream`'s work has completed (ReleaseStream): its blocks become ready
  // and slabs bound to it are unbound.
  void ReleaseStream(Stream stream);

  std::int64_t slabs() const;
  // Blocks held free in this bin (all lists, plus never-carved blocks).
  std::int64_t free_blocks() const;
  // Appends every live block of the bin's slabs.
  template <class F>
  void ForEachSlab(F&& f) const {
    MutexLock lock(&mu_);
    for (const Slab* s : slabs_) f(*s);
  }
  // Verifies the bin's lists: every block belongs to one of its slabs, starts
  // a block, is in state kFree, and appears once. Aborts on violation.
  void CheckInvariants() const;
  // Appends a picture of each of the bin's slabs (block states read with
  // acquire loads; exact when no other thread is inside the pool).
  void Snapshot(std::vector<SpanSnapshot>* out) const;

 private:
  int Carve(Stream stream, Fencer& fencer, void** out, int max) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Slab* SlabOf(const void* block) const { return static_cast<Slab*>(pagemap_->SlabAt(block)); }
  // Adds `delta` to the in_bin count of each block's slab (blocks entering
  // or leaving the free lists). A batch's neighbours usually share a slab:
  // one page-map lookup and one update per run of them.
  void CountIn(void* const* blocks, int n, int delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Slab* s = nullptr;
    std::uint32_t run = 0;
    for (int i = 0; i < n; ++i) {
      const auto a = reinterpret_cast<std::uintptr_t>(blocks[i]);
      if (s == nullptr || !s->Contains(a)) {
        if (s != nullptr) AddInBin(s, run * static_cast<std::uint32_t>(delta));
        s = SlabOf(blocks[i]);
        run = 0;
      }
      ++run;
    }
    if (s != nullptr) AddInBin(s, run * static_cast<std::uint32_t>(delta));
  }
  void AddInBin(Slab* s, std::uint32_t d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Change(s, [&] { s->in_bin += d; });
  }
  static bool Empty(const Slab* s) { return s->in_bin == s->carved; }
  // Applies `f` (a change of s's carved or in_bin) and keeps empty_slabs_.
  template <class F>
  void Change(const Slab* s, F&& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool was = Empty(s);
    f();
    if (Empty(s) != was) empty_slabs_.fetch_add(was ? -1 : 1, std::memory_order_relaxed);
  }
  // Whether `stream` may take never-carved blocks of `slab` (see Slab::bound).
  bool Carvable(Slab* slab, Stream stream, Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What StreamLists calls with blocks whose fences completed: they join the
  // ready group. Called with mu_ held (from inside the StreamLists calls).
  auto ToReady() {
    return [this](BlockStack&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      free_.ready().Splice(std::move(blocks));
    };
  }

  const PageMap* pagemap_ = nullptr;
  mutable Mutex mu_;
  StreamLists<BlockStack> free_ ABSL_GUARDED_BY(mu_);
  std::vector<Slab*> slabs_ ABSL_GUARDED_BY(mu_);
  std::vector<Slab*> partial_ ABSL_GUARDED_BY(mu_);  // slabs with uncarved blocks
  // Slabs of slabs_ that are Empty(): written under mu_, read without it by
  // TakeEmpty (asked on every miss of the heap's large spaces, for every
  // class: a stale zero only delays a reclaim to the next miss).
  std::atomic<int> empty_slabs_{0};
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_CENTRAL_BIN_H_
