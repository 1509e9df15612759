// The pluggable-allocator entry points of umpool/umpool_torch.h: C++
// functions that may throw, kept out of the C ABI.
#include <stdexcept>

#include "src/capi/devices.h"
#include "src/capi/graph_pools.h"
#include "src/capi/last_error.h"
#include "umpool/umpool_torch.h"

namespace umpool::torch_hooks {

void* Malloc(std::size_t size, int device, umpool_stream_t stream) {
  void* p = umpool_malloc(size, device, stream);
  if (p != nullptr || size == 0) return p;
  absl::StatusOr<capi::Conf> conf = capi::CurrentConf();
  if (conf.ok() && !conf->raise_on_oom) return nullptr;
  throw std::runtime_error(capi::LastError());
}

void BeginAllocateToPool(int device, MempoolId id, std::function<bool(umpool_stream_t)> filter) {
  absl::Status st = capi::BeginToPool(device, capi::PoolId{id.first, id.second}, std::move(filter));
  if (!st.ok()) capi::Fail(st);
}

void EndAllocateToPool(int device, MempoolId id) {
  absl::Status st = capi::EndToPool(device, capi::PoolId{id.first, id.second});
  if (!st.ok()) capi::Fail(st);
}

void ReleasePool(int device, MempoolId id) {
  absl::Status st = capi::ReleasePool(device, capi::PoolId{id.first, id.second});
  if (!st.ok()) capi::Fail(st);
}

}  // namespace umpool::torch_hooks
