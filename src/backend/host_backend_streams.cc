// HostBackend's streams, events and completion: the model of stream ordering
// the CPU tests run against (work completes at once, or when the test says).
#include <utility>
#include <vector>

#include "src/backend/host_backend.h"

namespace umpool::internal {

absl::StatusOr<Stream> HostBackend::SideStream() {
  return reinterpret_cast<Stream>(std::uintptr_t{0x51de});
}

absl::StatusOr<Event> HostBackend::CreateEvent() {
  MutexLock lock(&mu_);
  Event e = reinterpret_cast<Event>(next_event_);
  next_event_ += 0x10;
  events_[e] = EventState{};
  return e;
}

void HostBackend::DestroyEvent(Event event) {
  MutexLock lock(&mu_);
  events_.erase(event);
}

HostBackend::StreamState& HostBackend::StreamLocked(Stream stream) { return streams_[stream]; }

absl::Status HostBackend::RecordEvent(Event event, Stream stream) {
  MutexLock lock(&mu_);
  auto it = events_.find(event);
  if (it == events_.end()) return absl::InvalidArgumentError("host backend: unknown event");
  if (destroyed_.contains(stream)) {
    ++destroyed_stream_uses_;
    return absl::FailedPreconditionError("host backend: event recorded on a destroyed stream");
  }
  StreamState& s = StreamLocked(stream);
  if (!manual_) s.completed = s.submitted;
  it->second = EventState{stream, s.submitted, true};
  counters_.event_records.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<bool> HostBackend::QueryEvent(Event event) {
  MutexLock lock(&mu_);
  counters_.event_queries.fetch_add(1, std::memory_order_relaxed);
  auto it = events_.find(event);
  if (it == events_.end()) return absl::InvalidArgumentError("host backend: unknown event");
  const EventState& e = it->second;
  if (!e.recorded) return true;  // like CUDA: a never-recorded event is complete
  return StreamLocked(e.stream).completed >= e.ticket;
}

absl::Status HostBackend::SynchronizeEvent(Event event) {
  MutexLock lock(&mu_);
  counters_.event_syncs.fetch_add(1, std::memory_order_relaxed);
  auto it = events_.find(event);
  if (it == events_.end()) return absl::InvalidArgumentError("host backend: unknown event");
  // The host waiting for the "GPU" is modelled as that work finishing.
  if (it->second.recorded) CompleteUpTo(it->second.stream, it->second.ticket);
  return absl::OkStatus();
}

absl::Status HostBackend::StreamWaitEvent(Stream stream, Event event) {
  MutexLock lock(&mu_);
  counters_.stream_waits.fetch_add(1, std::memory_order_relaxed);
  auto it = events_.find(event);
  if (it == events_.end()) return absl::InvalidArgumentError("host backend: unknown event");
  // Work submitted to `stream` from now on runs after the event's work:
  // modelled as a barrier item whose completion first completes the event's.
  if (it->second.recorded) {
    const Stream dep = it->second.stream;
    const std::uint64_t dep_ticket = it->second.ticket;
    StreamState& s = StreamLocked(stream);
    const std::uint64_t barrier = ++s.submitted;
    waits_[stream].push_back(Wait{barrier, dep, dep_ticket});
    if (!manual_) CompleteUpTo(stream, barrier);
  }
  return absl::OkStatus();
}

absl::Status HostBackend::Synchronize() {
  CompleteAll();
  return absl::OkStatus();
}

void HostBackend::SetManualCompletion(bool manual) {
  MutexLock lock(&mu_);
  manual_ = manual;
}

std::uint64_t HostBackend::Submit(Stream stream) {
  MutexLock lock(&mu_);
  StreamState& s = StreamLocked(stream);
  ++s.submitted;
  if (!manual_) s.completed = s.submitted;
  return s.submitted;
}

void HostBackend::CompleteUpTo(Stream stream, std::uint64_t ticket) {
  // Honour StreamWaitEvent barriers: work after a barrier completes only once
  // the waited-on work has.
  // Barriers at or below the completed ticket were honoured when it got
  // there: only the newer ones are walked (walking them all, again at every
  // level, took exponential time once streams waited on each other in turn).
  const std::uint64_t done = StreamLocked(stream).completed;
  if (done >= ticket) return;
  std::vector<Wait> due;
  if (auto w = waits_.find(stream); w != waits_.end()) {
    std::erase_if(w->second, [&](const Wait& wait) {
      if (wait.at_ticket > ticket) return false;
      if (wait.at_ticket > done) due.push_back(wait);
      return true;
    });
  }
  for (const Wait& wait : due) CompleteUpTo(wait.dep_stream, wait.dep_ticket);
  StreamState& s = StreamLocked(stream);
  if (s.completed < ticket) s.completed = std::min(ticket, s.submitted);
}

void HostBackend::Complete(Stream stream) {
  MutexLock lock(&mu_);
  CompleteUpTo(stream, StreamLocked(stream).submitted);
}

void HostBackend::CompleteAll() {
  MutexLock lock(&mu_);
  std::vector<std::pair<Stream, std::uint64_t>> all;
  for (const auto& [stream, state] : streams_) all.emplace_back(stream, state.submitted);
  for (const auto& [stream, submitted] : all) CompleteUpTo(stream, submitted);
}

bool HostBackend::IsComplete(Stream stream, std::uint64_t ticket) {
  MutexLock lock(&mu_);
  return StreamLocked(stream).completed >= ticket;
}

bool HostBackend::IsOrderedAfter(Stream later, Stream earlier, std::uint64_t ticket) {
  MutexLock lock(&mu_);
  return OrderedAfterLocked(later, StreamLocked(later).submitted, earlier, ticket, 0);
}

// Work of `later` up to ticket `upto` and after it runs after (earlier,
// ticket): completed, or a barrier of `later` at or before `upto` leads there.
bool HostBackend::OrderedAfterLocked(Stream later, std::uint64_t upto, Stream earlier,
                                     std::uint64_t ticket, int depth) {
  if (StreamLocked(earlier).completed >= ticket) return true;
  if (later == earlier) return upto >= ticket;
  if (depth > 8) return false;
  auto w = waits_.find(later);
  if (w == waits_.end()) return false;
  for (const Wait& wait : w->second) {
    if (wait.at_ticket <= upto &&
        OrderedAfterLocked(wait.dep_stream, wait.dep_ticket, earlier, ticket, depth + 1)) {
      return true;
    }
  }
  return false;
}

void HostBackend::FailNextMaps(int count) {
  MutexLock lock(&mu_);
  fail_maps_ = count;
}

void HostBackend::FailNextStaging(int count) {
  MutexLock lock(&mu_);
  fail_staging_ = count;
}

void HostBackend::DestroyStream(Stream stream) {
  MutexLock lock(&mu_);
  destroyed_.insert(stream);
}

void HostBackend::CreateStream(Stream stream) {
  MutexLock lock(&mu_);
  destroyed_.erase(stream);
}

std::uint64_t HostBackend::destroyed_stream_uses() const {
  MutexLock lock(&mu_);
  return destroyed_stream_uses_;
}

std::size_t HostBackend::populated_bytes() const {
  MutexLock lock(&mu_);
  return populated_.size() * kMapGranularity;
}

std::size_t HostBackend::mapped_bytes() const {
  MutexLock lock(&mu_);
  return mapped_bytes_;
}

}  // namespace umpool::internal
