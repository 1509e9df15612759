// History: memory history (stacks of live blocks, a bounded trace) and
// PyTorch snapshots of umpool's pools.
#include "history.h"

#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <chrono>

namespace umpool_torch {
namespace {

using Action = cca::TraceEntry::Action;

bool ParseAction(const std::string& name, Action* out) {
  static const std::pair<const char*, Action> kNames[] = {
      {"alloc", Action::ALLOC},           {"free_requested", Action::FREE_REQUESTED},
      {"free_completed", Action::FREE_COMPLETED}, {"segment_alloc", Action::SEGMENT_ALLOC},
      {"segment_free", Action::SEGMENT_FREE},     {"segment_map", Action::SEGMENT_MAP},
      {"segment_unmap", Action::SEGMENT_UNMAP},   {"snapshot", Action::SNAPSHOT},
      {"oom", Action::OOM}};
  for (const auto& [n, a] : kNames) {
    if (name == n) {
      *out = a;
      return true;
    }
  }
  return false;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Every span of a device's pools, copied out of the visitor.
struct Span {
  umpool_span_info info;
  std::vector<umpool_block_run> runs;
};

void Collect(void* ctx, const umpool_span_info* s) {
  auto* out = static_cast<std::vector<Span>*>(ctx);
  out->push_back(Span{*s, std::vector<umpool_block_run>(s->blocks, s->blocks + s->block_count)});
  out->back().info.blocks = nullptr;
}

}  // namespace

History& History::Get() {
  static History* h = new History;  // never destroyed
  return *h;
}

void History::Configure(bool enabled, cca::CreateContextFn recorder, size_t max_entries,
                        cca::RecordContext when, bool clear,
                        const std::vector<std::string>& skip) {
  // Bad input changes nothing: the names are checked before any state is.
  decltype(skip_) skipped;
  for (const std::string& name : skip) {
    Action a;
    UMPOOL_TORCH_CHECK(ParseAction(name, &a), "umpool: unknown trace action '", name, "' to skip");
    skipped.insert(a);
  }
  std::lock_guard<std::mutex> lock(mu_);
  enabled_ = enabled;
  recorder_ = recorder;
  max_entries_ = enabled ? std::max<size_t>(max_entries, 1) : 0;
  when_ = when;
  skip_ = std::move(skipped);
  if (clear || !enabled) {
    for (auto& t : traces_) t.clear();
  }
  if (!enabled) live_.clear();
  active_.store(enabled_ || !trackers_.empty(), std::memory_order_relaxed);
}

bool History::enabled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return enabled_;
}

void History::AddTracker(cca::AllocatorTraceTracker tracker) {
  std::lock_guard<std::mutex> lock(mu_);
  trackers_.push_back(std::move(tracker));
  active_.store(true, std::memory_order_relaxed);
}

void History::Trace(Action action, c10::DeviceIndex device, size_t addr, size_t size,
                    cudaStream_t stream, c10::MempoolId_t pool,
                    std::shared_ptr<c10::GatheredContext> context) {
  if (skip_.count(action) != 0) return;
  // The entry's time is a union: umpool stores wall-clock microseconds
  // (what snapshots carry), not the approximate clock PyTorch converts later.
  cca::TraceEntry e(action, device, addr, size, stream, pool, /*time=*/0, std::move(context));
  e.time_.t_ = NowMicros();
  for (const auto& tracker : trackers_) tracker(e);
  if (!enabled_ || max_entries_ <= 1 || device < 0) return;
  if (traces_.size() <= static_cast<size_t>(device)) traces_.resize(device + 1);
  std::deque<cca::TraceEntry>& t = traces_[device];
  if (t.size() >= max_entries_) t.pop_front();
  t.push_back(std::move(e));
}

void History::OnAlloc(c10::DeviceIndex device, void* ptr, size_t requested, cudaStream_t stream,
                      c10::MempoolId_t pool) {
  std::shared_ptr<c10::GatheredContext> context;
  cca::CreateContextFn recorder = nullptr;
  cca::RecordContext when = cca::RecordContext::NEVER;
  {
    std::lock_guard<std::mutex> lock(mu_);
    recorder = recorder_;
    when = when_;
  }
  // Stacks are gathered outside the lock (it can take microseconds).
  if (recorder != nullptr && when != cca::RecordContext::NEVER) context = recorder();
  std::lock_guard<std::mutex> lock(mu_);
  if (enabled_) live_[ptr] = Live{device, requested, stream, pool, context};
  Trace(Action::ALLOC, device, reinterpret_cast<size_t>(ptr), requested, stream, pool,
        when >= cca::RecordContext::ALLOC ? context : nullptr);
}

void History::OnFree(void* ptr) {
  std::shared_ptr<c10::GatheredContext> context;
  cca::CreateContextFn recorder = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (when_ == cca::RecordContext::ALL) recorder = recorder_;
  }
  if (recorder != nullptr) context = recorder();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return;  // allocated before recording started
  const Live l = it->second;
  live_.erase(it);
  const auto addr = reinterpret_cast<size_t>(ptr);
  Trace(Action::FREE_REQUESTED, l.device, addr, l.requested, l.stream, l.pool, context);
  Trace(Action::FREE_COMPLETED, l.device, addr, l.requested, l.stream, l.pool, context);
}

