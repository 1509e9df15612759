// src/backend/host_backend.h: plain host memory with host-side streams/events.
//
// The backend CI runs the pool on. Memory comes from anonymous mmap (nothing
// is committed until touched). Streams are any handle values; each has a
// count of submitted and completed "work items". By default completion is
// automatic (every event is complete as soon as it is recorded). A test can
// switch to manual completion and then decide when work finishes, which is how
// the stream rules are checked without a GPU.
#ifndef UMPOOL_SRC_BACKEND_HOST_BACKEND_H_
#define UMPOOL_SRC_BACKEND_HOST_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "src/base/mutex.h"
#include "umpool/backend.h"

namespace umpool::internal {

class HostBackend final : public Backend {
 public:
  // `capacity_bytes` 0 = half of physical memory. `populate_on_request`:
  // memory behaves as the vmm backend's (PopulatesOnTouch false): mapped
  // inaccessible (PROT_NONE), made accessible by Prefetch to the device or
  // Discard(kRefill) per 2 MiB page a range touches (contents kept: what was
  // populated stays as it was), inaccessible and zeroed again by
  // Discard(kDrop) (whole 2 MiB pages), Prefetch to the host refused. A pool
  // that touches, or hands out, memory it did not populate crashes the test
  // (SIGSEGV): how CI checks the pool's vmm rules without a GPU.
  explicit HostBackend(std::size_t capacity_bytes = 0, bool populate_on_request = false);
  ~HostBackend() override;

  BackendKind kind() const override { return BackendKind::kHost; }
  bool PopulatesOnTouch() const override { return !populate_on_request_; }
  int device() const override { return 0; }
  std::string Describe() const override;
  absl::StatusOr<std::size_t> AvailableBytes() override;
  absl::StatusOr<std::size_t> TotalBytes() override;

  absl::StatusOr<void*> Map(std::size_t bytes) override;
  absl::Status Unmap(void* ptr, std::size_t bytes) override;
  absl::Status Advise(void* ptr, std::size_t bytes, const Advice& advice) override;
  absl::Status Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                        Location where, Stream stream) override;
  using Backend::Prefetch;
  absl::Status Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                       DiscardMode mode, Stream stream) override;
  absl::StatusOr<void*> AllocateStaging(std::size_t bytes) override;
  void FreeStaging(void* ptr, std::size_t bytes) override;
  absl::Status Copy(void* dst, const void* src, std::size_t bytes, Stream stream) override;
  // A fixed handle no caller's stream uses (work on it runs at once, like all).
  absl::StatusOr<Stream> SideStream() override;

  absl::StatusOr<Event> CreateEvent() override;
  void DestroyEvent(Event event) override;
  absl::Status RecordEvent(Event event, Stream stream) override;
  absl::StatusOr<bool> QueryEvent(Event event) override;
  absl::Status SynchronizeEvent(Event event) override;
  absl::Status StreamWaitEvent(Stream stream, Event event) override;
  absl::Status Synchronize() override;

  // --- Test controls -------------------------------------------------------
  // Manual completion: work submitted to a stream stays incomplete until
  // Complete/CompleteAll (or a host-blocking synchronize) says otherwise.
  void SetManualCompletion(bool manual);
  // Enqueues one work item on `stream` (a stand-in for a kernel launch) and
  // returns its ticket (1, 2, ...).
  std::uint64_t Submit(Stream stream);
  // Completes all work submitted on `stream` so far.
  void Complete(Stream stream);
  void CompleteAll();
  // true when work item `ticket` of `stream` has completed.
  bool IsComplete(Stream stream, std::uint64_t ticket);
  // true when work submitted to `later` from now on runs after work item
  // `ticket` of `earlier`: it has completed, or `later` waits on it (a
  // StreamWaitEvent barrier not yet passed), directly or through other
  // streams' barriers.
  bool IsOrderedAfter(Stream later, Stream earlier, std::uint64_t ticket);
  // A destroyed stream: recording an event on it fails (FailedPrecondition;
  // CUDA would crash) and is counted. CreateStream makes the handle valid
  // again (CUDA reuses handle values).
  void DestroyStream(Stream stream);
  void CreateStream(Stream stream);
  std::uint64_t destroyed_stream_uses() const;
  // Makes the next Map calls fail with ResourceExhausted (fault injection).
  void FailNextMaps(int count);
  // Makes the next AllocateStaging calls fail with ResourceExhausted.
  void FailNextStaging(int count);
  std::size_t mapped_bytes() const;
  // populate_on_request: the bytes of the 2 MiB pages accessible now (what
  // vmm memory would hold on the GPU); 0 otherwise.
  std::size_t populated_bytes() const;

 private:
  struct StreamState {
    std::uint64_t submitted = 0;
    std::uint64_t completed = 0;
  };
  struct Wait {  // StreamWaitEvent: item `at_ticket` waits for dep's `dep_ticket`
    std::uint64_t at_ticket;
    Stream dep_stream;
    std::uint64_t dep_ticket;
  };
  struct EventState {
    Stream stream = nullptr;
    std::uint64_t ticket = 0;  // complete when stream's completed >= ticket
    bool recorded = false;
  };

  StreamState& StreamLocked(Stream stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompleteUpTo(Stream stream, std::uint64_t ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool OrderedAfterLocked(Stream later, std::uint64_t upto, Stream earlier, std::uint64_t ticket,
                          int depth) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether mappings (adjacent ones together) cover [lo, hi).
  bool CoveredLocked(std::uintptr_t lo, std::uintptr_t hi) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // populate_on_request: [lo, hi) made accessible (true) or not, every 2 MiB
  // page it touches (accessible) or lies wholly in (not).
  absl::Status Protect(std::uintptr_t lo, std::uintptr_t hi, bool accessible);

  const std::size_t capacity_bytes_;
  const bool populate_on_request_;
  mutable Mutex mu_;
  bool manual_ ABSL_GUARDED_BY(mu_) = false;
  int fail_maps_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_staging_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t mapped_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // populate_on_request: the 2 MiB pages accessible now (populated_bytes).
  absl::flat_hash_set<std::uintptr_t> populated_ ABSL_GUARDED_BY(mu_);
  // The ranges mapped now, [start -> end): a discard outside them
  // is refused (a pool bug would otherwise zero the process's own memory):
  // CoveredLocked.
  std::map<std::uintptr_t, std::uintptr_t> ranges_ ABSL_GUARDED_BY(mu_);
  // The staging buffers now, [start -> end). Copy refuses a range that
  // starts in a mapping or a staging buffer and runs past its end, as CUDA
  // refuses a copy across two allocations: WithinOneLocked.
  std::map<std::uintptr_t, std::uintptr_t> staging_ ABSL_GUARDED_BY(mu_);
  bool WithinOneLocked(std::uintptr_t lo, std::size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::flat_hash_map<Stream, StreamState> streams_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Stream, std::vector<Wait>> waits_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Event, EventState> events_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<Stream> destroyed_ ABSL_GUARDED_BY(mu_);
  std::uint64_t destroyed_stream_uses_ ABSL_GUARDED_BY(mu_) = 0;
  std::uintptr_t next_event_ ABSL_GUARDED_BY(mu_) = 0x1000;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_HOST_BACKEND_H_
