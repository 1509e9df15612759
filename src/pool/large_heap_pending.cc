// LargeHeap::TakeOrdered: a pending block handed over behind a stream wait.
//
// A block freed on one stream and needed on another waits for a fence (an
// event) on the first; until the event completes the block is pending and a
// search passes it by. On the GPU that is often: the pool's own prefetches
// and the caller's kernels are queued on the stream the event follows, and a
// request that found only pending blocks grew the pool (by how much depended
// on when the events completed, so a replay of the same trace reserved more
// in some runs than in others: docs/arena.md, "Pending blocks served behind
// a stream wait"). Instead, the requesting stream is made to wait for the
// block's fences on the device (cudaStreamWaitEvent: CUDA's stream-ordered
// allocator does the same when it reuses memory with internal dependencies)
// and gets the block at once; the host never waits.
#include <cstdint>

#include "src/pool/large_heap.h"

namespace umpool::internal {

LargeHeap::Taken LargeHeap::TakeOrdered(std::size_t bytes, Stream stream, std::size_t requested,
                                        Fencer& fencer, Order order, absl::Status* status) {
  MutexLock lock(&mu_);
  Unpark();
  LargeBlock* best = nullptr;
  BestFitSet* group = nullptr;
  const Fences* waits = nullptr;
  auto better = [&](const LargeBlock* b) {
    if (best == nullptr) return true;
    return fit_ == Fit::kFirst ? b->addr < best->addr : b->size < best->size;
  };
  Fences incomplete;
  free_.ForEachPending([&](BestFitSet& items, const Fences& fences) {
    auto consider = [&](LargeBlock* b) {
      if (b->bare || b->size < bytes || !better(b)) return;
      best = b;
      group = &items;
      waits = &fences;
    };
    if (fit_ == Fit::kFirst) {
      items.ForEach(consider);
    } else if (LargeBlock* b = items.BestFit(bytes); b != nullptr) {
      consider(b);
    }
  });
  if (best == nullptr) return {};
  for (const FenceRef& f : *waits) {
    absl::StatusOr<bool> done = fencer.Poll(*f);
    if (!done.ok() || !*done) incomplete.push_back(f);  // an error: wait for it anyway
  }
  if (absl::Status st = order(incomplete); !st.ok()) {
    status->Update(st);
    return {};
  }
  group->Erase(best);
  if (best->size - bytes >= MinRest(best)) group->Add(CutAt(best, bytes));  // pending as best was
  free_.DropEmptyPending();
  MarkLive(best, stream, requested);
  return Taken{reinterpret_cast<void*>(best->addr), best->size, false, 0};
}

}  // namespace umpool::internal
