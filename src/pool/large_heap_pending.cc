// LargeHeap::OpenSearch: other streams' free blocks brought into a search;
// LargeHeap::AdoptPending: pending blocks made a stream's behind a stream wait;
// LargeHeap::ReleaseStream: a stream's free blocks made ready when it is gone.
//
// A block freed on one stream and needed on another waits for a fence (an
// event) on the first; until the event completes the block is pending and a
// search passes it by. On the GPU that is the common case, not the rare one:
// an event takes microseconds to complete on an idle stream and as long as
// the queued kernels on a busy one, and a request that found only pending
// blocks grew the pool (by how much depended on when the events completed:
// replays of one trace reserved more in some runs than in others, docs/
// arena-streams.md, "Pending blocks behind a stream wait"). Instead, the requesting
// stream waits for the fences on the device (cudaStreamWaitEvent; CUDA's
// stream-ordered pools reuse memory with such internal dependencies too) and
// the pending blocks become its own, as if freed on it: safe for it at once,
// for other streams after a fence on it, and merged with their neighbours as
// ready blocks would have been (a pending block never merges).
#include <algorithm>
#include <cstdint>

#include "src/pool/large_heap.h"

namespace umpool::internal {

bool LargeHeap::AdoptPending(Stream stream, Fencer& fencer, Order order, absl::Status* status) {
  MutexLock lock(&mu_);
  if (!free_.has_pending()) return false;
  Fences waits;  // one per stream
  free_.ForEachPending(
      [&](BestFitSet&, const Fences& fences) { fencer.AddOutstanding(fences, &waits); });
  if (absl::Status st = order(waits); !st.ok()) {
    status->Update(st);
    return false;
  }
  BestFitSet adopted;
  free_.ForEachPending([&](BestFitSet& items, const Fences&) { adopted.Splice(std::move(items)); });
  free_.DropEmptyPending();
  Adopt(std::move(adopted), stream, fencer.Stamp());
  return true;
}

void LargeHeap::OpenSearch(Stream stream, Fencer& fencer, absl::Status* status) {
  // Other streams' free blocks join the search once their streams are past
  // them: each of their groups gets a fence now (one event per group, none
  // when a fence already covers its stamp) and the poll adopts the groups
  // whose fences completed, merged with the caller's neighbours. Kept apart
  // until a search failed, a side stream's blocks split the main stream's
  // free ranges (docs/arena-streams.md, "Fences at every search"). The
  // caller's own blocks that another stream's search fenced stay its to
  // reuse at once (its work runs in order), passed or not. The groups past
  // their fences are adopted by the search's first poll (TakeReusable's
  // `first_to`). Not when the arena cannot adopt pending blocks
  // (reuse_pending_blocks off): a group fenced at every search then never
  // became ready while its stream kept searching and freeing (each search
  // fenced it again with a newer event; its stream took it back before the
  // event completed), so no block crossed streams or merged across them and
  // the space grew without bound (host replays, events 1-10 trace ops late:
  // 1.9-17.7x peak live; docs/arena-streams.md, "No fences at every search
  // without stream waits").
  if (fence_at_search_ && !fencer.capturing()) status->Update(free_.FenceOthers(stream, fencer));
  free_.TakeOwnPending(stream, Adopter(stream, fencer));
}

void LargeHeap::Adopt(BestFitSet&& blocks, Stream stream, std::uint64_t seq) {
  blocks.MarkPending();  // none merges before it is filed (MakeReady's rule)
  // A block between live neighbours (or a segment's ends) merges with nothing:
  // it moves into the stream's group as it is, in one step. Most do (a free
  // block's free neighbours merged with it unless their terms differ): a
  // group that moves between two streams' searches each step was re-filed
  // block by block, ~50 ns a search on the one-role serving traces.
  auto alone = [](const LargeBlock* b) {
    return (b->prev == nullptr || b->prev->live) && (b->next == nullptr || b->next->live);
  };
  blocks.MoveIf(free_.OnStream(stream, seq), alone, [stream](LargeBlock* b) {
    b->where = Where::kStream;
    b->stream = stream;
  });
  while (LargeBlock* b = blocks.PopFirst()) {
    b->where = Where::kStream;
    b->stream = stream;
    InsertFree(b, seq);
  }
}

void LargeHeap::ReleaseStream(Stream stream) {
  MutexLock lock(&mu_);
  Unpark();
  // Its work on live blocks is done too: their frees need no fence on it.
  for (auto& [addr, b] : live_) {
    auto& rec = b->recorded;
    rec.erase(std::remove(rec.begin(), rec.end(), stream), rec.end());
  }
  free_.ReadyStream(stream, [this](BestFitSet&& blocks) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    MakeReady(std::move(blocks));
  });
}

}  // namespace umpool::internal
