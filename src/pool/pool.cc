// umpool::Pool: the public face of PoolCore.
#include "umpool/pool.h"

#include <algorithm>
#include <utility>

#include "src/backend/backend.h"
#include "src/pool/pool_core.h"

namespace umpool {

Pool::Pool(std::unique_ptr<internal::PoolCore> core) : core_(std::move(core)) {}
Pool::~Pool() = default;

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolOptions& options) {
  if (absl::Status st = options.Validate(); !st.ok()) return st;
  absl::StatusOr<std::unique_ptr<internal::Backend>> backend =
      internal::CreateBackend(options.backend, options.device);
  if (!backend.ok()) return backend.status();
  // Roles served from plain device memory get a device backend on the same
  // GPU (a second host backend on a host pool; none on a device pool).
  std::unique_ptr<internal::Backend> device_memory;
  const bool wants = std::any_of(options.roles.begin(), options.roles.end(),
                                 [](const RolePolicy& p) { return p.device_memory; });
  if (wants && options.backend != BackendKind::kDevice) {
    absl::StatusOr<std::unique_ptr<internal::Backend>> d = internal::CreateBackend(
        options.backend == BackendKind::kHost ? BackendKind::kHost : BackendKind::kDevice,
        options.device);
    if (!d.ok()) return d.status();
    device_memory = *std::move(d);
  }
  absl::StatusOr<std::unique_ptr<internal::PoolCore>> core =
      internal::PoolCore::Create(options, *std::move(backend), std::move(device_memory));
  if (!core.ok()) return core.status();
  return internal::PoolCore::Wrap(*std::move(core));
}

namespace {

// The traced paths, out of line so that the untraced ones stay a tail call.
ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<void*> AllocateTraced(internal::PoolCore& core,
                                                              std::size_t bytes, Stream stream,
                                                              Role role) {
  absl::StatusOr<void*> p = core.Allocate(bytes, stream, role);
  if (p.ok() && *p != nullptr) core.recorder()->Allocated(*p, bytes, stream, role);
  return p;
}

ABSL_ATTRIBUTE_NOINLINE absl::Status DeallocateTraced(internal::PoolCore& core, void* ptr,
                                                       Stream stream) {
  internal::TraceRecorder* r = core.recorder();
  const std::uint64_t id = ptr != nullptr ? r->Freeing(ptr, stream) : 0;
  absl::Status st = core.Deallocate(ptr, stream);
  if (!st.ok()) r->Unfree(ptr, id);
  return st;
}

}  // namespace

absl::StatusOr<void*> Pool::Allocate(std::size_t bytes, Stream stream, Role role) {
  if (ABSL_PREDICT_FALSE(core_->recorder() != nullptr)) return AllocateTraced(*core_, bytes, stream, role);
  return core_->Allocate(bytes, stream, role);
}
absl::Status Pool::Deallocate(void* ptr, Stream stream) {
  if (ABSL_PREDICT_FALSE(core_->recorder() != nullptr)) return DeallocateTraced(*core_, ptr, stream);
  return core_->Deallocate(ptr, stream);
}
absl::Status Pool::RecordStream(void* ptr, Stream stream) {
  absl::Status st = core_->RecordStream(ptr, stream);
  if (internal::TraceRecorder* r = core_->recorder(); ABSL_PREDICT_FALSE(r != nullptr)) {
    if (st.ok()) r->RecordedStream(ptr, stream);
  }
  return st;
}
absl::Status Pool::Trim() { return core_->Trim(); }
absl::Status Pool::Prefetch(const void* ptr, std::size_t bytes, Location where, Stream stream) {
  return core_->Prefetch(ptr, bytes, where, stream);
}
absl::Status Pool::Evict(const void* ptr, Stream stream) {
  return core_->Prefetch(ptr, 0, Location::kHost, stream);
}
absl::Status Pool::Fetch(const void* ptr, Stream stream) {
  return core_->Prefetch(ptr, 0, Location::kDevice, stream);
}
absl::Status Pool::PrefetchBlocks(const void* const* ptrs, std::size_t count, Location where,
                                  Stream stream) {
  return core_->PrefetchBlocks(ptrs, count, where, stream);
}
Stats Pool::GetStats() const { return core_->GetStats(); }
void Pool::BeginCapture() { core_->BeginCapture(); }
absl::Status Pool::EndCapture() { return core_->EndCapture(); }
std::string Pool::SnapshotJson() const { return core_->SnapshotJson(); }
void Pool::ResetPeaks() { core_->ResetPeaks(); }
absl::Status Pool::SetCapacity(std::size_t bytes) { return core_->SetCapacity(bytes); }
std::size_t Pool::MaxCapacity() const { return core_->MaxCapacity(); }
std::size_t Pool::RoundedSize(std::size_t bytes, Role role) const {
  return core_->RoundedSize(bytes, role);
}
bool Pool::Holds(const void* ptr) const { return core_->pagemap().Lookup(ptr) != nullptr; }
absl::StatusOr<std::size_t> Pool::BlockSize(const void* ptr) const {
  return core_->BlockSize(ptr);
}
const PoolOptions& Pool::options() const { return core_->options(); }
std::string Pool::Describe() const { return core_->backend().Describe(); }

namespace internal {

std::unique_ptr<Pool> PoolCore::Wrap(std::unique_ptr<PoolCore> core) {
  return std::unique_ptr<Pool>(new Pool(std::move(core)));
}

PoolCore* PoolCore::Unwrap(Pool& pool) { return pool.core_.get(); }

}  // namespace internal
}  // namespace umpool
