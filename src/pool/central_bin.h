// src/pool/central_bin.h: the shared free lists of one (role, size class).
//
// Free blocks live in one of three places here:
//   by_stream_ : freed on stream S, no fence yet: reusable on S only.
//   pending_   : waiting for fences (events) on one or more streams.
//   ready_     : every fence completed: reusable on any stream.
// plus the never-carved tails of the bin's slabs. Take() prefers, in order,
// the caller's stream, ready blocks, pending blocks whose fences completed,
// fresh blocks, and last other streams' blocks after fencing them (which
// succeeds at once only if those streams are idle). It never blocks the host
// and never calls the backend except to record or query events.
//
// Thread safety: all methods lock the bin's mutex; no other lock is taken
// while holding it except the Fencer's (lock order: bin -> fencer).
#ifndef UMPOOL_SRC_POOL_CENTRAL_BIN_H_
#define UMPOOL_SRC_POOL_CENTRAL_BIN_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "src/base/mutex.h"
#include "src/pool/fence.h"
#include "src/pool/pagemap.h"
#include "src/pool/slab.h"
#include "src/pool/snapshot.h"

namespace umpool::internal {

struct TakeResult {
  int count = 0;         // blocks written to `out`
  int cross_stream = 0;  // of which came from another stream after a fence
  absl::Status status;   // an event error; count may still be > 0
};

class CentralBin {
 public:
  CentralBin() = default;
  CentralBin(const CentralBin&) = delete;
  CentralBin& operator=(const CentralBin&) = delete;

  // Writes up to `max` blocks usable on `stream` to `out`.
  TakeResult Take(Stream stream, void** out, int max, Fencer& fencer);

  // Adds a new slab and carves up to `max` of its blocks into `out` for `stream`.
  int AddSlabAndTake(Slab* slab, Stream stream, Fencer& fencer, void** out, int max);

  // Returns blocks freed on `stream`, stamped `seq` (Fencer::Stamp()).
  void Put(Stream stream, void* const* blocks, int n, std::uint64_t seq);
  // Returns a block that may be reused once every fence has completed.
  void PutPending(absl::InlinedVector<FenceRef, 2> fences, void* block);

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
  absl::Status TakeEmpty(Fencer& fencer, const PageMap& pagemap, bool wait,
                         std::vector<EmptySlab>* out);

  std::int64_t slabs() const;
  // Blocks held free in this bin (all lists, plus never-carved blocks).
  std::int64_t free_blocks() const;
  // Verifies the bin's lists: every block belongs to one of its slabs, starts
  // a block, is in state kFree, and appears once. Aborts on violation.
  void CheckInvariants(const PageMap& pagemap) const;
  // Appends a picture of each of the bin's slabs (block states read with
  // acquire loads; exact when no other thread is inside the pool).
  void Snapshot(std::vector<SpanSnapshot>* out) const;

 private:
  struct StreamList {
    std::vector<void*> blocks;
    std::uint64_t max_seq = 0;
  };
  struct Pending {
    absl::InlinedVector<FenceRef, 2> fences;
    std::vector<void*> blocks;
  };

  int TakeFrom(std::vector<void*>& from, void** out, int max) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Carve(Stream stream, Fencer& fencer, void** out, int max) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `stream` may take never-carved blocks of `slab` (see Slab::bound).
  bool Carvable(Slab* slab, Stream stream, Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PollPending(Fencer& fencer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FenceOthers(Stream stream, Fencer& fencer, int* moved)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  absl::flat_hash_map<Stream, StreamList> by_stream_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<void*> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<Slab*> slabs_ ABSL_GUARDED_BY(mu_);
  std::vector<Slab*> partial_ ABSL_GUARDED_BY(mu_);  // slabs with uncarved blocks
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_CENTRAL_BIN_H_
