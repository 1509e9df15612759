// The C ABI: per-role residency of a device's pools (HBM budgets, evictions,
// fetches).
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/capi/devices.h"
#include "src/capi/graph_pools.h"
#include "src/capi/last_error.h"
#include "umpool/umpool.h"

using namespace umpool::capi;  // NOLINT: the export below is thin

extern "C" {

int umpool_get_residency(int device, int role, umpool_residency* out) {
  return Guard("umpool_get_residency", [&] {
    if (out == nullptr) return Fail(absl::InvalidArgumentError("umpool_get_residency: null output"));
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    if (role < 0 || role >= umpool::kNumRoles) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "umpool_get_residency: invalid role ", role, " (expected 0..", umpool::kNumRoles - 1, ")")));
    }
    std::memset(out, 0, sizeof(*out));
    for (umpool::Pool* p : PoolsOf(device)) {
      const umpool::RoleResidency r = p->GetResidency(static_cast<umpool::Role>(role));
      out->budget_bytes = r.budget_bytes;  // the same policy in every pool of the device
      out->resident_bytes += r.resident_bytes;
      out->host_bytes += r.host_bytes;
      out->evictions += r.evictions;
      out->budget_evictions += r.budget_evictions;
      out->fetches += r.fetches;
      out->evicted_bytes += r.evicted_bytes;
      out->fetched_bytes += r.fetched_bytes;
      out->reserved_bytes += r.reserved_bytes;
      out->allocated_bytes += r.allocated_bytes;
    }
    return static_cast<int>(UMPOOL_OK);
  });
}

}  // extern "C"
