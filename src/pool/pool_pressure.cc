// PoolCore: the pressure callback, asked to free memory before an
// allocation fails.
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

bool PoolCore::RelievePressure(std::size_t bytes, Role role, absl::Status* why) {
  if (in_pressure_callback || fencer_.capturing()) return false;
  std::shared_ptr<const Pool::PressureCallback> callback;
  {
    MutexLock lock(&pressure_mu_);
    callback = pressure_;
  }
  if (callback == nullptr) return false;
  counters_.Bump(counters_.alloc_retries);
  in_pressure_callback = true;
  bool freed = false;
  try {
    freed = (*callback)(bytes, role);
  } catch (const std::exception& e) {
    *why = absl::InternalError(absl::StrCat("the pressure callback threw: ", e.what()));
  } catch (...) {
    *why = absl::InternalError("the pressure callback threw a non-standard exception");
  }
  in_pressure_callback = false;
  return freed && why->ok();
}

}  // namespace umpool::internal
