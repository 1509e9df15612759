// src/pool/evictions_in_flight.cc: blocks under eviction (evictions_in_flight.h).
#include "src/pool/evictions_in_flight.h"

namespace umpool::internal {

void EvictionsInFlight::Begin(const std::vector<void*>& blocks) {
  if (blocks.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (void* b : blocks) blocks_.insert(reinterpret_cast<std::uintptr_t>(b));
  count_.store(blocks_.size(), std::memory_order_release);
}

void EvictionsInFlight::End(const std::vector<void*>& blocks) {
  if (blocks.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (void* b : blocks) blocks_.erase(reinterpret_cast<std::uintptr_t>(b));
    count_.store(blocks_.size(), std::memory_order_release);
  }
  done_.notify_all();
}

bool EvictionsInFlight::AnyOf(absl::Span<void* const> blocks) const {
  for (void* b : blocks) {
    if (blocks_.contains(reinterpret_cast<std::uintptr_t>(b))) return true;
  }
  return false;
}

void EvictionsInFlight::WaitFor(absl::Span<void* const> blocks) const {
  if (count_.load(std::memory_order_acquire) == 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return !AnyOf(blocks); });
}

}  // namespace umpool::internal
