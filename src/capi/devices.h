// src/capi/devices.h: the C ABI's process-wide state: the configuration and
// one pool per device.
//
// The configuration is read once (umpool_configure, else UMPOOL_CONF) and
// fixed when the first pool is created. Pools are created lazily under a
// mutex and published through atomic pointers, so the allocation path reads
// them lock-free; they live until the process ends (PyTorch frees tensors
// during interpreter shutdown).
//
// Thread safety: every function may be called from any thread.
#ifndef UMPOOL_SRC_CAPI_DEVICES_H_
#define UMPOOL_SRC_CAPI_DEVICES_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/capi/conf.h"
#include "umpool/pool.h"

namespace umpool::capi {

inline constexpr int kMaxDevices = 64;

// Whether `device` is a device ordinal umpool can hold a pool for; a plain
// test (frees ask it with the hint -1), where CheckDevice builds the error.
inline bool ValidDevice(int device) { return device >= 0 && device < kMaxDevices; }
absl::Status CheckDevice(int device);
// Sets the configuration; FailedPrecondition once a pool exists.
absl::Status Configure(absl::string_view text);
// Reads UMPOOL_CONF if nothing was configured; the configuration's error, if any.
absl::Status EnsureConfigured();
// The configuration (read first if needed).
absl::StatusOr<Conf> CurrentConf();

// The device's pool, created on first use.
absl::StatusOr<Pool*> PoolFor(int device);
// The device's pool if it exists, else nullptr.
Pool* ExistingPool(int device);
// The device's own pool holding `ptr` (trying `hint` first), or nullptr.
// Private graph pools are found by graph_pools.h's GraphPoolHolding.
Pool* DevicePoolHolding(const void* ptr, int hint);

// The memory fraction of a device (1.0 until set); setting it caps the pool.
absl::Status SetMemoryFraction(double fraction, int device);
double MemoryFraction(int device);

}  // namespace umpool::capi

#endif  // UMPOOL_SRC_CAPI_DEVICES_H_
