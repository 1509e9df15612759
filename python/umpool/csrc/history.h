// Memory history for torch.cuda.memory._record_memory_history and
// _dump_snapshot (memory_viz): the stack of each live block and a bounded
// trace of allocations, frees and out-of-memory events, per device, in
// PyTorch's own snapshot types. Off (the default), the allocation path pays
// one relaxed load.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "allocator.h"

namespace umpool_torch {

class History {
 public:
  static History& Get();

  // true while recording or while a trace tracker is attached.
  bool active() const { return active_.load(std::memory_order_relaxed); }

  void Configure(bool enabled, cca::CreateContextFn recorder, size_t max_entries,
                 cca::RecordContext when, bool clear, const std::vector<std::string>& skip);
  bool enabled() const;
  void AddTracker(cca::AllocatorTraceTracker tracker);

  void OnAlloc(c10::DeviceIndex device, void* ptr, size_t requested, cudaStream_t stream,
               c10::MempoolId_t pool);
  void OnFree(void* ptr);
  void OnOom(c10::DeviceIndex device, size_t requested, size_t device_free, cudaStream_t stream);

  // Segments of umpool's pools (umpool_visit_spans) in PyTorch's form, with
  // the stacks of live blocks, and the trace of each device.
  cca::SnapshotInfo Snapshot(c10::MempoolId_t pool, bool include_traces);

 private:
  struct Live {
    c10::DeviceIndex device;
    size_t requested;
    cudaStream_t stream;
    c10::MempoolId_t pool;
    std::shared_ptr<c10::GatheredContext> context;
  };
  void Trace(cca::TraceEntry::Action action, c10::DeviceIndex device, size_t addr, size_t size,
             cudaStream_t stream, c10::MempoolId_t pool,
             std::shared_ptr<c10::GatheredContext> context);

  std::atomic<bool> active_{false};
  mutable std::mutex mu_;
  bool enabled_ = false;
  cca::CreateContextFn recorder_ = nullptr;
  size_t max_entries_ = 0;
  cca::RecordContext when_ = cca::RecordContext::NEVER;
  std::set<cca::TraceEntry::Action> skip_;
  std::unordered_map<void*, Live> live_;
  std::vector<std::deque<cca::TraceEntry>> traces_;  // per device
  std::vector<cca::AllocatorTraceTracker> trackers_;
};

}  // namespace umpool_torch
