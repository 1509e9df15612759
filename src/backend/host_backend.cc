#include "src/backend/host_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace umpool::internal {
namespace {

std::uintptr_t HostPage() {  // madvise's unit
  static const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t HalfOfPhysicalMemory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::size_t{4} << 30;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 2;
}

}  // namespace

HostBackend::HostBackend(std::size_t capacity_bytes, bool populate_on_request)
    : capacity_bytes_(capacity_bytes != 0 ? capacity_bytes : HalfOfPhysicalMemory()),
      populate_on_request_(populate_on_request) {}

absl::Status HostBackend::Protect(std::uintptr_t lo, std::uintptr_t hi, bool accessible) {
  const std::uintptr_t g = kMapGranularity;
  lo = accessible ? lo & ~(g - 1) : (lo + g - 1) & ~(g - 1);
  hi = accessible ? (hi + g - 1) & ~(g - 1) : hi & ~(g - 1);
  if (hi <= lo) return absl::OkStatus();
  if (mprotect(reinterpret_cast<void*>(lo), hi - lo, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) {
    return absl::InternalError(absl::StrCat("host backend: mprotect failed: ", std::strerror(errno)));
  }
  MutexLock lock(&mu_);
  for (std::uintptr_t a = lo; a < hi; a += g) {
    if (accessible) {
      populated_.insert(a);
    } else {
      populated_.erase(a);
    }
  }
  return absl::OkStatus();
}

HostBackend::~HostBackend() = default;

std::string HostBackend::Describe() const { return "host: plain host memory (no GPU)"; }

absl::StatusOr<std::size_t> HostBackend::AvailableBytes() {
  MutexLock lock(&mu_);
  return capacity_bytes_ > mapped_bytes_ ? capacity_bytes_ - mapped_bytes_ : 0;
}

absl::StatusOr<std::size_t> HostBackend::TotalBytes() { return capacity_bytes_; }

absl::StatusOr<void*> HostBackend::Map(std::size_t bytes) {
  {
    MutexLock lock(&mu_);
    if (fail_maps_ > 0) {
      --fail_maps_;
      return absl::ResourceExhaustedError(
          absl::StrCat("host backend: injected out-of-memory mapping ", bytes, " bytes"));
    }
    if (bytes > capacity_bytes_ - std::min(capacity_bytes_, mapped_bytes_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "host backend: out of memory mapping ", bytes, " bytes (", mapped_bytes_,
          " of ", capacity_bytes_, " mapped)"));
    }
    mapped_bytes_ += bytes;
  }
  // Over-map by 2 MiB and trim both ends, so ranges are 2 MiB aligned like
  // the CUDA backends' (the pool carves slabs at 2 MiB boundaries).
  const std::size_t align = kMapGranularity;
  void* raw = mmap(nullptr, bytes + align, populate_on_request_ ? PROT_NONE : PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    int err = errno;
    MutexLock lock(&mu_);
    mapped_bytes_ -= bytes;
    return absl::ResourceExhaustedError(
        absl::StrCat("host backend: mmap of ", bytes, " bytes failed: ", std::strerror(err)));
  }
  const auto r = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t p = (r + align - 1) & ~(align - 1);
  if (p > r) munmap(raw, p - r);
  if (const std::uintptr_t tail = r + bytes + align - (p + bytes); tail > 0) {
    munmap(reinterpret_cast<void*>(p + bytes), tail);
  }
  counters_.maps.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    ranges_[p] = p + bytes;
  }
  return reinterpret_cast<void*>(p);
}

bool HostBackend::CoveredLocked(std::uintptr_t lo, std::uintptr_t hi) const {
  while (lo < hi) {
    auto it = ranges_.upper_bound(lo);
    if (it == ranges_.begin()) return false;
    --it;
    if (it->second <= lo) return false;
    lo = it->second;  // adjacent mappings may cover the rest
  }
  return true;
}

absl::Status HostBackend::Unmap(void* ptr, std::size_t bytes) {
  if (munmap(ptr, bytes) != 0) {
    return absl::InternalError(absl::StrCat("host backend: munmap failed: ", std::strerror(errno)));
  }
  counters_.unmaps.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(&mu_);
  mapped_bytes_ -= bytes;
  // A piece of a mapping may go on its own: split what it covers.
  const auto lo = reinterpret_cast<std::uintptr_t>(ptr), hi = lo + bytes;
  for (std::uintptr_t a = lo & ~(kMapGranularity - 1); a < hi; a += kMapGranularity) populated_.erase(a);
  auto it = ranges_.upper_bound(lo);
  if (it != ranges_.begin()) --it;
  while (it != ranges_.end() && it->first < hi) {
    const std::uintptr_t a = it->first, b = it->second;
    if (b <= lo) {
      ++it;
      continue;
    }
    it = ranges_.erase(it);
    if (a < lo) ranges_[a] = lo;
    if (b > hi) it = ranges_.emplace(hi, b).first;
  }
  return absl::OkStatus();
}

