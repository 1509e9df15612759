// bench/probes/vmm_chunks.cu: what CUDA VMM costs per physical handle, to
// choose the handle size of umpool's vmm backend; not part of the build.
// For handle sizes of 2 MiB to 1 GiB, maps 8 GiB (cuMemCreate + cuMemMap per
// handle, one cuMemSetAccess over the whole range) and unmaps it (cuMemUnmap +
// cuMemRelease per handle), three times each; prints the best time per GiB
// and per handle. The range stays reserved throughout (cuMemAddressReserve).
//
//   nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/vmm_chunks.cu -lcuda -o vmm_chunks && ./vmm_chunks
#include <cuda.h>

#include <algorithm>
#include <vector>

#include "probe_check.h"

int main() {
  const size_t mib = size_t{1} << 20, total = size_t{8} << 30;
  CK(cudaSetDevice(0));
  CK(cudaFree(nullptr));
  size_t free0 = 0, all = 0;
  CK(cudaMemGetInfo(&free0, &all));
  if (total * 2 > free0) {
    std::fprintf(stderr, "refusing: 8 GiB asked, %zu MiB free\n", free0 / mib);
    return 1;
  }
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  CUdeviceptr base = 0;
  CU(cuMemAddressReserve(&base, total, size_t{1} << 30, 0, 0));
  std::printf("| handle (MiB) | handles | map 8 GiB (ms) | us per handle | unmap 8 GiB (ms) | us per handle |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (size_t h : {2 * mib, 8 * mib, 32 * mib, 128 * mib, 1024 * mib}) {
    const size_t n = total / h;
    std::vector<CUmemGenericAllocationHandle> handles(n);
    double best_map = 1e9, best_unmap = 1e9;
    for (int round = 0; round < 3; ++round) {
      double t = now();
      for (size_t i = 0; i < n; ++i) {
        CU(cuMemCreate(&handles[i], h, &prop, 0));
        CU(cuMemMap(base + i * h, h, 0, handles[i], 0));
      }
      CU(cuMemSetAccess(base, total, &access, 1));
      best_map = std::min(best_map, now() - t);
      CK(cudaMemset(reinterpret_cast<void*>(base), 1, total));  // touched: really backed
      CK(cudaDeviceSynchronize());
      t = now();
      for (size_t i = 0; i < n; ++i) {
        CU(cuMemUnmap(base + i * h, h));
        CU(cuMemRelease(handles[i]));
      }
      best_unmap = std::min(best_unmap, now() - t);
    }
    std::printf("| %zu | %zu | %.1f | %.1f | %.1f | %.1f |\n", h / mib, n, best_map * 1e3,
                best_map * 1e6 / n, best_unmap * 1e3, best_unmap * 1e6 / n);
  }
  CU(cuMemAddressFree(base, total));
  return 0;
}
