// The Backend interface's optional parts: staging memory, copies and a side
// stream, which a backend an engine supplies need not have (Pool::Sleep then
// evicts; Sleep and Wake keep their page work on the caller's stream).
#include "umpool/backend.h"

namespace umpool {

absl::StatusOr<void*> Backend::AllocateStaging(std::size_t) {
  return absl::UnimplementedError("this backend has no staging memory");
}

void Backend::FreeStaging(void*, std::size_t) {}

absl::Status Backend::Copy(void*, const void*, std::size_t, Stream) {
  return absl::UnimplementedError("this backend cannot copy");
}

absl::Status Backend::CopyBack(void* dst, const void* src, std::size_t bytes, Stream stream) {
  return Copy(dst, src, bytes, stream);
}

absl::Status Backend::CopyBeside(void* dst, const void* src, std::size_t bytes, Stream stream) {
  return Copy(dst, src, bytes, stream);
}

absl::StatusOr<Stream> Backend::SideStream() {
  return absl::UnimplementedError("this backend has no side stream");
}

}  // namespace umpool
