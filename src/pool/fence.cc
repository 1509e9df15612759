#include "src/pool/fence.h"

#include <algorithm>

#include "src/base/check.h"

namespace umpool::internal {

Fencer::Fencer(Backend& backend) : backend_(backend) {}

Fencer::~Fencer() {
  absl::flat_hash_map<Stream, FenceRef> latest;
  {
    MutexLock lock(&mu_);
    latest.swap(latest_);
  }
  latest.clear();  // the deleters recycle the events (and take mu_)
  MutexLock lock(&mu_);
  UMPOOL_CHECK(outstanding_ == 0, "fences outlive their Fencer");
  for (Event e : spare_events_) backend_.DestroyEvent(e);
}

void Fencer::Recycle(Event event) {
  MutexLock lock(&mu_);
  --outstanding_;
  spare_events_.push_back(event);
}

absl::StatusOr<FenceRef> Fencer::FenceFor(Stream stream, std::uint64_t seq) {
  Event event = nullptr;
  {
    MutexLock lock(&mu_);
    auto it = latest_.find(stream);
    if (it != latest_.end() && it->second->covers_seq >= seq) return it->second;
    if (capturing()) {
      return absl::UnavailableError(
          "a CUDA graph capture is underway: no event is recorded until it ends");
    }
    if (!spare_events_.empty()) {
      event = spare_events_.back();
      spare_events_.pop_back();
    }
  }
  if (event == nullptr) {
    absl::StatusOr<Event> e = backend_.CreateEvent();
    if (!e.ok()) return e.status();
    event = *e;
  }
  // Read the sequence before recording: every push stamped <= covers happened
  // before this point, hence before the event was recorded on `stream`.
  const std::uint64_t covers = seq_.load(std::memory_order_acquire);
  absl::Status st = backend_.RecordEvent(event, stream);
  if (!st.ok()) {
    MutexLock lock(&mu_);
    spare_events_.push_back(event);
    return st;
  }
  recorded_.fetch_add(1, std::memory_order_relaxed);
  FenceRef fence(new Fence, [this](Fence* f) {
    Recycle(f->event);
    delete f;
  });
  fence->event = event;
  fence->stream = stream;
  fence->covers_seq = covers;
  FenceRef replaced;  // released after the lock: its deleter takes mu_
  MutexLock lock(&mu_);
  ++outstanding_;
  FenceRef& slot = latest_[stream];
  if (slot == nullptr || slot->covers_seq <= covers) {
    replaced = std::move(slot);
    slot = fence;
  }
  return fence;
}

void Fencer::Forget(Stream stream) {
  FenceRef dropped;  // released after the lock: its deleter takes mu_
  MutexLock lock(&mu_);
  auto it = latest_.find(stream);
  if (it == latest_.end()) return;
  dropped = std::move(it->second);
  latest_.erase(it);
}

absl::StatusOr<bool> Fencer::Poll(Fence& fence) {
  if (fence.done.load(std::memory_order_acquire)) return true;
  if (capturing()) return false;  // cudaEventQuery could invalidate the capture
  absl::StatusOr<bool> done = backend_.QueryEvent(fence.event);
  if (!done.ok()) return done.status();
  if (*done) fence.done.store(true, std::memory_order_release);
  return *done;
}

void Fencer::AddOutstanding(const Fences& fences, Fences* waits) {
  for (const FenceRef& f : fences) {
    absl::StatusOr<bool> done = Poll(*f);
    if (done.ok() && *done) continue;
    auto same = std::find_if(waits->begin(), waits->end(),
                             [&](const FenceRef& w) { return w->stream == f->stream; });
    if (same == waits->end()) {
      waits->push_back(f);
    } else if ((*same)->covers_seq < f->covers_seq) {
      *same = f;
    }
  }
}

absl::Status Fencer::Wait(Fence& fence) {
  if (fence.done.load(std::memory_order_acquire)) return absl::OkStatus();
  if (capturing()) {
    return absl::FailedPreconditionError("cannot wait for an event during a CUDA graph capture");
  }
  absl::Status st = backend_.SynchronizeEvent(fence.event);
  if (st.ok()) fence.done.store(true, std::memory_order_release);
  return st;
}

}  // namespace umpool::internal
