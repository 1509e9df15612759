// src/pool/fence.h: events that tell when a stream's past work is done.
//
// A Fence is one backend event recorded on one stream, shared by every block
// whose reuse waits for it. The Fencer records fences lazily and shares them:
// blocks are stamped with a sequence number when they are pushed to a central
// list, and a fence records the sequence number it covers (read before the
// event was recorded), so one event serves every list whose blocks were
// pushed before it. Events are recycled, never destroyed on the hot path.
#ifndef UMPOOL_SRC_POOL_FENCE_H_
#define UMPOOL_SRC_POOL_FENCE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "umpool/backend.h"

namespace umpool::internal {

struct Fence {
  Event event = nullptr;
  Stream stream = nullptr;
  std::uint64_t covers_seq = 0;  // covers pushes stamped <= covers_seq
  std::atomic<bool> done{false};
};

using FenceRef = std::shared_ptr<Fence>;
using Fences = absl::InlinedVector<FenceRef, 2>;

// When a range handed back between layers (an empty slab returned to its
// role's large heap) may be reused: at once on `stream` (on_stream), after
// every fence (fences), or by anyone (neither).
struct ReuseTerms {
  bool on_stream = false;
  Stream stream = nullptr;
  std::uint64_t seq = 0;  // on_stream: the stamp of the latest free on it
  absl::InlinedVector<FenceRef, 2> fences;
};

class Fencer {
 public:
  explicit Fencer(Backend& backend);
  ~Fencer();  // every FenceRef must be gone
  Fencer(const Fencer&) = delete;
  Fencer& operator=(const Fencer&) = delete;

  // A new sequence stamp for blocks pushed now. Lock-free.
  std::uint64_t Stamp() { return seq_.fetch_add(1, std::memory_order_acq_rel) + 1; }

  // A fence on `stream` covering every push stamped <= `seq`: the latest fence
  // on that stream if it covers `seq`, else a newly recorded one.
  absl::StatusOr<FenceRef> FenceFor(Stream stream, std::uint64_t seq);

  // true once the fence's work has completed; queries the backend at most
  // once per call and remembers completion. Never blocks.
  absl::StatusOr<bool> Poll(Fence& fence);
  // Blocks the host until the fence's work has completed.
  absl::Status Wait(Fence& fence);
  // Adds to *waits those of `fences` not complete yet (a poll error counts
  // as not complete), keeping one per stream: the newest, since a later
  // event on a stream completes after an earlier one. What a stream must
  // wait for on the device before it reuses memory behind them.
  void AddOutstanding(const Fences& fences, Fences* waits);

  // Drops the remembered latest fence of `stream` (ReleaseStream: the handle
  // may be destroyed, and reused by a new stream). Outstanding FenceRefs stay
  // valid: an event outlives the stream it was recorded on.
  void Forget(Stream stream);

  std::uint64_t events_recorded() const { return recorded_.load(std::memory_order_relaxed); }

  // While a CUDA graph capture is underway anywhere in the process, recording
  // or querying events may invalidate it (cudaStreamCaptureModeGlobal): then
  // FenceFor fails with Unavailable, Poll reports "not yet" for fences not
  // known to be done, and Wait fails with FailedPrecondition. Nested.
  void CaptureBegan() { captures_.fetch_add(1, std::memory_order_acq_rel); }
  void CaptureEnded() { captures_.fetch_sub(1, std::memory_order_acq_rel); }
  bool capturing() const { return captures_.load(std::memory_order_acquire) > 0; }

 private:
  void Recycle(Event event);

  Backend& backend_;
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<std::uint64_t> recorded_{0};
  std::atomic<int> captures_{0};
  Mutex mu_;
  absl::flat_hash_map<Stream, FenceRef> latest_ ABSL_GUARDED_BY(mu_);
  std::vector<Event> spare_events_ ABSL_GUARDED_BY(mu_);
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_FENCE_H_