void History::OnOom(c10::DeviceIndex device, size_t requested, size_t device_free,
                    cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  Trace(Action::OOM, device, device_free, requested, stream, {0, 0}, nullptr);
}

cca::SnapshotInfo History::Snapshot(c10::MempoolId_t pool, bool include_traces) {
  cca::SnapshotInfo info{};
  const int devices = c10::cuda::device_count();
  const bool one_pool = pool.first != 0 || pool.second != 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (int d = 0; d < devices; ++d) {
    std::vector<Span> spans;
    (void)umpool_visit_spans(d, &Collect, &spans);
    // Slabs, by base: they are expanded into their blocks inside the
    // slab-space segment that holds them.
    std::unordered_map<uint64_t, const Span*> slabs;
    for (const Span& s : spans) {
      if (s.info.is_slab) slabs[s.info.base] = &s;
    }
    for (const Span& s : spans) {
      if (s.info.is_slab) continue;
      const c10::MempoolId_t owner{s.info.pool_id_hi, s.info.pool_id_lo};
      if (one_pool && owner != pool) continue;
      // A segment's bare runs ('B': pages given back) hold no memory: the
      // picture shows the populated pieces between them as segments, the
      // way PyTorch shows expandable segments' mapped parts.
      cca::SegmentInfo seg;
      auto start = [&](uint64_t address) {
        seg = cca::SegmentInfo();
        seg.device = static_cast<c10::DeviceIndex>(d);
        seg.address = address;
        seg.is_large = !s.info.is_slab_space;
        seg.owner_private_pool_id = owner;
      };
      auto finish = [&] {
        if (seg.total_size > 0) info.segments.push_back(std::move(seg));
      };
      start(s.info.base);
      auto add = [&](uint64_t addr, uint64_t bytes, bool live, uint64_t requested) {
        seg.total_size += bytes;
        cca::BlockInfo b;
        b.size = bytes;
        b.requested_size = live ? requested : 0;
        b.allocated = live;
        b.active = live;
        if (live) {
          auto it = live_.find(reinterpret_cast<void*>(addr));
          if (it != live_.end()) b.context_when_allocated = it->second.context;
          seg.allocated_size += bytes;
          seg.active_size += bytes;
          seg.requested_size += requested;
        }
        // Free neighbours are one free block, as PyTorch's own segments show.
        if (!live && !seg.blocks.empty() && !seg.blocks.back().allocated) {
          seg.blocks.back().size += bytes;
        } else {
          seg.blocks.push_back(std::move(b));
        }
      };
      auto is_live = [](const umpool_block_run& r) { return r.state == 'L' || r.state == 'R'; };
      for (const umpool_block_run& r : s.runs) {
        const uint64_t addr = s.info.base + r.offset;
        if (r.state == 'B') {
          finish();
          start(addr + r.bytes * r.count);
          continue;
        }
        const bool live = is_live(r);
        auto slab = s.info.is_slab_space && live ? slabs.find(addr) : slabs.end();
        if (slab == slabs.end()) {
          add(addr, r.bytes * r.count, live, r.requested);
          continue;
        }
        for (const umpool_block_run& b : slab->second->runs) {
          const bool block_live = is_live(b);
          for (uint32_t i = 0; i < b.count; ++i) {
            add(addr + b.offset + i * b.bytes, b.bytes, block_live, b.requested / b.count);
          }
        }
      }
      finish();
    }
  }
  if (include_traces) {
    info.device_traces.resize(devices);
    for (int d = 0; d < devices && d < static_cast<int>(traces_.size()); ++d) {
      for (const cca::TraceEntry& e : traces_[d]) {
        if (!one_pool || e.mempool_ == pool) info.device_traces[d].push_back(e);
      }
    }
  }
  return info;
}

// --- The allocator's hooks ----------------------------------------------------

cca::SnapshotInfo UmpoolAllocator::snapshot(c10::MempoolId_t mempool_id, bool include_traces) {
  return History::Get().Snapshot(mempool_id, include_traces);
}

bool UmpoolAllocator::isHistoryEnabled() { return History::Get().enabled(); }

void UmpoolAllocator::recordHistory(bool enabled, cca::CreateContextFn context_recorder,
                                    size_t alloc_trace_max_entries, cca::RecordContext when,
                                    bool clearHistory,
                                    const std::vector<std::string>& skip_actions) {
  History::Get().Configure(enabled, context_recorder, alloc_trace_max_entries, when, clearHistory,
                           skip_actions);
}

void UmpoolAllocator::attachAllocatorTraceTracker(cca::AllocatorTraceTracker tracker) {
  History::Get().AddTracker(std::move(tracker));
}

}  // namespace umpool_torch
