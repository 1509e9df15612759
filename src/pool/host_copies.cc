#include "src/pool/host_copies.h"

#include <algorithm>
#include <utility>

namespace umpool::internal {
namespace {

constexpr std::size_t kSlotAlign = 4096;

std::size_t SlotBytes(std::size_t bytes) { return (bytes + kSlotAlign - 1) & ~(kSlotAlign - 1); }

}  // namespace

HostCopies::~HostCopies() {
  MutexLock lock(&mu_);
  ReapLocked(/*wait=*/true);
  for (const Chunk& c : chunks_) backend_->FreeStaging(c.base, c.bytes);
}

absl::StatusOr<std::byte*> HostCopies::Take(std::size_t bytes) {
  const std::size_t want = SlotBytes(bytes);
  MutexLock lock(&mu_);
  ReapLocked(/*wait=*/false);
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second >= want && (best == free_.end() || it->second < best->second)) best = it;
  }
  if (best == free_.end()) {
    absl::StatusOr<FreeMap::iterator> added = AddChunkLocked(std::max(kChunkBytes, want));
    if (!added.ok()) return added.status();
    best = *added;
  }
  std::byte* slot = best->first;
  const std::size_t rest = best->second - want;
  free_.erase(best);
  if (rest > 0) free_.emplace(slot + want, rest);
  used_ += want;
  return slot;
}

absl::Status HostCopies::Reserve(std::size_t bytes) {
  MutexLock lock(&mu_);
  while (held_ < bytes) {
    if (absl::StatusOr<FreeMap::iterator> added = AddChunkLocked(kChunkBytes); !added.ok()) {
      return added.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<HostCopies::FreeMap::iterator> HostCopies::AddChunkLocked(std::size_t bytes) {
  absl::StatusOr<void*> p = backend_->AllocateStaging(bytes);
  if (!p.ok()) return p.status();
  chunks_.push_back(Chunk{static_cast<std::byte*>(*p), bytes});
  held_ += bytes;
  return free_.emplace(static_cast<std::byte*>(*p), bytes).first;
}

void HostCopies::Give(std::byte* slot, std::size_t bytes) {
  MutexLock lock(&mu_);
  GiveLocked(slot, bytes);
}

void HostCopies::GiveLocked(std::byte* slot, std::size_t bytes) {
  const std::size_t n = SlotBytes(bytes);
  used_ -= n;
  auto it = free_.emplace(slot, n).first;
  // Coalesce with the neighbours in the same chunk (chunks are separate
  // allocations: ranges of two may touch if the allocator placed them so,
  // but a slot must stay within one chunk).
  if (auto next = std::next(it); next != free_.end() && it->first + it->second == next->first &&
                                 SameChunk(it->first, next->first)) {
    it->second += next->second;
    free_.erase(next);
  }
  if (it != free_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first && SameChunk(prev->first, it->first)) {
      prev->second += it->second;
      free_.erase(it);
    }
  }
}

bool HostCopies::InOneChunk(const std::byte* a, const std::byte* b) const {
  MutexLock lock(&mu_);
  return SameChunk(a, b);
}

bool HostCopies::SameChunk(const std::byte* a, const std::byte* b) const {
  for (const Chunk& c : chunks_) {
    const bool in_a = a >= c.base && a < c.base + c.bytes;
    const bool in_b = b >= c.base && b < c.base + c.bytes;
    if (in_a || in_b) return in_a && in_b;
  }
  return false;
}

absl::Status HostCopies::GiveAfter(const std::vector<std::pair<std::byte*, std::size_t>>& slots,
                                   Stream stream) {
  if (slots.empty()) return absl::OkStatus();
  absl::StatusOr<Event> e = backend_->CreateEvent();
  if (e.ok()) {
    if (absl::Status st = backend_->RecordEvent(*e, stream); !st.ok()) {
      backend_->DestroyEvent(*e);
      e = st;
    }
  }
  if (!e.ok()) {
    // No event: wait for the stream's copies on the host instead.
    if (absl::Status st = backend_->Synchronize(); !st.ok()) return st;
    MutexLock lock(&mu_);
    for (const auto& [slot, bytes] : slots) GiveLocked(slot, bytes);
    return absl::OkStatus();
  }
  MutexLock lock(&mu_);
  pending_.push_back(Pending{*e, slots});
  return absl::OkStatus();
}

void HostCopies::ReapLocked(bool wait) {
  for (std::size_t i = 0; i < pending_.size();) {
    Pending& p = pending_[i];
    bool done = true;
    if (wait) {
      (void)backend_->SynchronizeEvent(p.event);
    } else {
      absl::StatusOr<bool> q = backend_->QueryEvent(p.event);
      done = !q.ok() || *q;  // a failed query: the event is unusable, its work ended
    }
    if (!done) {
      ++i;
      continue;
    }
    backend_->DestroyEvent(p.event);
    for (const auto& [slot, bytes] : p.slots) GiveLocked(slot, bytes);
    pending_[i] = std::move(pending_.back());
    pending_.pop_back();
  }
}

std::size_t HostCopies::ReleaseEmpty() {
  MutexLock lock(&mu_);
  ReapLocked(/*wait=*/true);
  std::size_t freed = 0;
  for (std::size_t i = 0; i < chunks_.size();) {
    const Chunk c = chunks_[i];
    auto it = free_.find(c.base);
    if (it == free_.end() || it->second != c.bytes) {
      ++i;
      continue;
    }
    free_.erase(it);
    backend_->FreeStaging(c.base, c.bytes);
    held_ -= c.bytes;
    freed += c.bytes;
    chunks_[i] = chunks_.back();
    chunks_.pop_back();
  }
  return freed;
}

std::size_t HostCopies::held_bytes() const {
  MutexLock lock(&mu_);
  return held_;
}

std::size_t HostCopies::used_bytes() const {
  MutexLock lock(&mu_);
  return used_;
}

}  // namespace umpool::internal
