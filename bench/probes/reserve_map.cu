// bench/probes/reserve_map.cu: what a segment's reserve costs on managed memory (issue 14's
// design): cudaMallocManaged + advice of a large range, what cudaMemGetInfo says before and
// after populating part of it, and the cost of populating 2 MiB and 64 MiB pieces by prefetch.
// Measured once to choose the arena's growth; not part of the build.
//   nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/reserve_map.cu -o probe && ./probe 16
#include <cuda_runtime.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); return 1; } } while (0)
static double FreeGiB() { size_t f = 0, t = 0; cudaMemGetInfo(&f, &t); return f / 1073741824.0; }
int main(int argc, char** argv) {
  const size_t gib = argc > 1 ? atoi(argv[1]) : 16;
  CK(cudaFree(0));
  int dev = 0;
  cudaStream_t s; CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaMemLocation gpu{cudaMemLocationTypeDevice, dev}, cpu{cudaMemLocationTypeHost, 0};
  for (size_t g : {size_t{1}, gib}) {
    const size_t n = g << 30;
    const double free0 = FreeGiB();
    double t = now();
    char* p = nullptr;
    CK(cudaMallocManaged(&p, n, cudaMemAttachGlobal));
    const double t_malloc = now() - t;
    t = now();
    CK(cudaMemAdvise(p, n, cudaMemAdviseSetPreferredLocation, gpu));
    CK(cudaMemAdvise(p, n, cudaMemAdviseSetAccessedBy, cpu));
    const double t_advise = now() - t;
    const double free1 = FreeGiB();
    // Populate 2 MiB pieces one by one (in-place growth), then 64 MiB ones.
    const int small = 64;
    t = now();
    for (int i = 0; i < small; ++i) CK(cudaMemPrefetchAsync(p + (size_t(i) << 21), size_t{2} << 20, gpu, 0, s));
    CK(cudaStreamSynchronize(s));
    const double t_small = (now() - t) / small;
    const int big = 8;
    t = now();
    for (int i = 0; i < big; ++i) CK(cudaMemPrefetchAsync(p + (size_t{128} << 20) + (size_t(i) << 26), size_t{64} << 20, gpu, 0, s));
    CK(cudaStreamSynchronize(s));
    const double t_big = (now() - t) / big;
    const double free2 = FreeGiB();
    t = now();
    CK(cudaFree(p));
    const double t_free = now() - t;
    printf("%2zu GiB range: cudaMallocManaged %.3f ms, advise x2 %.3f ms, free memory %.2f -> %.2f GiB "
           "(after mapping) -> %.2f GiB (after populating %d x 2 MiB + %d x 64 MiB = %.3f GiB); "
           "prefetch 2 MiB %.1f us each, 64 MiB %.1f us each; cudaFree %.3f ms\n",
           g, t_malloc * 1e3, t_advise * 1e3, free0, free1, free2, small, big,
           (small * 2.0 + big * 64.0) / 1024, t_small * 1e6, t_big * 1e6, t_free * 1e3);
  }
  return 0;
}
