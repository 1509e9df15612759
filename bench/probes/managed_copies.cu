// bench/probes/managed_copies.cu: copy bandwidth between pinned host memory and GPU
// memory, cudaMalloc against managed memory prefetched to the GPU under each advice umpool
// can give (bench/torch/multistream.py measured managed blocks 4-5% slower for activation
// offloading). Copies of 256 MiB and of 4 MiB (one offloaded activation), each way, best
// and median of 5 rounds. Not part of the build:
//   nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/managed_copies.cu -o probe && ./probe
#include <algorithm>
#include <cstring>
#include <vector>

#include "probe_check.h"

namespace {

struct Variant {
  const char* name;
  bool managed;
  bool preferred_gpu;
  int accessed_by;  // 0 none, 1 CPU, 2 GPU
};

constexpr size_t kBytes = 256ull << 20;

// Seconds for `reps` copies of `chunk` bytes each, walking through the buffers.
double Copies(void* dst, void* src, size_t chunk, int reps, cudaStream_t s) {
  CK(cudaStreamSynchronize(s));
  double t = now();
  for (int i = 0; i < reps; ++i) {
    size_t off = (static_cast<size_t>(i) * chunk) % kBytes;
    CK(cudaMemcpyAsync(static_cast<char*>(dst) + off, static_cast<char*>(src) + off, chunk,
                       cudaMemcpyDefault, s));
  }
  CK(cudaStreamSynchronize(s));
  return now() - t;
}

}  // namespace

int main() {
  CK(cudaFree(nullptr));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void* host = nullptr;
  CK(cudaHostAlloc(&host, kBytes, cudaHostAllocPortable));
  std::memset(host, 1, kBytes);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# %s; GB/s, best / median of 5 rounds\n", prop.name);
  std::printf("| memory | D2H 256 MiB | H2D 256 MiB | D2H 4 MiB x64 | H2D 4 MiB x64 |\n|---|---|---|---|---|\n");
  const Variant variants[] = {
      {"cudaMalloc", false, false, 0},
      {"managed, no advice", true, false, 0},
      {"managed, preferred GPU", true, true, 0},
      {"managed, preferred GPU, accessed by CPU (umpool's default)", true, true, 1},
      {"managed, preferred GPU, accessed by GPU", true, true, 2},
  };
  const cudaMemLocation gpu{cudaMemLocationTypeDevice, 0}, cpu{cudaMemLocationTypeHost, 0};
  for (const Variant& v : variants) {
    void* dev = nullptr;
    if (v.managed) {
      CK(cudaMallocManaged(&dev, kBytes));
      if (v.preferred_gpu) CK(cudaMemAdvise(dev, kBytes, cudaMemAdviseSetPreferredLocation, gpu));
      if (v.accessed_by) {
        CK(cudaMemAdvise(dev, kBytes, cudaMemAdviseSetAccessedBy, v.accessed_by == 1 ? cpu : gpu));
      }
      CK(cudaMemPrefetchAsync(dev, kBytes, gpu, 0, s));
    } else {
      CK(cudaMalloc(&dev, kBytes));
    }
    CK(cudaMemsetAsync(dev, 7, kBytes, s));
    std::printf("| %s |", v.name);
    struct Case { bool d2h; size_t chunk; int reps; };
    for (Case c : {Case{true, kBytes, 4}, Case{false, kBytes, 4}, Case{true, 4u << 20, 64},
                   Case{false, 4u << 20, 64}}) {
      std::vector<double> gbps;
      Copies(c.d2h ? host : dev, c.d2h ? dev : host, c.chunk, 2, s);  // warm
      for (int r = 0; r < 5; ++r) {
        double sec = Copies(c.d2h ? host : dev, c.d2h ? dev : host, c.chunk, c.reps, s);
        gbps.push_back(static_cast<double>(c.chunk) * c.reps / sec / 1e9);
      }
      std::sort(gbps.begin(), gbps.end());
      std::printf(" %.1f / %.1f |", gbps.back(), gbps[2]);
    }
    std::printf("\n");
    CK(cudaFree(dev));
  }
  CK(cudaFreeHost(host));
  return 0;
}
