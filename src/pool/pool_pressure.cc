// PoolCore: the pressure callback, asked to free memory before an
// allocation fails, and told when reserved memory passes the watermark.
#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {
namespace {

// Set while this thread runs a pressure callback: its own allocations that
// run short fail instead of calling it again.
thread_local bool in_pressure_callback = false;

}  // namespace

void PoolCore::SetPressureCallback(Pool::PressureCallback callback) {
  std::shared_ptr<const Pool::PressureCallback> next;
  if (callback) next = std::make_shared<const Pool::PressureCallback>(std::move(callback));
  MutexLock lock(&pressure_mu_);
  pressure_ = std::move(next);
}

std::shared_ptr<const Pool::PressureCallback> PoolCore::CurrentPressureCallback() const {
  MutexLock lock(&pressure_mu_);
  return pressure_;
}

bool PoolCore::RelievePressure(std::size_t bytes, Role role, absl::Status* why) {
  if (in_pressure_callback || fencer_.capturing()) return false;
  const std::shared_ptr<const Pool::PressureCallback> callback = CurrentPressureCallback();
  if (callback == nullptr) return false;
  counters_.Bump(counters_.alloc_retries);
  return Call(*callback, bytes, role, why);
}

void PoolCore::AfterGrowth(Role role) {
  const std::size_t mark = options_.pressure_watermark_bytes;
  if (mark == 0) return;
  const auto reserved = static_cast<std::size_t>(
      std::max<std::int64_t>(0, counters_.reserved_bytes.current.load(std::memory_order_relaxed)));
  if (reserved <= mark) {
    watermark_armed_.store(true, std::memory_order_relaxed);
    return;
  }
  if (in_pressure_callback || fencer_.capturing() ||
      !watermark_armed_.exchange(false, std::memory_order_relaxed)) {
    return;
  }
  const std::shared_ptr<const Pool::PressureCallback> callback = CurrentPressureCallback();
  absl::Status ignored;
  if (callback != nullptr) (void)Call(*callback, reserved - mark, role, &ignored);
}

bool PoolCore::Call(const Pool::PressureCallback& callback, std::size_t bytes, Role role,
                    absl::Status* why) {
  in_pressure_callback = true;
  bool freed = false;
  try {
    freed = callback(bytes, role);
  } catch (const std::exception& e) {
    *why = absl::InternalError(absl::StrCat("the pressure callback threw: ", e.what()));
  } catch (...) {
    *why = absl::InternalError("the pressure callback threw a non-standard exception");
  }
  in_pressure_callback = false;
  DropDeferred(/*wait=*/true);  // what it evicted leaves the GPU before the retry
  return freed && why->ok();
}

}  // namespace umpool::internal
