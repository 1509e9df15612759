// umpool's CUDA allocator for PyTorch: a c10::cuda::CUDACachingAllocator::
// CUDAAllocator over umpool's C ABI (include/umpool/umpool.h), compiled
// against the installed torch by umpool.torch (python/umpool/_torch_build.py)
// and installed in place of PyTorch's own before CUDA is initialised.
//
// Per tensor: umpool_alloc on the current device and stream, and a DataPtr
// whose context is the pointer itself; its deleter frees the block on the
// stream it was allocated for (umpool remembers it). No map, no mutex.
// Everything else PyTorch asks of its allocator (stats, snapshots and memory
// history, CUDA graph private pools and their checkpoints, MemPools, OOM
// observers, memory fraction, empty_cache) is answered from umpool's pools:
// stats.cc, history.cc, pools.cc.
//
// Thread safety: every method may be called from any thread (umpool's own
// guarantees); the history and pool tables have their own mutexes.
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include <atomic>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "umpool/umpool.h"

namespace umpool_torch {

namespace cca = c10::cuda::CUDACachingAllocator;

// Joins the parts of an error message without iostreams: the allocator is
// built by whatever C++ compiler the user has ($CXX first), and must not
// depend on that compiler's iostream code matching the libstdc++ the process
// loads. On the H200 machine ($CXX=/opt/gcc/bin/g++, the system's libstdc++
// loaded) formatting numbers through c10::str crashed while raising OOM;
// with Msg the same tests pass. The exact mismatch was not pinned down.
inline void AppendPart(std::string& s, const char* p) { s += p; }
inline void AppendPart(std::string& s, const std::string& p) { s += p; }
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
void AppendPart(std::string& s, T v) {
  s += std::to_string(static_cast<long long>(v));
}
template <class... Parts>
std::string Msg(const Parts&... parts) {
  std::string s;
  (AppendPart(s, parts), ...);
  return s;
}
// TORCH_CHECK with a message joined by Msg (one string: no c10::str formatting).
#define UMPOOL_TORCH_CHECK(cond, ...) TORCH_CHECK(cond, ::umpool_torch::Msg(__VA_ARGS__))

// The deleter of every DataPtr umpool hands out (raw_deleter()).
void RawDelete(void* ptr);

class UmpoolAllocator final : public cca::CUDAAllocator {
 public:
  // --- allocation (allocator.cc) ---
  c10::DataPtr allocate(size_t n) override;
  c10::DeleterFnPtr raw_deleter() const override { return &RawDelete; }
  void copy_data(void* dest, const void* src, std::size_t count) const override;
  void* raw_alloc(size_t nbytes) override;
  void* raw_alloc_with_stream(size_t nbytes, cudaStream_t stream) override;
  void raw_delete(void* ptr) override { RawDelete(ptr); }
  void init(int device_count) override;
  bool initialized() override { return initialized_.load(); }
  double getMemoryFraction(c10::DeviceIndex device) override;
  void setMemoryFraction(double fraction, c10::DeviceIndex device) override;
  std::vector<cca::StreamSegmentSize> getExpandableSegmentSizes(c10::DeviceIndex) override {
    return {};
  }
  void enable(bool value) override { enabled_.store(value); }
  bool isEnabled() const override { return enabled_.load(); }
  void emptyCache(c10::MempoolId_t mempool_id = {0, 0}) override;
  void cacheInfo(c10::DeviceIndex device, size_t* largestBlock) override;
  void* getBaseAllocation(void* ptr, size_t* size) override;
  void recordStream(const c10::DataPtr& ptr, c10::cuda::CUDAStream stream) override;
  using cca::CUDAAllocator::recordStream;
  cca::ShareableHandle shareIpcHandle(void* ptr) override;
  std::shared_ptr<void> getIpcDevPtr(std::string handle) override;
  void attachOutOfMemoryObserver(cca::OutOfMemoryObserver observer) override;
  void enablePeerAccess(c10::DeviceIndex dev, c10::DeviceIndex dev_to_access) override;
  cudaError_t memcpyAsync(void* dst, int dstDevice, const void* src, int srcDevice, size_t count,
                          cudaStream_t stream, bool p2p_enabled) override;
  std::string name() override { return "umpool"; }

  // --- statistics (stats.cc) ---
  c10::CachingDeviceAllocator::DeviceStats getDeviceStats(c10::DeviceIndex device) override;
  void resetAccumulatedStats(c10::DeviceIndex device) override;
  void resetPeakStats(c10::DeviceIndex device) override;

  // --- history and snapshots (history.cc) ---
  cca::SnapshotInfo snapshot(c10::MempoolId_t mempool_id = {0, 0},
                             bool include_traces = true) override;
  bool isHistoryEnabled() override;
  void recordHistory(bool enabled, cca::CreateContextFn context_recorder,
                     size_t alloc_trace_max_entries, cca::RecordContext when, bool clearHistory,
                     const std::vector<std::string>& skip_actions) override;
  void attachAllocatorTraceTracker(cca::AllocatorTraceTracker tracker) override;

  // --- pools: CUDA graphs, MemPools, checkpoints (pools.cc) ---
  void beginAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                           std::function<bool(cudaStream_t)> filter) override;
  void endAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  void releasePool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  int getPoolUseCount(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  void createOrIncrefPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                          std::shared_ptr<cca::CUDAAllocator> allocator) override;
  void setUseOnOOM(c10::DeviceIndex device, c10::MempoolId_t mempool_id, bool use_on_oom) override;
  void setNoSplit(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  bool checkPoolLiveAllocations(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                                const std::unordered_set<void*>& expected_live_allocations) override;
  std::shared_ptr<cca::AllocatorState> getCheckpointState(c10::DeviceIndex device,
                                                          c10::MempoolId_t id) override;
  cca::CheckpointDelta setCheckpointPoolState(c10::DeviceIndex device,
                                              std::shared_ptr<cca::AllocatorState> pps) override;

  // Allocates `n` bytes on (device, stream) for PyTorch; raises
  // torch.OutOfMemoryError (c10::OutOfMemoryError) when umpool has no memory,
  // after running the OOM observers.
  void* Allocate(size_t n, c10::DeviceIndex device, cudaStream_t stream);

 private:
  [[noreturn]] void Raise(int code, size_t n, c10::DeviceIndex device, cudaStream_t stream);

  std::atomic<bool> initialized_{false};
  std::atomic<bool> enabled_{true};
  std::mutex observers_mu_;
  std::vector<cca::OutOfMemoryObserver> observers_;
};

// The one allocator object (never destroyed: tensors may die at exit).
UmpoolAllocator& Allocator();

}  // namespace umpool_torch
