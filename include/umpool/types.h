// umpool/types.h: the small vocabulary types shared by every public header.
//
// Nothing here needs the CUDA headers: `umpool::Stream` is declared as the very
// type CUDA declares for `cudaStream_t` (`struct CUstream_st*`), so a
// `cudaStream_t` converts to it with no cast, and code that never includes CUDA
// can still name streams (the host backend hands out its own stream handles).
#ifndef UMPOOL_TYPES_H_
#define UMPOOL_TYPES_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "umpool/roles.h"

struct CUstream_st;  // same declaration as in CUDA's driver_types.h
struct CUevent_st;

namespace umpool {

// A stream handle. Identical in type to `cudaStream_t`. `nullptr` is CUDA's
// legacy default stream. umpool compares streams by handle value only.
using Stream = CUstream_st*;

// An event handle. Identical in type to `cudaEvent_t`.
using Event = CUevent_st*;

inline constexpr Stream kDefaultStream = nullptr;

// Every block umpool hands out is aligned to at least this many bytes.
inline constexpr std::size_t kMinAlignment = 256;

// What an allocation is for. The role picks the advice and prefetch policy of
// the slabs and large blocks it is served from (see RolePolicy in options.h):
//   kDefault     the seed allocator's policy: prefetch below a size threshold
//   kWeights     model parameters: always resident on the GPU
//   kKv          KV cache: may page-fault to host memory
//   kActivations short-lived tensors: always resident on the GPU
// The list is umpool/roles.h's table.
enum class Role : std::uint8_t {
#define UMPOOL_ROLE_ENUMERATOR_(e, name, value) e = value,
  UMPOOL_ROLES(UMPOOL_ROLE_ENUMERATOR_)
#undef UMPOOL_ROLE_ENUMERATOR_
};
inline constexpr int kNumRoles = UMPOOL_NUM_ROLES;

// Where memory should be: the pool's GPU, or host memory.
enum class Location : std::uint8_t { kDevice = 0, kHost = 1 };

// What a discarded range becomes (Backend::Discard).
enum class DiscardMode : std::uint8_t {
  kDrop = 0,    // pages dropped; the next touch faults them in
  kRefill = 1,  // pages populated again on the GPU, contents undefined
};

// Where slabs come from.
enum class BackendKind : std::uint8_t {
  kManaged = 0,  // cudaMallocManaged + advice + prefetch (the product)
  kDevice = 1,   // cudaMalloc (comparisons; roles that need plain device memory)
  kHost = 2,     // plain host memory with host-side streams/events (no GPU needed)
  kVmm = 3,      // CUDA VMM (cuMemCreate + cuMemMap): GPU pages given back on sleep
};

// Lower-case names ("default", "weights", "kv", "activations") and back.
// RoleName of an invalid role is "invalid"; ParseRole of an unknown name is
// InvalidArgument listing the names. Thread-safe.
absl::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(absl::string_view name);

// "managed", "device", "host", "vmm" and back.
absl::string_view BackendKindName(BackendKind kind);
absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name);

}  // namespace umpool

#endif  // UMPOOL_TYPES_H_
