// MemPools and CUDA graph pools under umpool's allocator.
//
// A pool id (PyTorch's MempoolId_t) is one of:
//   a private pool (the default): umpool's own (umpool_create_pool): CUDA
//     graph captures and plain torch.cuda.MemPool(); routed by the C ABI
//     (umpool_begin_allocate_to_pool), which also stops every pool's events
//     while a capture may be underway;
//   a role pool (umpool.torch.mem_pool(role)): allocations it routes go to
//     the device's pool with that role's placement (e.g. the KV cache);
//   another allocator's pool (torch.cuda.MemPool(allocator)): allocations it
//     routes come from that allocator, and are freed back to it.
// Role and foreign routes are kept here; the allocation path looks at them
// only while one is active (one relaxed load otherwise).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "allocator.h"

namespace umpool_torch {

// How many checkpoints were restored (CUDA graph trees), for tests.
extern std::atomic<long long> checkpoint_restores;

class Pools {
 public:
  static Pools& Get();

  // While a role or foreign route is active: serves the allocation if a
  // route picks (device, stream), returning true (with *out, or raising).
  bool routing() const { return routes_.load(std::memory_order_acquire) > 0; }
  bool TryRouted(c10::DeviceIndex device, cudaStream_t stream, size_t n, void** out);
  // Frees a block of a foreign allocator; false if `ptr` is not one.
  bool FreeForeign(void* ptr);
  // After the device's pool ran out: a pool marked use_on_oom, if any.
  bool TryUseOnOom(c10::DeviceIndex device, cudaStream_t stream, size_t n, void** out);

  void SetRole(c10::DeviceIndex device, c10::MempoolId_t id, int role);
  void Begin(c10::DeviceIndex device, c10::MempoolId_t id, std::function<bool(cudaStream_t)> filter);
  void End(c10::DeviceIndex device, c10::MempoolId_t id);
  void Release(c10::DeviceIndex device, c10::MempoolId_t id);
  int UseCount(c10::DeviceIndex device, c10::MempoolId_t id);
  void CreateOrIncref(c10::DeviceIndex device, c10::MempoolId_t id,
                      std::shared_ptr<cca::CUDAAllocator> allocator);
  void SetUseOnOom(c10::DeviceIndex device, c10::MempoolId_t id, bool use);
  void EmptyCache(c10::MempoolId_t id);

 private:
  enum class Kind { kPrivate, kRole, kForeign };
  struct Entry {
    Kind kind = Kind::kPrivate;
    int role = 0;
    int uses = 0;  // role and foreign pools (private pools count in the C ABI)
    bool use_on_oom = false;
    std::shared_ptr<cca::CUDAAllocator> allocator;  // kForeign
    // Active routes of this pool (a stack: begins nest).
    std::vector<std::function<bool(cudaStream_t)>> filters;
    // kPrivate: what the C ABI's filter calls, one per active begin.
    std::vector<std::unique_ptr<std::function<bool(cudaStream_t)>>> thunks;
  };
  using Key = std::pair<c10::DeviceIndex, c10::MempoolId_t>;
  Entry& EntryFor(c10::DeviceIndex device, c10::MempoolId_t id);  // caller holds mu_

  std::atomic<int> routes_{0};      // active role and foreign routes
  std::atomic<int> foreign_{0};     // foreign pools that ever allocated
  std::atomic<bool> any_use_on_oom_{false};
  std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::unordered_map<void*, std::shared_ptr<cca::CUDAAllocator>> foreign_blocks_;
};

}  // namespace umpool_torch
