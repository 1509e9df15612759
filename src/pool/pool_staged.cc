// PoolCore: eviction by staging (RolePolicy::evict_by_staging) — a large
// block copied into pinned host memory (HostCopies) and its pages dropped,
// brought back by refilling the pages on the GPU and copying it in. Like
// Sleep, the pages are dropped only once the host has seen the copies out
// done (src/pool/sleep_batch.h says why): at once for a budget's victims and
// the pressure path, which need the memory now; for an engine's eviction
// (PrefetchBlocks to the host) by a later staging call, so the host does not
// wait (deferred drops). A block fetched before its drop ran comes back
// without copies: its pages still hold it.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
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
  std::vector<std::uintptr_t> span;  // each run's span (SpanBase)
  void Add(void* d, std::byte* h, std::size_t n, std::uintptr_t in_span, const HostCopies& chunks) {
    auto* dp = static_cast<std::byte*>(d);
    if (!dev.empty() && dev.back() + bytes.back() == dp && host.back() + bytes.back() == h &&
        span.back() == in_span && chunks.InOneChunk(host.back(), h)) {
      bytes.back() += n;
      return;
    }
    dev.push_back(dp);
    host.push_back(h);
    bytes.push_back(n);
    span.push_back(in_span);
  }
  // By the SMs where the backend moves copies beside kernels so
  // (PoolOptions::staging_copies_by_sms), else by the copy engines.
  absl::Status Run(Backend& backend, bool out, Stream stream, bool by_sms) const {
    for (std::size_t i = 0; i < dev.size(); ++i) {
      void* dst = out ? static_cast<void*>(host[i]) : dev[i];
      const void* src = out ? static_cast<const void*>(dev[i]) : host[i];
      absl::Status st = by_sms ? backend.CopyBeside(dst, src, bytes[i], stream)
                               : backend.Copy(dst, src, bytes[i], stream);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::uintptr_t PoolCore::SpanBase(const void* block) const {
  const Span* span = pagemap_.Lookup(block);
  return span != nullptr ? span->base : 0;
}

bool PoolCore::EvictsByStaging(const void* block) const {
  const Span* span = pagemap_.Lookup(block);
  return span != nullptr && span->kind == SpanKind::kSegment &&
         options_.policy(span->role).evict_by_staging && DiscardsFor(span->role);
}

absl::Status PoolCore::StageOut(std::vector<void*>* ptrs, std::vector<std::size_t>* sizes,
                                Stream stream, bool defer_drop) {
  // Copies and host waits cannot be captured into a graph: during a capture
  // the blocks are left to the (skipped) migration, like any prefetch hint.
  if (fencer_.capturing() || backend_->IsCapturing(stream)) return absl::OkStatus();
  DropDeferred(/*wait=*/false);
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
  for (const Out& o : out) copies.Add(o.p, o.slot, o.bytes, SpanBase(o.p), host_copies_);
  absl::Status st = copies.Run(*backend_, /*out=*/true, stream, options_.staging_copies_by_sms);
  if (!st.ok()) {
    (void)backend_->Synchronize();  // copies queued before the failure may still write
    for (const Out& o : out) host_copies_.Give(o.slot, o.bytes);
    return st;  // nothing dropped: the blocks stay where they are
  }
  // The host sees the copies done before any page is dropped (a fence of
  // the pool's: a recycled event; without one, the whole device).
  absl::StatusOr<FenceRef> fence = fencer_.FenceFor(stream, fencer_.Stamp());
  if (defer_drop && fence.ok()) {
    MutexLock deferred_lock(&drops_mu_);
    DeferredDrop d{*fence, stream, {}};
    {
      MutexLock lock(&staged_mu_);
      for (const Out& o : out) {
        const auto p = reinterpret_cast<std::uintptr_t>(o.p);
        staged_out_[p] = StagedOut{o.slot, o.bytes, *fence, nullptr};
        d.blocks.push_back(p);
      }
      staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
    }
    deferred_count_.fetch_add(out.size(), std::memory_order_relaxed);
    deferred_drops_.push_back(std::move(d));
    return absl::OkStatus();
  }
  const absl::Status wait = fence.ok() ? fencer_.Wait(**fence) : backend_->Synchronize();
  if (!wait.ok()) {
    for (const Out& o : out) host_copies_.Give(o.slot, o.bytes);
    return wait;  // nothing dropped: the blocks stay where they are
  }
  PageBatch pages;
  for (const Out& o : out) pages.Add(reinterpret_cast<std::uintptr_t>(o.p), o.bytes, SpanBase(o.p));
  std::vector<std::size_t> discarded;
  absl::Status dropped = PageWork(*backend_, pages, /*wake=*/false, stream, &discarded);
  CountDiscard(discarded);
  {
    // Recorded even if the drop failed: the pages (kept or not) and the
    // copy agree, and a fetch refills and copies back either way.
    MutexLock lock(&staged_mu_);
    for (const Out& o : out) {
      staged_out_[reinterpret_cast<std::uintptr_t>(o.p)] = StagedOut{o.slot, o.bytes, nullptr, nullptr};
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
  // Blocks whose deferred drop has not run: their pages still hold them.
  absl::flat_hash_set<std::uintptr_t> intact;
  if (deferred_count_.load(std::memory_order_relaxed) != 0) {
    MutexLock deferred_lock(&drops_mu_);
    DropDeferredLocked(/*wait=*/false);
    for (void* p : *ptrs) {
      const auto b = reinterpret_cast<std::uintptr_t>(p);
      if (SettleDeferred(b)) intact.insert(b);
    }
  }
  std::vector<In> in;
  std::vector<StagedOut> kept;  // intact: only their slots go back
  std::size_t keep = 0;
  {
    MutexLock lock(&staged_mu_);
    for (std::size_t i = 0; i < ptrs->size(); ++i) {
      void* p = (*ptrs)[i];
      auto it = staged_out_.find(reinterpret_cast<std::uintptr_t>(p));
      if (it != staged_out_.end()) {
        if (intact.contains(it->first)) {
          kept.push_back(it->second);
        } else {
          in.push_back(In{p, it->second});
        }
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
  for (const StagedOut& k : kept) host_copies_.Give(k.slot, k.bytes);  // its copy out was seen done
  if (in.empty()) return absl::OkStatus();
  if (fencer_.capturing() || backend_->IsCapturing(stream)) {
    MutexLock lock(&staged_mu_);
    for (const In& b : in) staged_out_[reinterpret_cast<std::uintptr_t>(b.p)] = b.s;
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
    return FetchInCapture();
  }
  PageBatch pages(!backend_->PopulatesOnTouch());
  for (const In& b : in) pages.Add(reinterpret_cast<std::uintptr_t>(b.p), b.s.bytes, SpanBase(b.p));
  std::vector<std::size_t> discarded;
  absl::Status st = PageWork(*backend_, pages, /*wake=*/true, stream, &discarded);
  CountDiscard(discarded);
  std::sort(in.begin(), in.end(), [](const In& a, const In& b) { return a.p < b.p; });
  CopyList copies;
  for (const In& b : in) copies.Add(b.p, b.s.slot, b.s.bytes, SpanBase(b.p), host_copies_);
  if (st.ok()) st = copies.Run(*backend_, /*out=*/false, stream, options_.staging_copies_by_sms);
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

void PoolCore::ForgetStaged(const void* block, FenceRef* drop_unseen) {
  Unsettled unsettled;
  if (deferred_count_.load(std::memory_order_relaxed) != 0) {
    // Its copy out must be done before the slot is reused, and a drop
    // already issued before its range is.
    MutexLock deferred_lock(&drops_mu_);
    (void)SettleDeferred(reinterpret_cast<std::uintptr_t>(block), &unsettled);
  }
  *drop_unseen = std::move(unsettled.dropped);
  StagedOut s{};
  {
    MutexLock lock(&staged_mu_);
    auto it = staged_out_.find(reinterpret_cast<std::uintptr_t>(block));
    if (it == staged_out_.end()) return;
    s = it->second;
    staged_out_.erase(it);
    staged_out_count_.store(staged_out_.size(), std::memory_order_relaxed);
    if (unsettled.copied != nullptr) {  // freed during a capture, its copy out maybe running
      slots_after_capture_.push_back(SlotAfterCopy{std::move(unsettled.copied), s.slot, s.bytes});
      return;
    }
  }
  host_copies_.Give(s.slot, s.bytes);  // nothing reads it: its copy out was waited for
}

absl::Status PoolCore::GiveSlotsAfterCapture() {
  std::vector<SlotAfterCopy> slots;
  {
    MutexLock lock(&staged_mu_);
    slots.swap(slots_after_capture_);
  }
  absl::Status status;
  for (SlotAfterCopy& a : slots) {
    absl::Status st = fencer_.Wait(*a.copied);
    if (st.ok()) {
      host_copies_.Give(a.slot, a.bytes);
      continue;
    }
    // Kept (never reused) rather than given back under a copy that may run.
    status.Update(st);
    MutexLock lock(&staged_mu_);
    slots_after_capture_.push_back(std::move(a));
  }
  return status;
}

void PoolCore::DropDeferred(bool wait) {
  if (deferred_count_.load(std::memory_order_relaxed) == 0) return;
  MutexLock deferred_lock(&drops_mu_);
  DropDeferredLocked(wait);
}

void PoolCore::DropDeferredLocked(bool wait) {
  if (deferred_drops_.empty() || fencer_.capturing()) return;
  std::vector<DeferredDrop> pending;
  for (DeferredDrop& d : deferred_drops_) {
    bool done = false;
    if (wait) {
      done = fencer_.Wait(*d.copied).ok();
    } else {
      absl::StatusOr<bool> polled = fencer_.Poll(*d.copied);
      done = polled.ok() && *polled;
    }
    if (!done || backend_->IsCapturing(d.stream)) {
      pending.push_back(std::move(d));
      continue;
    }
    // The blocks still out on this eviction's terms (not fetched, freed or
    // evicted again since).
    PageBatch pages;
    std::vector<std::uintptr_t> out;
    {
      MutexLock lock(&staged_mu_);
      for (std::uintptr_t p : d.blocks) {
        auto it = staged_out_.find(p);
        if (it == staged_out_.end() || it->second.copied != d.copied) continue;
        pages.Add(p, it->second.bytes, SpanBase(reinterpret_cast<void*>(p)));
        out.push_back(p);
      }
    }
    if (out.empty()) continue;
    std::vector<std::size_t> discarded;
    (void)PageWork(*backend_, pages, /*wake=*/false, d.stream, &discarded);  // kept: harmless
    CountDiscard(discarded);
    absl::StatusOr<FenceRef> after = fencer_.FenceFor(d.stream, fencer_.Stamp());
    if (!after.ok()) (void)backend_->Synchronize();  // then nothing is left to wait for
    MutexLock lock(&staged_mu_);
    for (std::uintptr_t p : out) {
      auto it = staged_out_.find(p);
      if (it == staged_out_.end() || it->second.copied != d.copied) continue;
      it->second.copied = nullptr;
      if (after.ok()) {
        it->second.dropped = *after;
      } else {
        deferred_count_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }
  deferred_drops_ = std::move(pending);
}

void PoolCore::SettleAllDeferred() {
  if (deferred_count_.load(std::memory_order_relaxed) == 0) return;
  MutexLock deferred_lock(&drops_mu_);
  DropDeferredLocked(/*wait=*/true);
  std::vector<std::uintptr_t> blocks;
  {
    MutexLock lock(&staged_mu_);
    for (const auto& [p, s] : staged_out_) {
      if (s.copied != nullptr || s.dropped != nullptr) blocks.push_back(p);
    }
  }
  for (std::uintptr_t p : blocks) (void)SettleDeferred(p);
}

bool PoolCore::SettleDeferred(std::uintptr_t block, Unsettled* unsettled) {
  FenceRef copied, dropped;
  {
    MutexLock lock(&staged_mu_);
    auto it = staged_out_.find(block);
    if (it == staged_out_.end()) return false;
    copied = std::move(it->second.copied);
    dropped = std::move(it->second.dropped);
    it->second.copied = nullptr;
    it->second.dropped = nullptr;
  }
  if (copied == nullptr && dropped == nullptr) return false;
  deferred_count_.fetch_sub(1, std::memory_order_relaxed);
  FenceRef& fence = copied != nullptr ? copied : dropped;
  absl::StatusOr<bool> polled = fencer_.Poll(*fence);
  if ((!polled.ok() || !*polled) && !fencer_.Wait(*fence).ok() && unsettled != nullptr) {
    // A capture: the caller waits later.
    (copied != nullptr ? unsettled->copied : unsettled->dropped) = fence;
  }
  return copied != nullptr;  // never dropped: the pages hold the block
}

}  // namespace umpool::internal