absl::Status HostBackend::Advise(void*, std::size_t, const Advice&) {
  counters_.advise_ops.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status HostBackend::Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                                   Location where, Stream) {
  if (populate_on_request_ && where == Location::kHost) {
    return absl::FailedPreconditionError(
        "host backend (populate on request, as vmm): memory cannot be evicted by migration");
  }
  counters_.prefetch_ops.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; populate_on_request_ && i < count; ++i) {
    const auto p = reinterpret_cast<std::uintptr_t>(ptrs[i]);
    if (absl::Status st = Protect(p, p + sizes[i], true); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status HostBackend::Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                                  DiscardMode mode, Stream) {
  counters_.discard_ops.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    for (std::size_t i = 0; i < count; ++i) {
      const auto p = reinterpret_cast<std::uintptr_t>(ptrs[i]);
      if (!CoveredLocked(p, p + sizes[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "host backend: discard of ", sizes[i], " bytes at ", absl::Hex(p),
            " outside the memory it mapped"));
      }
    }
  }
  for (std::size_t i = 0; i < count; ++i) {
    // Contents really go: the whole host pages inside the range read as
    // zeros afterwards (and cost no memory until touched), so a test that
    // expects discarded contents to survive, or a copy ordered before its
    // refill, sees it.
    const std::uintptr_t page = HostPage();
    const auto lo = (reinterpret_cast<std::uintptr_t>(ptrs[i]) + page - 1) & ~(page - 1);
    const auto hi = (reinterpret_cast<std::uintptr_t>(ptrs[i]) + sizes[i]) & ~(page - 1);
    // Populate on request (as vmm): a refill only populates what is not
    // (pages a live neighbour shares keep their contents).
    const bool keep = populate_on_request_ && mode == DiscardMode::kRefill;
    if (hi > lo && !keep) (void)madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    if (populate_on_request_) {
      const auto p = reinterpret_cast<std::uintptr_t>(ptrs[i]);
      if (absl::Status st = Protect(p, p + sizes[i], mode == DiscardMode::kRefill); !st.ok()) {
        return st;
      }
    }
    counters_.discard_bytes.fetch_add(sizes[i], std::memory_order_relaxed);
    if (mode == DiscardMode::kRefill) counters_.refill_bytes.fetch_add(sizes[i], std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

absl::StatusOr<void*> HostBackend::AllocateStaging(std::size_t bytes) {
  {
    MutexLock lock(&mu_);
    if (fail_staging_ > 0) {
      --fail_staging_;
      return absl::ResourceExhaustedError(
          absl::StrCat("host backend: injected failure allocating ", bytes, " staging bytes"));
    }
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "host backend: mmap of ", bytes, " staging bytes failed: ", std::strerror(errno)));
  }
  counters_.staging_allocs.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    const auto s = reinterpret_cast<std::uintptr_t>(p);
    staging_[s] = s + bytes;
  }
  return p;
}

void HostBackend::FreeStaging(void* ptr, std::size_t bytes) {
  {
    MutexLock lock(&mu_);
    staging_.erase(reinterpret_cast<std::uintptr_t>(ptr));
  }
  munmap(ptr, bytes);
}

bool HostBackend::WithinOneLocked(std::uintptr_t lo, std::size_t bytes) const {
  for (const auto* m : {&ranges_, &staging_}) {
    auto it = m->upper_bound(lo);
    if (it == m->begin()) continue;
    --it;
    if (lo < it->second) return lo + bytes <= it->second;  // starts in it: must end in it
  }
  return true;  // the caller's own memory
}

absl::Status HostBackend::Copy(void* dst, const void* src, std::size_t bytes, Stream) {
  {
    MutexLock lock(&mu_);
    if (!WithinOneLocked(reinterpret_cast<std::uintptr_t>(dst), bytes) ||
        !WithinOneLocked(reinterpret_cast<std::uintptr_t>(src), bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "host backend: a copy of ", bytes, " bytes runs past the end of the mapping or staging "
          "buffer it starts in (CUDA refuses copies across allocations)"));
    }
  }
  counters_.copy_ops.fetch_add(1, std::memory_order_relaxed);
  counters_.copy_bytes.fetch_add(bytes, std::memory_order_relaxed);
  std::memcpy(dst, src, bytes);
  return absl::OkStatus();
}

}  // namespace umpool::internal
