// PoolCore: eviction by staging (RolePolicy::evict_by_staging) — a large
// block copied into pinned host memory (HostCopies) and its pages dropped,
// brought back by refilling the pages on the GPU and copying it in. Like
// Sleep, the host waits for the copies out before the pages are dropped
// (src/pool/sleep_batch.h says why).
#include <algorithm>
#include <utility>
#include <vector>

#include "src/pool/pool_core.h"
#include "src/pool/sleep_batch.h"

namespace umpool::internal {
namespace {

// Copies of blocks and their slots, adjacent ones (on both sides) merged
// into one copy: blocks taken in address order mostly get adjacent slots.
// Only within one segment and one pinned chunk: separate allocations may be
// adjacent in address space, and a copy across two is refused by CUDA
// (cudaErrorInvalidValue; found with KV spread over several segments).
struct CopyList {
  std::vector<std::byte*> dev, host;
  std::vector<std::size_t> bytes;
  std::vector<std::uintptr_t> segment;  // each run's segment (span base)
  void Add(void* d, std::byte* h, std::size_t n, std::uintptr_t seg, const HostCopies& chunks) {
    auto* dp = static_cast<std::byte*>(d);
    if (!dev.empty() && dev.back() + bytes.back() == dp && host.back() + bytes.back() == h &&
        segment.back() == seg && chunks.InOneChunk(host.back(), h)) {
      bytes.back() += n;
      return;
    }
    dev.push_back(dp);
    host.push_back(h);
    bytes.push_back(n);
    segment.push_back(seg);
  }
  absl::Status Run(Backend& backend, bool out, Stream stream) const {
    for (std::size_t i = 0; i < dev.size(); ++i) {
      absl::Status st = out ? backend.Copy(host[i], dev[i], bytes[i], stream)
                            : backend.Copy(dev[i], host[i], bytes[i], stream);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::uintptr_t PoolCore::SegmentBase(const void* block) const {
  const Span* span = pagemap_.Lookup(block);
  return span != nullptr ? span->base : 0;
}

bool PoolCore::EvictsByStaging(const void* block) const {
  const Span* span = pagemap_.Lookup(block);
  return span != nullptr && span->kind == SpanKind::kSegment &&
         options_.policy(span->role).evict_by_staging && DiscardsFor(span->role);
}

absl::Status PoolCore::StageOut(std::vector<void*>* ptrs, std::vector<std::size_t>* sizes,
                                Stream stream) {
  // Copies and host waits cannot be captured into a graph: during a capture
  // the blocks are left to the (skipped) migration, like any prefetch hint.
  if (fencer_.capturing() || backend_->IsCapturing(stream)) return absl::OkStatus();
  struct Out {
    void* p;
    std::size_t bytes;
    std::byte* slot;
  };
  std::vector<Out> out;
  // In address order, so that adjacent blocks get adjacent slots.
  std::vector<std::size_t> order(ptrs->size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return (*ptrs)[a] < (*ptrs)[b];
  });
  std::vector<void*> rest_ptrs;
  std::vector<std::size_t> rest_sizes;
  for (std::size_t i : order) {
    void* p = (*ptrs)[i];
    const std::size_t n = (*sizes)[i];
    bool staged = false;
    if (EvictsByStaging(p)) {
      {
        MutexLock lock(&staged_mu_);
        staged = staged_out_.contains(reinterpret_cast<std::uintptr_t>(p));  // out already
      }
      if (!staged) {
        if (absl::StatusOr<std::byte*> slot = host_copies_.Take(n); slot.ok()) {
          out.push_back(Out{p, n, *slot});
          staged = true;
        }
      }
    }
    if (!staged) {
      rest_ptrs.push_back(p);
      rest_sizes.push_back(n);
    }
  }
  *ptrs = std::move(rest_ptrs);
  *sizes = std::move(rest_sizes);
  if (out.empty()) return absl::OkStatus();
  CopyList copies;
  for (const Out& o : out) copies.Add(o.p, o.slot, o.bytes, SegmentBase(o.p), host_copies_);
  absl::Status st = copies.Run(*backend_, /*out=*/true, stream);
  if (!st.ok()) {
    (void)backend_->Synchronize();  // copies queued before the failure may still write
    for (const Out& o : out) host_copies_.Give(o.slot, o.bytes);
    return st;  // nothing dropped: the blocks stay where they are
  }
  // The host sees the copies done before any page is dropped (a fence of
  // the pool's: a recycled event; without one, the whole device).
  absl::StatusOr<FenceRef> fence = fencer_.FenceFor(stream, fencer_.Stamp());
  const absl::Status wait = fence.ok() ? fencer_.Wait(**fence) : backend_->Synchronize();
  if (!wait.ok()) {
    for (const Out& o : out) host_copies_.Give(o.slot, o.bytes);
    return wait;  // nothing dropped: the blocks stay where they are
  }
  PageBatch pages;
  for (const Out& o : out) {
    const Span* span = pagemap_.Lookup(o.p);
    pages.Add(reinterpret_cast<std::uintptr_t>(o.p), o.bytes, span != nullptr ? span->base : 0);
  }
  std::vector<std::size_t> discarded;
  absl::Status dropped = PageWork(*backend_, pages, /*wake=*/false, stream, &discarded);
  CountDiscard(discarded);
  {
    // Recorded even if the drop failed: the pages (kept or not) and the
    // copy agree, and a fetch refills and copies back either way.
    MutexLock lock(&staged_mu_);
    for (const Out& o : out) {
      staged_out_[reinterpret_cast<std::uintptr_t>(o.p)] = StagedOut{o.slot, o.bytes};
    }
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
  }
  return dropped;
}

absl::Status PoolCore::StageIn(std::vector<void*>* ptrs, std::vector<std::size_t>* sizes,
                               Stream stream) {
  if (staged_out_count_.load(std::memory_order_relaxed) == 0) return absl::OkStatus();
  struct In {
    void* p;
    StagedOut s;
  };
  std::vector<In> in;
  std::size_t keep = 0;
  {
    MutexLock lock(&staged_mu_);
    for (std::size_t i = 0; i < ptrs->size(); ++i) {
      void* p = (*ptrs)[i];
      auto it = staged_out_.find(reinterpret_cast<std::uintptr_t>(p));
      if (it != staged_out_.end()) {
        in.push_back(In{p, it->second});
        staged_out_.erase(it);
        continue;
      }
      (*ptrs)[keep] = p;
      (*sizes)[keep] = (*sizes)[i];
      ++keep;
    }
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
  }
  ptrs->resize(keep);
  sizes->resize(keep);
  if (in.empty()) return absl::OkStatus();
  if (fencer_.capturing() || backend_->IsCapturing(stream)) {
    MutexLock lock(&staged_mu_);
    for (const In& b : in) staged_out_[reinterpret_cast<std::uintptr_t>(b.p)] = b.s;
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
    return FetchInCapture();
  }
  PageBatch pages(!backend_->PopulatesOnTouch());
  for (const In& b : in) {
    const Span* span = pagemap_.Lookup(b.p);
    pages.Add(reinterpret_cast<std::uintptr_t>(b.p), b.s.bytes, span != nullptr ? span->base : 0);
  }
  std::vector<std::size_t> discarded;
  absl::Status st = PageWork(*backend_, pages, /*wake=*/true, stream, &discarded);
  CountDiscard(discarded);
  std::sort(in.begin(), in.end(), [](const In& a, const In& b) { return a.p < b.p; });
  CopyList copies;
  for (const In& b : in) copies.Add(b.p, b.s.slot, b.s.bytes, SegmentBase(b.p), host_copies_);
  if (st.ok()) st = copies.Run(*backend_, /*out=*/false, stream);
  if (!st.ok()) {
    // Not brought back: still out (the slots keep the contents; a later
    // fetch refills and copies again).
    MutexLock lock(&staged_mu_);
    for (const In& b : in) staged_out_[reinterpret_cast<std::uintptr_t>(b.p)] = b.s;
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
    return st;
  }
  std::vector<std::pair<std::byte*, std::size_t>> slots;
  for (const In& b : in) slots.emplace_back(b.s.slot, b.s.bytes);
  return host_copies_.GiveAfter(slots, stream);
}

absl::Status PoolCore::FetchInCapture() {
  return absl::FailedPreconditionError(
      "a block evicted by staging cannot be fetched during a CUDA graph capture (its copy back "
      "cannot be captured): fetch it before capturing");
}

absl::Status PoolCore::CheckFetchable(const std::vector<void*>& blocks, Stream stream) const {
  if (staged_out_count_.load(std::memory_order_relaxed) == 0 ||
      !(fencer_.capturing() || backend_->IsCapturing(stream))) {
    return absl::OkStatus();
  }
  MutexLock lock(&staged_mu_);
  for (void* b : blocks) {
    if (staged_out_.contains(reinterpret_cast<std::uintptr_t>(b))) return FetchInCapture();
  }
  return absl::OkStatus();
}

void PoolCore::ForgetStaged(const void* block) {
  StagedOut s{};
  {
    MutexLock lock(&staged_mu_);
    auto it = staged_out_.find(reinterpret_cast<std::uintptr_t>(block));
    if (it == staged_out_.end()) return;
    s = it->second;
    staged_out_.erase(it);
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
  }
  host_copies_.Give(s.slot, s.bytes);  // nothing reads it: its copy out was waited for
}

}  // namespace umpool::internal
