// The Backend interface's optional parts: staging memory and copies, which a
// backend an engine supplies need not have (Pool::Sleep then evicts).
#include "umpool/backend.h"

namespace umpool {

absl::StatusOr<void*> Backend::AllocateStaging(std::size_t) {
  return absl::UnimplementedError("this backend has no staging memory");
}

void Backend::FreeStaging(void*, std::size_t) {}

absl::Status Backend::Copy(void*, const void*, std::size_t, Stream) {
  return absl::UnimplementedError("this backend cannot copy");
}

}  // namespace umpool
