// PoolCore: Sleep and Wake — the live blocks of chosen roles offloaded to
// host memory or discarded between phases, at the same addresses.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {

absl::Status PoolCore::Sleep(const SleepOptions& options, Stream stream) {
  MutexLock lock(&sleep_mu_);
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError("Sleep during a CUDA graph capture; call it after EndCapture");
  }
  if (asleep_) return absl::OkStatus();
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
  std::vector<Slept> slept;
  std::vector<void*> offload, drop;
  std::vector<std::size_t> offload_bytes, drop_bytes;
  SleepState state;
  for (const BlockInfo& b : LiveBlocks()) {
    const SleepAction action = options.roles[static_cast<int>(b.role)];
    if (action == SleepAction::kKeep) continue;
    slept.push_back(Slept{b.ptr, b.bytes, action});
    ++state.blocks;
    if (action == SleepAction::kOffload) {
      offload.push_back(b.ptr);
      offload_bytes.push_back(b.bytes);
      state.offloaded_bytes += b.bytes;
      continue;
    }
    const PageRange pages = WholePages(reinterpret_cast<std::uintptr_t>(b.ptr), b.bytes);
    if (!pages.empty()) {
      drop.push_back(reinterpret_cast<void*>(pages.lo));
      drop_bytes.push_back(pages.hi - pages.lo);
      state.discarded_bytes += pages.hi - pages.lo;
    }
  }
  if (absl::Status st = PrefetchBatch(offload, offload_bytes, Location::kHost, stream); !st.ok()) {
    return st;
  }
  if (!drop.empty()) {
    absl::Status st = backend_->Discard(drop.data(), drop_bytes.data(), drop.size(),
                                        DiscardMode::kDrop, stream);
    if (absl::IsUnimplemented(st)) {
      // The driver cannot discard: the blocks are evicted instead (contents
      // kept, the same GPU memory given up).
      st = backend_->Prefetch(drop.data(), drop_bytes.data(), drop.size(), Location::kHost, stream);
    }
    if (!st.ok()) {
      // Undo nothing: what was offloaded stays valid where it is; report.
      return st;
    }
    CountDiscard(drop_bytes);
  }
  state.asleep = true;
  asleep_ = true;
  slept_ = std::move(slept);
  sleep_state_ = state;
  return absl::OkStatus();
}

absl::Status PoolCore::Wake(Stream stream) {
  MutexLock lock(&sleep_mu_);
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError("Wake during a CUDA graph capture; call it after EndCapture");
  }
  if (!asleep_) return absl::OkStatus();
  // Blocks freed while asleep are skipped (their memory may be unmapped or
  // another block's now); a block at the same address that is live again
  // is fetched, which is harmless.
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  for (const Slept& s : slept_) {
    absl::StatusOr<BlockInfo> b = BlockAt(s.ptr);
    if (!b.ok()) continue;
    ptrs.push_back(b->ptr);
    sizes.push_back(b->bytes);
  }
  if (absl::Status st = PrefetchBatch(ptrs, sizes, Location::kDevice, stream); !st.ok()) {
    return st;
  }
  asleep_ = false;
  slept_.clear();
  sleep_state_ = SleepState{};
  return absl::OkStatus();
}

SleepState PoolCore::GetSleepState() const {
  MutexLock lock(&sleep_mu_);
  return sleep_state_;
}

}  // namespace umpool::internal
