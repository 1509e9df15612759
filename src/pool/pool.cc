// umpool::Pool: the public face of PoolCore.
#include "umpool/pool.h"

#include <algorithm>
#include <utility>

#include "src/pool/pool_core.h"
#include "src/pool/size_class.h"

namespace umpool {
namespace {

// Roles served from plain device memory get a second backend on the same GPU
// (a second host backend beside a host backend; none on a device pool).
absl::StatusOr<std::unique_ptr<Backend>> DeviceMemoryBackend(const PoolOptions& options,
                                                             const Backend& main) {
  const bool wants = std::any_of(options.roles.begin(), options.roles.end(),
                                 [](const RolePolicy& p) { return p.device_memory; });
  if (!wants || main.kind() == BackendKind::kDevice) return std::unique_ptr<Backend>();
  if (main.kind() == BackendKind::kHost) return CreateHostBackend(0);
  return CreateBackend(BackendKind::kDevice, main.device());
}

// The traced paths, out of line so that the untraced ones stay a tail call.
ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<void*> AllocateTraced(internal::PoolCore& core,
                                                              std::size_t bytes, Stream stream,
                                                              Role role) {
  absl::StatusOr<void*> p = core.Allocate(bytes, stream, role);
  if (p.ok() && *p != nullptr) core.recorder()->Allocated(*p, bytes, stream, role);
  return p;
}

ABSL_ATTRIBUTE_NOINLINE absl::Status DeallocateTraced(internal::PoolCore& core, void* ptr,
                                                       std::optional<Stream> stream) {
  internal::TraceRecorder* r = core.recorder();
  Stream s = stream.value_or(nullptr);
  if (!stream.has_value() && ptr != nullptr) {
    if (absl::StatusOr<BlockInfo> b = core.BlockAt(ptr); b.ok()) s = b->stream;
  }
  const std::uint64_t id = ptr != nullptr ? r->Freeing(ptr, s) : 0;
  absl::Status st = stream.has_value() ? core.Deallocate(ptr, *stream) : core.DeallocateOwn(ptr);
  if (!st.ok()) r->Unfree(ptr, id);
  return st;
}

}  // namespace

Pool::Pool(std::unique_ptr<internal::PoolCore> core) : core_(std::move(core)) {}
Pool::~Pool() = default;

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolOptions& options) {
  if (absl::Status st = options.Validate(); !st.ok()) return st;
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend(options.backend, options.device);
  if (!backend.ok()) return backend.status();
  return Create(options, *std::move(backend));
}

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolOptions& options,
                                                   std::unique_ptr<Backend> backend) {
  if (backend == nullptr) return absl::InvalidArgumentError("Pool::Create: null backend");
  PoolOptions o = options;
  o.backend = backend->kind();
  o.device = backend->device();
  absl::StatusOr<std::unique_ptr<Backend>> device_memory = DeviceMemoryBackend(o, *backend);
  if (!device_memory.ok()) return device_memory.status();
  absl::StatusOr<std::unique_ptr<internal::PoolCore>> core =
      internal::PoolCore::Create(o, std::move(backend), *std::move(device_memory));
  if (!core.ok()) return core.status();
  return internal::PoolCore::Wrap(*std::move(core));
}

