// PoolOptions defaults and validation; SharedCapacity.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/pool/size_class.h"
#include "umpool/options.h"
#include "umpool/types.h"

namespace umpool {

bool SharedCapacity::Limited::TryAdd(std::size_t bytes) {
  if (bytes > limit - std::min(limit, used)) return false;
  used += bytes;
  return true;
}

void SharedCapacity::Limited::Sub(std::size_t bytes) { used -= std::min(used, bytes); }

bool SharedCapacity::TryClaim(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_.TryAdd(bytes);
}

void SharedCapacity::Release(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_.Sub(bytes);
}

bool SharedCapacity::TryMap(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return mapped_.TryAdd(bytes);
}

void SharedCapacity::Unmap(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  mapped_.Sub(bytes);
}

void SharedCapacity::set_cap(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_.limit = bytes;
  mapped_.limit = std::max(mapped_.limit, bytes);
}

void SharedCapacity::LimitMapping(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::size_t cap = reserved_.limit == SIZE_MAX ? 0 : reserved_.limit;
  mapped_.limit = std::min(mapped_.limit, std::max(bytes, cap));
}

std::size_t SharedCapacity::cap() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_.limit;
}

std::size_t SharedCapacity::reserved() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_.used;
}

std::size_t SharedCapacity::map_limit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mapped_.limit;
}

std::size_t SharedCapacity::mapped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mapped_.used;
}

RolePolicy DefaultRolePolicy(Role role) {
  RolePolicy p;
  if (role == Role::kWeights || role == Role::kActivations) p.prefetch = PrefetchMode::kAlways;
  if (role == Role::kActivations) p.slab_max_bytes = internal::kMaxClassBytes;
  if (role == Role::kDefault) p.slab_space_max_bytes = std::size_t{256} << 10;
  if (role == Role::kKv) {
    p.slab_max_bytes = std::size_t{64} << 10;
    p.tail_last = true;
  }
  return p;
}

absl::Status PoolOptions::Validate() const {
  if (static_cast<unsigned>(backend) > static_cast<unsigned>(BackendKind::kVmm)) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend: invalid value ", static_cast<int>(backend)));
  }
  if (device < 0) {
    return absl::InvalidArgumentError(absl::StrCat("device: must be >= 0, got ", device));
  }
  if (backend == BackendKind::kHost && device != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device: the host backend has only device 0, got ", device));
  }
  if (capacity_bytes != 0 && capacity_bytes < internal::kSlabGranularity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity_bytes: must be 0 (default) or at least 2 MiB, got ", capacity_bytes));
  }
  if (capacity_bytes != 0 && pressure_watermark_bytes > capacity_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pressure_watermark_bytes (", pressure_watermark_bytes, ") is above capacity_bytes (",
        capacity_bytes, ")"));
  }
  if (!(give_back_slack >= 0 && give_back_slack <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("give_back_slack: must be between 0 and 1, got ", give_back_slack));
  }
  if (thread_cache && thread_cache_bytes < thread_cache_max_class_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "thread_cache_bytes (", thread_cache_bytes,
        ") must be at least thread_cache_max_class_bytes (", thread_cache_max_class_bytes, ")"));
  }
  if (thread_cache_max_class_bytes > internal::kMaxClassBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "thread_cache_max_class_bytes: at most ", internal::kMaxClassBytes, " (the largest class), got ",
        thread_cache_max_class_bytes));
  }
  for (int i = 0; i < kNumRoles; ++i) {
    const RolePolicy& p = roles[i];
    const absl::string_view name = RoleName(static_cast<Role>(i));
    if (static_cast<unsigned>(p.preferred) > static_cast<unsigned>(Location::kHost)) {
      return absl::InvalidArgumentError(absl::StrCat("roles[", name, "].preferred: invalid value"));
    }
    if (static_cast<unsigned>(p.accessed_by) > static_cast<unsigned>(AccessedBy::kNone)) {
      return absl::InvalidArgumentError(absl::StrCat("roles[", name, "].accessed_by: invalid value"));
    }
    if (static_cast<unsigned>(p.prefetch) > static_cast<unsigned>(PrefetchMode::kNever)) {
      return absl::InvalidArgumentError(absl::StrCat("roles[", name, "].prefetch: invalid value"));
    }
    if (!(p.hbm_budget_slack >= 0 && p.hbm_budget_slack <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "roles[", name, "].hbm_budget_slack: must be between 0 and 1, got ", p.hbm_budget_slack));
    }
    if (p.device_memory && (p.read_mostly || p.discard_on_free || p.hbm_budget_bytes != 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "roles[", name, "].device_memory: plain device memory takes no ",
          p.read_mostly ? "read_mostly advice"
                        : (p.discard_on_free ? "discard_on_free" : "hbm_budget"),
          " (managed memory only)"));
    }
    if (p.evict_by_staging && (!p.discard_on_free || p.device_memory)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "roles[", name, "].evict_by_staging: ",
          p.device_memory ? "plain device memory cannot be evicted"
                          : "needs discard_on_free (conf: `<role>.discard:1`), so that a freed "
                            "evicted block's pages are refilled before reuse"));
    }
    if (p.slab_max_bytes > internal::kMaxClassBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "roles[", name, "].slab_max_bytes: at most ", internal::kMaxClassBytes,
          " (the largest size class), got ", p.slab_max_bytes));
    }
    if (p.prefetch == PrefetchMode::kBelowThreshold && p.prefetch_threshold_bytes == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "roles[", name, "].prefetch_threshold_bytes: 0 with kBelowThreshold never prefetches; "
          "use PrefetchMode::kNever to say so"));
    }
    if (backend == BackendKind::kVmm) {
      // VMM memory is GPU memory: nothing to place on the host or migrate.
      if (p.preferred == Location::kHost) {
        return absl::InvalidArgumentError(absl::StrCat(
            "roles[", name, "].preferred: `cpu` with the vmm backend (GPU memory only; use the "
            "managed backend for host-preferred roles)"));
      }
      if (p.hbm_budget_bytes != 0 && !p.evict_by_staging) {
        return absl::InvalidArgumentError(absl::StrCat(
            "roles[", name, "].hbm_budget with the vmm backend needs evict_by_staging "
            "(`<role>.evict:staging`): vmm memory cannot migrate"));
      }
    }
  }
  if (backend == BackendKind::kVmm && allow_oversubscription) {
    return absl::InvalidArgumentError(
        "allow_oversubscription with the vmm backend: vmm memory is GPU memory only");
  }
  return absl::OkStatus();
}

}  // namespace umpool
