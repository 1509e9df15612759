// PoolCore: Sleep and Wake — the live blocks of chosen roles offloaded to
// host memory or discarded between phases, at the same addresses.
//
// Sleep: Trim; then offloaded blocks are copied into the staging buffer
// (OffloadBy::kStaging) and their whole pages discarded with the discarded
// roles' (batched, pipelined with the copies above 1 GiB: SleepBatch), or
// evicted by one batched prefetch to the host (kEviction, or no staging
// memory). Wake: evicted blocks fetched, the whole pages of staged and
// discarded blocks repopulated on the GPU by batched discard-and-prefetch
// (no page faults, no migration of dead contents) and the staged contents
// copied back. Blocks freed while asleep are skipped: their memory may
// belong to a new allocation by then.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"
#include "src/pool/sleep_batch.h"

namespace umpool::internal {

absl::Status PoolCore::Sleep(const SleepOptions& options, Stream stream) {
  MutexLock lock(&sleep_mu_);
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError("Sleep during a CUDA graph capture; call it after EndCapture");
  }
  if (asleep_) return absl::OkStatus();
  SettleAllDeferred();  // evictions' pages dropped and seen done before any page work here
  for (int r = 0; r < kNumRoles; ++r) {
    const Role role = static_cast<Role>(r);
    if (options.roles[r] != SleepAction::kKeep && arena_.IsDeviceMemory(role)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Sleep: role ", RoleName(role), " is plain device memory (device_memory policy) and "
          "can be neither offloaded nor discarded"));
    }
  }
  // Free cached memory goes back to the backend for real (its pages are
  // nobody's); then the live blocks move.
  if (absl::Status st = ReleaseCached(/*unmap=*/true); !st.ok()) return st;
  sleeping_.store(true, std::memory_order_seq_cst);  // frees from here on are noted
  std::vector<Slept> offload, drop;
  for (const BlockInfo& b : LiveBlocks()) {  // in address order
    const SleepAction action = options.roles[static_cast<int>(b.role)];
    if (action == SleepAction::kKeep) continue;
    Slept s{reinterpret_cast<std::uintptr_t>(b.ptr), b.bytes, SpanBase(b.ptr)};
    (action == SleepAction::kOffload ? offload : drop).push_back(s);
  }
  SleepState state;
  state.blocks = offload.size() + drop.size();
  absl::Status st;
  if (options.offload_by == OffloadBy::kStaging && !offload.empty()) {
    st = Stage(offload, stream, &state);
  }
  // Offloaded blocks not staged are evicted in one batch; staged blocks are
  // copied out and their pages dropped in another, with the discarded
  // roles' pages.
  SleepBatch batch;
  std::vector<void*> evict;
  std::vector<std::size_t> evict_sizes;
  for (Slept& s : offload) {
    state.offloaded_bytes += s.bytes;
    if (s.staged != kNotStaged) {
      batch.AddStaged(s.ptr, s.bytes, s.staged, s.span);
    } else {
      s.evicted = true;
      evict.push_back(reinterpret_cast<void*>(s.ptr));
      evict_sizes.push_back(s.bytes);
    }
  }
  for (const Slept& s : drop) batch.AddPagesOnly(s.ptr, s.bytes, s.span);
  if (st.ok()) st = PrefetchBatch(evict, evict_sizes, Location::kHost, stream);
  // The copies a promise of unchanged contents lets Sleep skip: the same
  // blocks in the same buffer as last time.
  std::vector<std::pair<std::uintptr_t, std::size_t>> layout;
  for (const Slept& s : offload) {
    if (s.staged != kNotStaged) layout.emplace_back(s.ptr, s.bytes);
  }
  const bool reuse = options.contents_unchanged && !layout.empty() && layout == staged_layout_ &&
                     staging_.generation() == staged_generation_;
  staged_layout_.clear();  // rewritten below once the copies are in
  std::vector<std::size_t> discarded;
  if (st.ok()) {
    st = reuse ? batch.DropPages(*backend_, stream, &discarded)
               : batch.Sleep(*backend_, staging_, stream, &discarded);
  }
  CountDiscard(discarded);
  std::vector<Slept> slept = offload;
  slept.insert(slept.end(), drop.begin(), drop.end());
  if (st.ok()) st = KeepDropped(slept);
  if (!st.ok() && !backend_->PopulatesOnTouch()) {
    // vmm: a page dropped before the failure must not stay dropped under a
    // live block of an awake pool (a kernel touching it would fail): all are
    // populated again; their contents are lost.
    SleepBatch all(/*outward_refills=*/true);
    for (const Slept& s : slept) all.AddPagesOnly(s.ptr, s.bytes, s.span);
    std::vector<std::size_t> refilled;
    (void)all.Wake(*backend_, staging_, stream, &refilled);
    CountDiscard(refilled);
  }
  if (st.ok() && !layout.empty()) {
    staged_layout_ = std::move(layout);
    staged_generation_ = staging_.generation();
    if (reuse) state.reused_bytes = state.staged_bytes;
  }
  if (!st.ok()) {
    // What moved stays valid where it is (evicted pages fault back); the
    // pool is awake and may sleep again.
    StopNotingFrees();
    return st;
  }
  state.discarded_bytes = batch.page_bytes();
  state.staging_bytes = staging_.bytes();
  state.asleep = true;
  asleep_ = true;
  slept_ = std::move(slept);
  sleep_state_ = state;
  return absl::OkStatus();
}

