// The C ABI: the pressure callback of a device's pool.
#include "src/capi/devices.h"
#include "src/capi/last_error.h"
#include "umpool/umpool.h"

using namespace umpool::capi;  // NOLINT: the export below is thin

extern "C" {

int umpool_set_pressure_callback(int device, umpool_pressure_fn fn, void* ctx) {
  return Guard("umpool_set_pressure_callback", [&] {
    absl::StatusOr<umpool::Pool*> p = PoolFor(device);
    if (!p.ok()) return Fail(p.status());
    if (fn == nullptr) {
      (*p)->SetPressureCallback(nullptr);
    } else {
      (*p)->SetPressureCallback([fn, ctx, device](std::size_t bytes, umpool::Role role) {
        return fn(ctx, device, bytes, static_cast<int>(role)) != 0;
      });
    }
    return static_cast<int>(UMPOOL_OK);
  });
}

}  // extern "C"
