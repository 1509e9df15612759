// UmpoolAllocator: torch.cuda.memory_stats() from umpool's statistics (the
// device's pool and its private graph pools). umpool has no small/large pool
// split for allocations: "all" is what it has; reserved bytes are split by
// its own measure (slabs vs large blocks). Cumulative byte totals
// ("allocated"/"freed" of the byte stats) are not kept. umpool's counts are
// monotonic; resetAccumulatedStats remembers them as a baseline.
#include <c10/util/Exception.h>

#include <array>
#include <mutex>

#include "allocator.h"

namespace umpool_torch {
namespace {

using c10::CachingAllocator::Stat;
using c10::CachingAllocator::StatType;

void Set(Stat& s, int64_t current, int64_t peak) {
  s.current = current;
  s.peak = peak;
}

constexpr size_t kAll = static_cast<size_t>(StatType::AGGREGATE);
constexpr size_t kSmall = static_cast<size_t>(StatType::SMALL_POOL);
constexpr size_t kLarge = static_cast<size_t>(StatType::LARGE_POOL);

// The counts resetAccumulatedStats starts again from zero.
#define UMPOOL_ACCUMULATED_COUNTS(X) \
  X(allocations) X(frees) X(alloc_retries) X(ooms) X(backend_allocations) X(backend_frees)

// The stats at the last resetAccumulatedStats, per device (only the
// accumulated counts are used).
constexpr int kDevices = 64;
std::mutex baseline_mu;
std::array<umpool_stats, kDevices> baselines{};

umpool_stats BaselineOf(c10::DeviceIndex device) {
  std::lock_guard<std::mutex> lock(baseline_mu);
  return device >= 0 && device < kDevices ? baselines[device] : umpool_stats{};
}

}  // namespace

c10::CachingDeviceAllocator::DeviceStats UmpoolAllocator::getDeviceStats(c10::DeviceIndex device) {
  umpool_stats s{};
  UMPOOL_TORCH_CHECK(umpool_get_stats(device, &s) == UMPOOL_OK, "umpool: ", umpool_last_error());
  const umpool_stats b = BaselineOf(device);
#define UMPOOL_SINCE_BASELINE_(name) s.name -= b.name;
  UMPOOL_ACCUMULATED_COUNTS(UMPOOL_SINCE_BASELINE_)
#undef UMPOOL_SINCE_BASELINE_
  c10::CachingDeviceAllocator::DeviceStats d;
  Set(d.allocated_bytes[kAll], s.allocated_bytes_current, s.allocated_bytes_peak);
  Set(d.active_bytes[kAll], s.allocated_bytes_current, s.allocated_bytes_peak);
  Set(d.requested_bytes[kAll], s.requested_bytes_current, s.requested_bytes_peak);
  Set(d.reserved_bytes[kAll], s.reserved_bytes_current, s.reserved_bytes_peak);
  Set(d.reserved_bytes[kLarge], s.large_reserved_bytes_current, s.large_reserved_bytes_peak);
  Set(d.reserved_bytes[kSmall], s.reserved_bytes_current - s.large_reserved_bytes_current,
      s.reserved_bytes_peak);
  // Blocks live now: from the counts since the pool was created.
  const int64_t live = static_cast<int64_t>(s.allocations + b.allocations) -
                       static_cast<int64_t>(s.frees + b.frees);
  Stat& allocation = d.allocation[kAll];
  Set(allocation, live, live);
  allocation.allocated = static_cast<int64_t>(s.allocations);
  allocation.freed = static_cast<int64_t>(s.frees);
  d.active[kAll] = allocation;
  Set(d.segment[kAll], s.large_segments, s.large_segments);
  d.segment[kAll].allocated = static_cast<int64_t>(s.backend_allocations);
  d.segment[kAll].freed = static_cast<int64_t>(s.backend_frees);
  d.num_alloc_retries = static_cast<int64_t>(s.alloc_retries);
  d.num_ooms = static_cast<int64_t>(s.ooms);
  d.num_device_alloc = static_cast<int64_t>(s.backend_allocations);
  d.num_device_free = static_cast<int64_t>(s.backend_frees);
  return d;
}

void UmpoolAllocator::resetAccumulatedStats(c10::DeviceIndex device) {
  UMPOOL_TORCH_CHECK(device >= 0 && device < kDevices, "umpool: invalid device ", int(device));
  umpool_stats s{};
  UMPOOL_TORCH_CHECK(umpool_get_stats(device, &s) == UMPOOL_OK, "umpool: ", umpool_last_error());
  std::lock_guard<std::mutex> lock(baseline_mu);
  baselines[device] = s;
}

void UmpoolAllocator::resetPeakStats(c10::DeviceIndex device) {
  UMPOOL_TORCH_CHECK(umpool_reset_peak_stats(device) == UMPOOL_OK, "umpool: ", umpool_last_error());
}

}  // namespace umpool_torch
