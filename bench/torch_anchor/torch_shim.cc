// bench/torch_anchor/torch_shim.cc: PyTorch's CUDACachingAllocator behind a
// tiny C interface, so that bench/pool_benchmark runs the very same workloads
// against it (it dlopens this library when UMPOOL_TORCH_SHIM names it).
// Built on the GPU machine against its torch (tools/gpu-check run does it):
//   g++ -O2 -shared -fPIC torch_shim.cc -I<torch>/include -L<torch>/lib -lc10 -lc10_cuda
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

extern "C" {

int umpool_torch_anchor_init() {
  c10::cuda::CUDACachingAllocator::init(c10::cuda::device_count());
  return 0;
}

void* umpool_torch_anchor_alloc(size_t bytes, cudaStream_t stream) {
  return c10::cuda::CUDACachingAllocator::raw_alloc_with_stream(bytes, stream);
}

void umpool_torch_anchor_free(void* ptr) { c10::cuda::CUDACachingAllocator::raw_delete(ptr); }

void umpool_torch_anchor_empty_cache() { c10::cuda::CUDACachingAllocator::emptyCache(); }

// out[0] reserved bytes now, out[1] reserved peak, out[2] segments allocated
// so far (cudaMalloc calls), out[3] allocated bytes peak; current device.
void umpool_torch_anchor_stats(long long* out) {
  const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  constexpr std::size_t kAll = 0;  // StatType::AGGREGATE
  out[0] = s.reserved_bytes[kAll].current;
  out[1] = s.reserved_bytes[kAll].peak;
  out[2] = s.segment[kAll].allocated;
  out[3] = s.allocated_bytes[kAll].peak;
}

}  // extern "C"
