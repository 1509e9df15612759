#include "src/pool/discard_queue.h"

#include <algorithm>
#include <utility>

namespace umpool::internal {

bool DiscardQueue::Push(const PendingDiscard& d) {
  MutexLock lock(&mu_);
  waiting_.push_back(d);
  size_.store(waiting_.size(), std::memory_order_relaxed);
  return waiting_.size() >= kDiscardBatch;
}

std::vector<PendingDiscard> DiscardQueue::TakeAll() {
  std::vector<PendingDiscard> out;
  {
    MutexLock lock(&mu_);
    out.swap(waiting_);
    size_.store(0, std::memory_order_relaxed);
  }
  std::stable_sort(out.begin(), out.end(), [](const PendingDiscard& a, const PendingDiscard& b) {
    return std::less<Stream>()(a.stream, b.stream);
  });
  return out;
}

bool DiscardQueue::Contains(std::uintptr_t block) const {
  MutexLock lock(&mu_);
  return std::any_of(waiting_.begin(), waiting_.end(),
                     [block](const PendingDiscard& d) { return d.block == block; });
}

}  // namespace umpool::internal
