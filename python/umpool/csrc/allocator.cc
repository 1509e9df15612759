// UmpoolAllocator: allocation, frees and the small hooks.
#include "allocator.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

#include <string>

#include "history.h"
#include "pools.h"

namespace umpool_torch {

UmpoolAllocator& Allocator() {
  static UmpoolAllocator* a = new UmpoolAllocator;  // never destroyed
  return *a;
}

void RawDelete(void* ptr) {
  if (ptr == nullptr) return;
  if (History::Get().active()) History::Get().OnFree(ptr);
  // A block of another allocator's MemPool goes back to it (one atomic load
  // when there is none); the rest is umpool's. Called from DataPtr
  // destructors: must not throw; umpool records and logs (once) what went wrong.
  if (Pools::Get().FreeForeign(ptr)) return;
  (void)umpool_free_block(ptr);
}

void* UmpoolAllocator::Allocate(size_t n, c10::DeviceIndex device, cudaStream_t stream) {
  void* p = nullptr;
  if (n == 0) return p;
  if (C10_UNLIKELY(Pools::Get().routing()) && Pools::Get().TryRouted(device, stream, n, &p)) {
    return p;
  }
  const int code = umpool_alloc(n, device, stream, 0, &p);
  if (C10_UNLIKELY(code != UMPOOL_OK)) {
    if (code == UMPOOL_ERROR_OUT_OF_MEMORY && Pools::Get().TryUseOnOom(device, stream, n, &p)) {
      return p;
    }
    Raise(code, n, device, stream);
  }
  if (C10_UNLIKELY(History::Get().active())) {
    History::Get().OnAlloc(device, p, n, stream, {0, 0});
  }
  return p;
}

void UmpoolAllocator::Raise(int code, size_t n, c10::DeviceIndex device, cudaStream_t stream) {
  const std::string why = umpool_last_error();
  if (code != UMPOOL_ERROR_OUT_OF_MEMORY) {
    UMPOOL_TORCH_CHECK(false, "umpool could not allocate ", n, " bytes on device ", int(device), ": ", why);
  }
  size_t device_free = 0, device_total = 0;
  {
    c10::cuda::CUDAGuard guard(device);
    if (cudaMemGetInfo(&device_free, &device_total) != cudaSuccess) (void)cudaGetLastError();
  }
  umpool_stats s{};
  (void)umpool_get_stats(device, &s);
  if (History::Get().active()) History::Get().OnOom(device, n, device_free, stream);
  std::vector<cca::OutOfMemoryObserver> observers;
  {
    std::lock_guard<std::mutex> lock(observers_mu_);
    observers = observers_;
  }
  for (const auto& observer : observers) {
    observer(device, static_cast<size_t>(s.allocated_bytes_current), device_total, device_free);
  }
  TORCH_CHECK_WITH(OutOfMemoryError, false,
                   Msg("CUDA out of memory (umpool). Tried to allocate ", n, " bytes on device ",
                       int(device), ". ", why, " The device has ", device_free, " of ",
                       device_total, " bytes free. umpool.memory_summary() shows where the "
                       "pool's memory is."));
}

c10::DataPtr UmpoolAllocator::allocate(size_t n) {
  c10::DeviceIndex device = -1;
  C10_CUDA_CHECK(c10::cuda::GetDevice(&device));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  void* p = Allocate(n, device, stream);
  return {p, p, &RawDelete, c10::Device(c10::DeviceType::CUDA, device)};
}

void* UmpoolAllocator::raw_alloc(size_t nbytes) {
  c10::DeviceIndex device = -1;
  C10_CUDA_CHECK(c10::cuda::GetDevice(&device));
  return Allocate(nbytes, device, c10::cuda::getCurrentCUDAStream(device).stream());
}

void* UmpoolAllocator::raw_alloc_with_stream(size_t nbytes, cudaStream_t stream) {
  c10::DeviceIndex device = -1;
  C10_CUDA_CHECK(c10::cuda::GetDevice(&device));
  return Allocate(nbytes, device, stream);
}

void UmpoolAllocator::copy_data(void* dest, const void* src, std::size_t count) const {
  C10_CUDA_CHECK(cudaMemcpy(dest, src, count, cudaMemcpyDefault));
}

void UmpoolAllocator::init(int device_count) {
  umpool_init(device_count);
  initialized_.store(true);
}

double UmpoolAllocator::getMemoryFraction(c10::DeviceIndex device) {
  return umpool_get_memory_fraction(device);
}

void UmpoolAllocator::setMemoryFraction(double fraction, c10::DeviceIndex device) {
  umpool_clear_last_error();
  umpool_set_memory_fraction(fraction, device);
  UMPOOL_TORCH_CHECK(umpool_last_error_code() == UMPOOL_OK, "umpool: ", umpool_last_error());
}

void UmpoolAllocator::emptyCache(c10::MempoolId_t mempool_id) {
  if (mempool_id.first != 0 || mempool_id.second != 0) {
    Pools::Get().EmptyCache(mempool_id);
    return;
  }
  umpool_clear_last_error();
  umpool_empty_cache();
  UMPOOL_TORCH_CHECK(umpool_last_error_code() == UMPOOL_OK, "umpool: empty_cache: ", umpool_last_error());
}

namespace {

void LargestFree(void* ctx, const umpool_span_info* span) {
  if (span->is_slab_space) return;  // its free ranges are not blocks yet
  auto* largest = static_cast<size_t*>(ctx);
  for (size_t i = 0; i < span->block_count; ++i) {
    const umpool_block_run& r = span->blocks[i];
    if (r.state == 'F' || r.state == 'U') *largest = std::max<size_t>(*largest, r.bytes);
  }
}

}  // namespace

void UmpoolAllocator::cacheInfo(c10::DeviceIndex device, size_t* largestBlock) {
  *largestBlock = 0;
  (void)umpool_visit_spans(device, &LargestFree, largestBlock);
}

void* UmpoolAllocator::getBaseAllocation(void* ptr, size_t* size) {
  void* base = nullptr;
  size_t bytes = 0;
  UMPOOL_TORCH_CHECK(umpool_block_containing(ptr, &base, &bytes) == UMPOOL_OK, "umpool: ",
              umpool_last_error());
  if (size != nullptr) *size = bytes;
  return base;
}

void UmpoolAllocator::recordStream(const c10::DataPtr& ptr, c10::cuda::CUDAStream stream) {
  if (ptr.get() == nullptr) return;
  umpool_clear_last_error();
  umpool_record_stream(ptr.get(), stream.stream());
  UMPOOL_TORCH_CHECK(umpool_last_error_code() == UMPOOL_OK, "umpool: record_stream: ", umpool_last_error());
}

cca::ShareableHandle UmpoolAllocator::shareIpcHandle(void*) {
  UMPOOL_TORCH_CHECK(false,
              "umpool: tensors in CUDA managed memory cannot be shared through CUDA IPC "
              "(cudaIpcGetMemHandle refuses managed ranges), so torch.multiprocessing cannot "
              "send them to another process. Keep such tensors in a process that does not use "
              "umpool, copy them into shared CPU memory, or share with NCCL.");
}

std::shared_ptr<void> UmpoolAllocator::getIpcDevPtr(std::string) {
  UMPOOL_TORCH_CHECK(false, "umpool: opening CUDA IPC handles is not supported under umpool's allocator "
                     "(see shareIpcHandle).");
}

void UmpoolAllocator::attachOutOfMemoryObserver(cca::OutOfMemoryObserver observer) {
  std::lock_guard<std::mutex> lock(observers_mu_);
  observers_.push_back(std::move(observer));
}

void UmpoolAllocator::enablePeerAccess(c10::DeviceIndex dev, c10::DeviceIndex dev_to_access) {
  c10::cuda::CUDAGuard guard(dev);
  const cudaError_t err = cudaDeviceEnablePeerAccess(dev_to_access, 0);
  if (err == cudaErrorPeerAccessAlreadyEnabled) {
    (void)cudaGetLastError();
  } else {
    C10_CUDA_CHECK(err);
  }
}

cudaError_t UmpoolAllocator::memcpyAsync(void* dst, int dstDevice, const void* src, int srcDevice,
                                         size_t count, cudaStream_t stream, bool p2p_enabled) {
  // Managed memory is addressable from every device; peer copies of plain
  // device memory need the peer form when peer access is off.
  if (p2p_enabled || dstDevice == srcDevice) {
    return cudaMemcpyAsync(dst, src, count, cudaMemcpyDefault, stream);
  }
  return cudaMemcpyPeerAsync(dst, dstDevice, src, srcDevice, count, stream);
}

}  // namespace umpool_torch
