// bench/probes/vmm_sleep.cu: sleep/wake of N GiB kept in CUDA VMM memory (cuMemCreate +
// cuMemMap into one reserved address range) instead of managed memory; not part of the build.
// Question for issue 15: managed memory's sleep is a D2H copy (0.327 s for 16 GiB on the H200)
// plus page discards (~3.3 ms/GiB) that do not overlap the copy, 0.39-0.40 s in all. With VMM
// memory the pages go back by cuMemUnmap + cuMemRelease of each group after its copy, and the
// addresses stay reserved: is sleep then the copy alone?
//
//   nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/vmm_sleep.cu -lcuda -o vmm_sleep && ./vmm_sleep 16 [filler [pause_ms]]
//
// Three cycles: sleep (copies out per 1 GiB group, each group unmapped and released once the
// host saw its copy done, while the next is copied), then cudaMemGetInfo (the freed bytes
// must show as free), wake (per group: create, map, set access, copy back), a check of the
// contents at the same addresses. Also a bare D2H copy of the whole range, the reference.
#include <cuda.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "probe_check.h"

__global__ void fill(unsigned* p, size_t n, unsigned salt) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    p[i] = unsigned(i) * 2654435761u + salt;
  }
}
// Copies n16 16-byte words from pinned host memory (read over the bus by the SMs) to the device.
__global__ void sm_copy(uint4* dst, const uint4* src, size_t n16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n16; i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}
__global__ void check(const unsigned* p, size_t n, unsigned salt, unsigned long long* bad) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    if (p[i] != unsigned(i) * 2654435761u + salt) atomicAdd(bad, 1ull);
  }
}

int main(int argc, char** argv) {
  const size_t gib = size_t{1} << 30;
  const int groups = argc > 1 ? std::atoi(argv[1]) : 16;  // GiB, one group each
  // "filler": while asleep, another allocator takes the card (cudaMalloc of
  // all but 2 GiB of what is free, written, freed) before the wake.
  const bool filler = argc > 2 && std::string(argv[2]) == "filler";
  // With "filler": milliseconds between the other allocator's cudaFree and the wake.
  const int pause_ms = argc > 3 ? std::atoi(argv[3]) : 0;
  // UMPOOL_PROBE_SM_COPY=1: the wake copies back with a kernel reading the pinned host
  // buffer (SMs over the bus) instead of cudaMemcpyAsync (copy engines).
  const char* sm_env = std::getenv("UMPOOL_PROBE_SM_COPY");
  const bool sm_copy_wake = sm_env != nullptr && sm_env[0] == '1';
  const size_t bytes = groups * gib;
  CK(cudaSetDevice(0));
  CK(cudaFree(nullptr));  // the primary context
  CUdevice dev;
  CU(cuDeviceGet(&dev, 0));
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  size_t gran = 0;
  CU(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
  size_t free0 = 0, total = 0;
  CK(cudaMemGetInfo(&free0, &total));
  if (bytes * 2 > free0) {
    std::fprintf(stderr, "refusing: %zu GiB asked, %zu GiB free\n", bytes / gib, free0 / gib);
    return 1;
  }
  CUdeviceptr base = 0;
  CU(cuMemAddressReserve(&base, bytes, gib, 0, 0));
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  std::vector<CUmemGenericAllocationHandle> handles(groups);
  auto map_group = [&](int g) {
    CU(cuMemCreate(&handles[g], gib, &prop, 0));
    CU(cuMemMap(base + g * gib, gib, 0, handles[g], 0));
    CU(cuMemSetAccess(base + g * gib, gib, &access, 1));
  };
  auto unmap_group = [&](int g) {
    CU(cuMemUnmap(base + g * gib, gib));
    CU(cuMemRelease(handles[g]));
  };
  for (int g = 0; g < groups; ++g) map_group(g);
  unsigned* p = reinterpret_cast<unsigned*>(base);
  const size_t n = bytes / sizeof(unsigned);
  void* host = nullptr;
  CK(cudaHostAlloc(&host, bytes, cudaHostAllocMapped));  // mapped: the sm_copy kernel reads it
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::vector<cudaEvent_t> done(groups);
  for (auto& ev : done) CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  unsigned long long* bad = nullptr;
  CK(cudaMallocManaged(&bad, sizeof *bad));
  fill<<<1024, 256, 0, s>>>(p, n, 7);
  CK(cudaStreamSynchronize(s));

  double t = now();
  CK(cudaMemcpyAsync(host, p, bytes, cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  std::printf("wake copies by %s\n", sm_copy_wake ? "kernel (SMs read pinned host memory)" : "cudaMemcpyAsync");
  std::printf("granularity %zu KiB; bare D2H copy of %d GiB: %.3f s\n", gran >> 10, groups, now() - t);
  std::printf("| cycle | sleep (s) | freed (GiB, cudaMemGetInfo) | wake (s) | contents | same address |\n");
  std::printf("|---|---:|---:|---:|---|---|\n");
  for (int cycle = 0; cycle < 3; ++cycle) {
    size_t before = 0, after = 0;
    CK(cudaMemGetInfo(&before, &total));
    t = now();
    for (int g = 0; g < groups; ++g) {
      CK(cudaMemcpyAsync(static_cast<char*>(host) + g * gib, reinterpret_cast<void*>(base + g * gib), gib,
                         cudaMemcpyDeviceToHost, s));
      CK(cudaEventRecord(done[g], s));
      if (g > 0) {  // the previous group's copy is done: its pages go back
        CK(cudaEventSynchronize(done[g - 1]));
        unmap_group(g - 1);
      }
    }
    CK(cudaEventSynchronize(done[groups - 1]));
    unmap_group(groups - 1);
    const double sleep_s = now() - t;
    CK(cudaMemGetInfo(&after, &total));
    if (filler) {
      size_t free_now = 0;
      CK(cudaMemGetInfo(&free_now, &total));
      void* other = nullptr;
      CK(cudaMalloc(&other, free_now - 2 * gib));
      CK(cudaMemset(other, 1, free_now - 2 * gib));
      CK(cudaDeviceSynchronize());
      CK(cudaFree(other));
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    double map_s = 0;
    t = now();
    for (int g = 0; g < groups; ++g) {
      const double m = now();
      map_group(g);
      map_s += now() - m;
      if (sm_copy_wake) {
        sm_copy<<<264, 1024, 0, s>>>(reinterpret_cast<uint4*>(base + g * gib),
                                     reinterpret_cast<const uint4*>(static_cast<char*>(host) + g * gib),
                                     gib / sizeof(uint4));
        CK(cudaGetLastError());
      } else {
        CK(cudaMemcpyAsync(reinterpret_cast<void*>(base + g * gib), static_cast<char*>(host) + g * gib, gib,
                           cudaMemcpyHostToDevice, s));
      }
    }
    CK(cudaStreamSynchronize(s));
    const double wake_s = now() - t;
    *bad = 0;
    check<<<1024, 256, 0, s>>>(p, n, 7, bad);
    CK(cudaStreamSynchronize(s));
    std::printf("| %d | %.3f | %.2f | %.3f (maps %.3f) | %s | %s |\n", cycle, sleep_s,
                (double(after) - double(before)) / gib, wake_s, map_s,
                *bad == 0 ? "identical" : "DIFFERENT",
                reinterpret_cast<CUdeviceptr>(p) == base ? "yes" : "no");
  }
  for (int g = 0; g < groups; ++g) unmap_group(g);
  CU(cuMemAddressFree(base, bytes));
  CK(cudaFreeHost(host));
  return 0;
}