absl::StatusOr<void*> Pool::Allocate(std::size_t bytes, Stream stream, Role role) {
  if (ABSL_PREDICT_FALSE(core_->recorder() != nullptr)) return AllocateTraced(*core_, bytes, stream, role);
  return core_->Allocate(bytes, stream, role);
}
absl::Status Pool::Deallocate(void* ptr, Stream stream) {
  if (ABSL_PREDICT_FALSE(core_->recorder() != nullptr)) return DeallocateTraced(*core_, ptr, stream);
  return core_->Deallocate(ptr, stream);
}
absl::Status Pool::Deallocate(void* ptr) {
  if (ABSL_PREDICT_FALSE(core_->recorder() != nullptr)) {
    return DeallocateTraced(*core_, ptr, std::nullopt);
  }
  return core_->DeallocateOwn(ptr);
}
absl::Status Pool::RecordStream(void* ptr, Stream stream) {
  absl::Status st = core_->RecordStream(ptr, stream);
  if (internal::TraceRecorder* r = core_->recorder(); ABSL_PREDICT_FALSE(r != nullptr)) {
    if (st.ok()) r->RecordedStream(ptr, stream);
  }
  return st;
}
absl::Status Pool::ReleaseStream(Stream stream) { return core_->ReleaseStream(stream); }
absl::Status Pool::Trim() { return core_->Trim(); }
absl::Status Pool::Sleep(const SleepOptions& options, Stream stream) {
  return core_->Sleep(options, stream);
}
absl::Status Pool::Wake(Stream stream) { return core_->Wake(stream); }
void Pool::SetPressureCallback(PressureCallback callback) {
  core_->SetPressureCallback(std::move(callback));
}
SleepState Pool::GetSleepState() const { return core_->GetSleepState(); }
absl::Status Pool::ReleaseStaging() { return core_->ReleaseStaging(); }
absl::StatusOr<Location> Pool::BlockLocation(const void* ptr) const {
  return core_->BlockLocation(ptr);
}
RoleResidency Pool::GetResidency(Role role) const {
  return static_cast<unsigned>(role) < kNumRoles ? core_->GetResidency(role) : RoleResidency{};
}
absl::Status Pool::ReserveEvictionStaging(std::size_t bytes) {
  return core_->ReserveEvictionStaging(bytes);
}

absl::Status Pool::ReserveStaging(const SleepOptions& options) {
  return core_->ReserveStaging(options);
}
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
std::vector<BlockInfo> Pool::LiveBlocks() const { return core_->LiveBlocks(); }
absl::Status Pool::RestoreLiveBlocks(const std::vector<BlockInfo>& blocks,
                                     std::vector<void*>* freed, std::vector<void*>* allocated) {
  return core_->RestoreLiveBlocks(blocks, freed, allocated);
}
std::vector<SpanInfo> Pool::Spans() const { return core_->Spans(); }
void Pool::ResetPeaks() { core_->ResetPeaks(); }
absl::Status Pool::SetCapacity(std::size_t bytes) { return core_->SetCapacity(bytes); }
std::size_t Pool::MaxCapacity() const { return core_->MaxCapacity(); }
std::size_t Pool::RoundedSize(std::size_t bytes, Role role) const {
  return core_->RoundedSize(bytes, role);
}
bool Pool::Holds(const void* ptr) const { return core_->pagemap().Lookup(ptr) != nullptr; }
absl::StatusOr<std::size_t> Pool::BlockSize(const void* ptr) const {
  absl::StatusOr<BlockInfo> b = core_->BlockAt(ptr);
  if (!b.ok()) return b.status();
  return b->bytes;
}
absl::StatusOr<BlockInfo> Pool::BlockContaining(const void* ptr) const {
  return core_->BlockContaining(ptr);
}
const PoolOptions& Pool::options() const { return core_->options(); }
std::string Pool::Describe() const { return core_->backend().Describe(); }
absl::StatusOr<std::size_t> Pool::DeviceTotalBytes() const { return core_->backend().TotalBytes(); }

std::vector<SizeClassRow> SizeClassTable() {
  std::vector<SizeClassRow> rows;
  for (const internal::SizeClassInfo& c : internal::kSizeClasses) {
    rows.push_back(SizeClassRow{c.size, c.slab_bytes, c.blocks, c.tail_bytes});
  }
  return rows;
}

namespace internal {

std::unique_ptr<Pool> PoolCore::Wrap(std::unique_ptr<PoolCore> core) {
  return std::unique_ptr<Pool>(new Pool(std::move(core)));
}

PoolCore* PoolCore::Unwrap(Pool& pool) { return pool.core_.get(); }

}  // namespace internal
}  // namespace umpool
