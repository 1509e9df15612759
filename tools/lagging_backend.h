// tools/lagging_backend.h: a backend whose events complete some ops late.
//
// The host backend completes every event as it is recorded; on a GPU an
// event takes microseconds on an idle stream (a replay makes tens of calls
// in that time) and as long as the queued kernels on a busy one. Placement
// that depends on when fences complete therefore differs between the host
// backend and the GPU (docs/arena-streams.md, "Pending blocks behind a stream
// wait"). LaggingBackend wraps a backend and makes each event complete
// `lag` ticks after it was recorded, the ticks being whatever the caller
// counts (umpool-replay: trace ops). Deterministic, unlike the GPU: a host
// replay with --event-lag shows what pending fences do to a trace. A host
// wait (SynchronizeEvent, Synchronize) completes what it waits for at once;
// StreamWaitEvent is passed through (the host backend runs work at once).
//
// Thread safety: one thread (the replay's).
#ifndef UMPOOL_TOOLS_LAGGING_BACKEND_H_
#define UMPOOL_TOOLS_LAGGING_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "umpool/backend.h"

namespace umpool_tools {

class LaggingBackend final : public umpool::Backend {
 public:
  using Backend = umpool::Backend;
  using Stream = umpool::Stream;
  using Event = umpool::Event;
  LaggingBackend(std::unique_ptr<Backend> inner, std::uint64_t lag, const std::uint64_t* tick)
      : inner_(std::move(inner)), lag_(lag), tick_(tick) {}

  umpool::BackendKind kind() const override { return inner_->kind(); }
  int device() const override { return inner_->device(); }
  bool PopulatesOnTouch() const override { return inner_->PopulatesOnTouch(); }
  std::string Describe() const override { return inner_->Describe() + " (events lag)"; }
  absl::StatusOr<std::size_t> AvailableBytes() override { return inner_->AvailableBytes(); }
  absl::StatusOr<std::size_t> TotalBytes() override { return inner_->TotalBytes(); }
  absl::StatusOr<void*> Map(std::size_t bytes) override { return inner_->Map(bytes); }
  absl::Status Unmap(void* p, std::size_t bytes) override { return inner_->Unmap(p, bytes); }
  absl::Status Advise(void* p, std::size_t bytes, const umpool::Advice& a) override {
    return inner_->Advise(p, bytes, a);
  }
  absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                        umpool::Location where, Stream stream) override {
    return inner_->Prefetch(ptrs, sizes, count, where, stream);
  }
  absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                       umpool::DiscardMode mode, Stream stream) override {
    return inner_->Discard(ptrs, sizes, count, mode, stream);
  }
  absl::StatusOr<void*> AllocateStaging(std::size_t bytes) override {
    return inner_->AllocateStaging(bytes);
  }
  void FreeStaging(void* p, std::size_t bytes) override { inner_->FreeStaging(p, bytes); }
  absl::Status Copy(void* dst, const void* src, std::size_t bytes, Stream s) override {
    return inner_->Copy(dst, src, bytes, s);
  }
  absl::Status CopyBack(void* dst, const void* src, std::size_t bytes, Stream s) override {
    return inner_->CopyBack(dst, src, bytes, s);
  }
  absl::StatusOr<Stream> SideStream() override { return inner_->SideStream(); }

  absl::StatusOr<Event> CreateEvent() override { return inner_->CreateEvent(); }
  void DestroyEvent(Event e) override {
    due_.erase(e);
    inner_->DestroyEvent(e);
  }
  absl::Status RecordEvent(Event e, Stream s) override {
    due_[e] = *tick_ + lag_;
    return inner_->RecordEvent(e, s);
  }
  absl::StatusOr<bool> QueryEvent(Event e) override {
    if (auto it = due_.find(e); it != due_.end() && *tick_ < it->second) return false;
    return inner_->QueryEvent(e);
  }
  absl::Status SynchronizeEvent(Event e) override {
    due_.erase(e);
    return inner_->SynchronizeEvent(e);
  }
  absl::Status StreamWaitEvent(Stream s, Event e) override { return inner_->StreamWaitEvent(s, e); }
  absl::Status Synchronize() override {
    due_.clear();
    return inner_->Synchronize();
  }
  bool IsCapturing(Stream s) override { return inner_->IsCapturing(s); }

 private:
  std::unique_ptr<Backend> inner_;
  const std::uint64_t lag_;
  const std::uint64_t* tick_;
  absl::flat_hash_map<Event, std::uint64_t> due_;  // recorded events: the tick they complete at
};

}  // namespace umpool_tools

#endif  // UMPOOL_TOOLS_LAGGING_BACKEND_H_
