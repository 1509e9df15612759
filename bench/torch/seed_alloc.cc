// bench/torch/seed_alloc.cc: the allocators umpool is compared with in PyTorch.
//
// seed_malloc/seed_free: the original per-request managed allocator that
// umpool grew out of (managed_alloc.cu): cudaMallocManaged for every tensor,
// PreferredLocation = GPU, AccessedBy = CPU, prefetch to the GPU below 2 GiB
// (a failed prefetch is a warning); free = stream sync + cudaFree; errors
// print the size in GiB and return nullptr.
//
// managed_malloc/managed_free: a plain managed allocator (cudaMallocManaged,
// no advice), the pattern Megatron-LM uses under torch.cuda.MemPool.
#include <cuda_runtime_api.h>

#include <cstdio>

extern "C" {

void* seed_malloc(size_t size, int device, cudaStream_t stream) {
  void* ptr = nullptr;
  cudaSetDevice(device);
  cudaError_t err = cudaMallocManaged(&ptr, size, cudaMemAttachGlobal);
  if (err != cudaSuccess) {
    std::fprintf(stderr, "seed_malloc: cudaMallocManaged(%.3f GiB) failed: %s\n",
                 size / double(1 << 30), cudaGetErrorString(err));
    return nullptr;
  }
  cudaMemLocation gpu{cudaMemLocationTypeDevice, device};
  cudaMemLocation cpu{cudaMemLocationTypeHost, 0};
  cudaMemAdvise(ptr, size, cudaMemAdviseSetPreferredLocation, gpu);
  cudaMemAdvise(ptr, size, cudaMemAdviseSetAccessedBy, cpu);
  // Weights are small and must be in HBM; KV-cache blocks are large and may page-fault.
  if (size < (size_t{2} << 30)) {
    err = cudaMemPrefetchAsync(ptr, size, gpu, 0, stream);
    if (err != cudaSuccess) {
      std::fprintf(stderr, "seed_malloc: warning: prefetch failed: %s\n", cudaGetErrorString(err));
      cudaGetLastError();
    }
  }
  return ptr;
}

void seed_free(void* ptr, size_t size, int device, cudaStream_t stream) {
  cudaStreamSynchronize(stream);
  cudaFree(ptr);
}

void* managed_malloc(size_t size, int device, cudaStream_t stream) {
  void* ptr = nullptr;
  cudaSetDevice(device);
  if (cudaMallocManaged(&ptr, size, cudaMemAttachGlobal) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return ptr;
}

void managed_free(void* ptr, size_t size, int device, cudaStream_t stream) {
  cudaStreamSynchronize(stream);
  cudaFree(ptr);
}

}  // extern "C"