absl::Status PoolCore::Stage(std::vector<Slept>& offload, Stream stream, SleepState* state) {
  std::size_t total = 0;
  for (const Slept& s : offload) total += s.bytes;
  absl::StatusOr<std::byte*> buffer = staging_.Reserve(total, stream);
  if (absl::IsUnimplemented(buffer.status()) || absl::IsResourceExhausted(buffer.status())) {
    return absl::OkStatus();  // not staged: evicted instead
  }
  if (!buffer.ok()) return buffer.status();
  std::size_t offset = 0;
  for (Slept& s : offload) {
    s.staged = offset;
    offset += s.bytes;
  }
  state->staged_bytes = total;
  return absl::OkStatus();
}

absl::Status PoolCore::NoteFreedAsleep(const void* ptr) {
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  MutexLock lock(&freed_asleep_mu_);
  if (auto it = dropped_asleep_.find(p); it != dropped_asleep_.end()) {
    if (absl::Status st = RefillPages(p, it->second); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("free of a block whose pages sleep: they could "
                                                  "not be populated again, so the block stays "
                                                  "allocated (free it after Wake): ",
                                                  st.message()));
    }
    dropped_asleep_.erase(it);
  }
  freed_asleep_.insert(p);
  return absl::OkStatus();
}

absl::Status PoolCore::RefillPages(std::uintptr_t ptr, std::size_t bytes) {
  PageBatch pages(/*outward_pages=*/true);  // only vmm refills this way
  pages.Add(ptr, bytes, 0);
  std::vector<std::size_t> discarded;
  absl::Status st = PageWork(*backend_, pages, /*wake=*/true, kDefaultStream, &discarded);
  CountDiscard(discarded);
  return st;
}

absl::Status PoolCore::KeepDropped(const std::vector<Slept>& slept) {
  if (backend_->PopulatesOnTouch()) return absl::OkStatus();
  MutexLock lock(&freed_asleep_mu_);
  for (const Slept& s : slept) {
    if (!freed_asleep_.contains(s.ptr)) {
      dropped_asleep_[s.ptr] = s.bytes;
    } else if (absl::Status st = RefillPages(s.ptr, s.bytes); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status PoolCore::Wake(Stream stream) {
  MutexLock lock(&sleep_mu_);
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError("Wake during a CUDA graph capture; call it after EndCapture");
  }
  if (!asleep_) return absl::OkStatus();
  std::vector<Slept> back;
  {
    MutexLock freed(&freed_asleep_mu_);
    for (const Slept& s : slept_) {
      if (!freed_asleep_.contains(s.ptr)) back.push_back(s);
    }
  }
  if (absl::Status st = Repopulate(back, stream); !st.ok()) return st;
  asleep_ = false;
  slept_.clear();
  sleep_state_ = SleepState{};
  sleep_state_.staging_bytes = staging_.bytes();
  StopNotingFrees();
  return absl::OkStatus();
}

void PoolCore::StopNotingFrees() {
  sleeping_.store(false, std::memory_order_relaxed);
  MutexLock freed(&freed_asleep_mu_);
  freed_asleep_.clear();
  dropped_asleep_.clear();
}

absl::Status PoolCore::Repopulate(const std::vector<Slept>& blocks, Stream stream) {
  // Staged and discarded blocks: pages populated on the GPU (vmm: every
  // page they touch).
  SleepBatch batch(!backend_->PopulatesOnTouch());
  std::vector<void*> fetch;
  std::vector<std::size_t> fetch_sizes;
  for (const Slept& s : blocks) {
    if (s.evicted) {
      fetch.push_back(reinterpret_cast<void*>(s.ptr));
      fetch_sizes.push_back(s.bytes);
    } else if (s.staged != kNotStaged) {
      batch.AddStaged(s.ptr, s.bytes, s.staged, s.span);
    } else {
      batch.AddPagesOnly(s.ptr, s.bytes, s.span);
    }
  }
  if (absl::Status st = PrefetchBatch(fetch, fetch_sizes, Location::kDevice, stream); !st.ok()) {
    return st;
  }
  std::vector<std::size_t> discarded;
  absl::Status st = batch.Wake(*backend_, staging_, stream, &discarded);
  CountDiscard(discarded);
  return st;
}

SleepState PoolCore::GetSleepState() const {
  MutexLock lock(&sleep_mu_);
  return sleep_state_;
}

absl::Status PoolCore::ReserveStaging(const SleepOptions& options) {
  MutexLock lock(&sleep_mu_);
  if (asleep_) return absl::OkStatus();
  std::size_t total = 0;
  for (const BlockInfo& b : LiveBlocks()) {
    if (options.roles[static_cast<int>(b.role)] == SleepAction::kOffload) total += b.bytes;
  }
  if (total == 0) return absl::OkStatus();
  absl::Status st = staging_.Reserve(total, kDefaultStream).status();
  sleep_state_.staging_bytes = staging_.bytes();
  return st;
}

absl::Status PoolCore::ReleaseStaging() {
  MutexLock lock(&sleep_mu_);
  if (asleep_) return absl::OkStatus();
  absl::Status st = staging_.Release();
  sleep_state_.staging_bytes = staging_.bytes();
  return st;
}

}  // namespace umpool::internal
