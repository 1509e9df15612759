// The C ABI: sleep and wake of a device's pool and its private graph pools.
#include "absl/strings/str_cat.h"
#include "src/capi/devices.h"
#include "src/capi/graph_pools.h"
#include "src/capi/last_error.h"
#include "umpool/umpool.h"

namespace umpool::capi {
namespace {

absl::StatusOr<SleepOptions> OptionsOf(unsigned offload_roles, unsigned discard_roles) {
  const unsigned all = (1u << kNumRoles) - 1;
  if (((offload_roles | discard_roles) & ~all) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umpool_sleep: role mask bits past the last role (", kNumRoles, " roles: mask 0x",
        absl::Hex(all), ")"));
  }
  if ((offload_roles & discard_roles) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umpool_sleep: roles 0x", absl::Hex(offload_roles & discard_roles),
        " are both offloaded and discarded"));
  }
  SleepOptions o;
  for (int r = 0; r < kNumRoles; ++r) {
    if (offload_roles & (1u << r)) o.roles[r] = SleepAction::kOffload;
    if (discard_roles & (1u << r)) o.roles[r] = SleepAction::kDiscard;
  }
  return o;
}

absl::StatusOr<Pool*> PrivatePool(int device, std::uint64_t hi, std::uint64_t lo) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  if (Pool* p = FindGraphPool(device, PoolId{hi, lo})) return p;
  return absl::InvalidArgumentError(absl::StrCat("no private pool (", hi, ", ", lo,
                                                 ") on device ", device));
}

// Sleep of the private pool (hi, lo), or with (0, 0) of the device's pool
// and then its private pools (one failing stops the rest: what slept stays
// asleep, umpool_wake_up brings it back).
absl::Status SleepPools(int device, std::uint64_t hi, std::uint64_t lo, unsigned offload_roles,
                        unsigned discard_roles, unsigned flags, Stream stream) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  absl::StatusOr<SleepOptions> o = OptionsOf(offload_roles, discard_roles);
  if (!o.ok()) return o.status();
  if ((flags & ~UMPOOL_SLEEP_CONTENTS_UNCHANGED) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("umpool_sleep: unknown flag bits 0x",
                                                   absl::Hex(flags & ~UMPOOL_SLEEP_CONTENTS_UNCHANGED)));
  }
  o->contents_unchanged = (flags & UMPOOL_SLEEP_CONTENTS_UNCHANGED) != 0;
  if (hi == 0 && lo == 0) {
    return ForPoolsOf(device, OnError::kStop, [&](Pool* p) { return p->Sleep(*o, stream); });
  }
  absl::StatusOr<Pool*> p = PrivatePool(device, hi, lo);
  if (!p.ok()) return p.status();
  return (*p)->Sleep(*o, stream);
}

}  // namespace
}  // namespace umpool::capi

using namespace umpool::capi;  // NOLINT: the exports below are thin

extern "C" {

int umpool_sleep(int device, unsigned offload_roles, unsigned discard_roles,
                 umpool_stream_t stream) {
  return Guard("umpool_sleep", [&] {
    return Done(SleepPools(device, 0, 0, offload_roles, discard_roles, 0, stream));
  });
}

int umpool_wake_up(int device, umpool_stream_t stream) {
  return Guard("umpool_wake_up", [&] {
    return Done(ForPoolsOf(device, OnError::kContinue,
                           [&](umpool::Pool* p) { return p->Wake(stream); }));
  });
}

int umpool_release_staging(int device) {
  return Guard("umpool_release_staging", [&] {
    return Done(ForPoolsOf(device, OnError::kContinue,
                           [](umpool::Pool* p) { return p->ReleaseStaging(); }));
  });
}

int umpool_reserve_staging(int device, unsigned offload_roles) {
  return Guard("umpool_reserve_staging", [&] {
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    absl::StatusOr<umpool::SleepOptions> o = OptionsOf(offload_roles, 0);
    if (!o.ok()) return Fail(o.status());
    return Done(ForPoolsOf(device, OnError::kStop,
                           [&](umpool::Pool* p) { return p->ReserveStaging(*o); }));
  });
}

int umpool_reserve_eviction_staging(int device, size_t bytes) {
  return Guard("umpool_reserve_eviction_staging", [&] {
    if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
    if (bytes == 0) return static_cast<int>(UMPOOL_OK);
    absl::StatusOr<umpool::Pool*> pool = PoolFor(device);  // created if need be
    if (!pool.ok()) return Fail(pool.status());
    return Done((*pool)->ReserveEvictionStaging(bytes));
  });
}

int umpool_sleep_pool(int device, uint64_t id_hi, uint64_t id_lo, unsigned offload_roles,
                      unsigned discard_roles, umpool_stream_t stream) {
  return Guard("umpool_sleep_pool", [&] {
    if (id_hi == 0 && id_lo == 0) {
      return Fail(absl::InvalidArgumentError("umpool_sleep_pool: pool id (0, 0) is no private pool"));
    }
    return Done(SleepPools(device, id_hi, id_lo, offload_roles, discard_roles, 0, stream));
  });
}

int umpool_sleep_ex(int device, uint64_t id_hi, uint64_t id_lo, unsigned offload_roles,
                    unsigned discard_roles, unsigned flags, umpool_stream_t stream) {
  return Guard("umpool_sleep_ex", [&] {
    return Done(SleepPools(device, id_hi, id_lo, offload_roles, discard_roles, flags, stream));
  });
}

int umpool_wake_pool(int device, uint64_t id_hi, uint64_t id_lo, umpool_stream_t stream) {
  return Guard("umpool_wake_pool", [&] {
    absl::StatusOr<umpool::Pool*> p = PrivatePool(device, id_hi, id_lo);
    if (!p.ok()) return Fail(p.status());
    return Done((*p)->Wake(stream));
  });
}

int umpool_is_asleep(int device) {
  return GuardValue<int>("umpool_is_asleep", -1, [&] {
    if (absl::Status st = CheckDevice(device); !st.ok()) {
      (void)Fail(st);
      return -1;
    }
    umpool::Pool* p = ExistingPool(device);
    return p != nullptr && p->GetSleepState().asleep ? 1 : 0;
  });
}

}  // extern "C"
