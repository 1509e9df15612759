// bench/probes/staging_copies.cu: what pinning costs and how fast staging copies run on
// managed memory (8 GiB by default), measured once to choose Sleep's design; not part of
// the build. nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/staging_copies.cu -o probe && ./probe 8
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); } } while (0)
int main(int argc, char** argv) {
  size_t gib = argc > 1 ? atoi(argv[1]) : 8;
  size_t n = gib << 30;
  cudaFree(0);
  cudaStream_t s; cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  double t = now();
  void* h = nullptr; CK(cudaHostAlloc(&h, n, cudaHostAllocPortable));
  printf("cudaHostAlloc %zu GiB: %.3f s\n", gib, now() - t);
  t = now();
  void* r = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(r, n, MADV_HUGEPAGE);
  double t1 = now();
  CK(cudaHostRegister(r, n, cudaHostRegisterPortable));
  printf("mmap+THP+cudaHostRegister %zu GiB: %.3f s (register %.3f)\n", gib, now() - t, now() - t1);
  t = now();
  void* r2 = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  double t2 = now();
  CK(cudaHostRegister(r2, n, cudaHostRegisterPortable));
  printf("mmap POPULATE %.3f s + cudaHostRegister %.3f s\n", t2 - t, now() - t2);
  void* m = nullptr; CK(cudaMallocManaged(&m, n));
  cudaMemLocation gpu{cudaMemLocationTypeDevice, 0}, cpu{cudaMemLocationTypeHost, 0};
  CK(cudaMemAdvise(m, n, cudaMemAdviseSetPreferredLocation, gpu));
  CK(cudaMemAdvise(m, n, cudaMemAdviseSetAccessedBy, cpu));
  CK(cudaMemPrefetchAsync(m, n, gpu, 0, s));
  CK(cudaMemsetAsync(m, 7, n, s)); CK(cudaStreamSynchronize(s));
  void* bufs[3] = {h, r, r2};
  const char* names[3] = {"hostalloc", "thp-register", "populate-register"};
  for (int b = 0; b < 3; ++b) {
    for (int round = 0; round < 3; ++round) {
      double a = now(); CK(cudaMemcpyAsync(bufs[b], m, n, cudaMemcpyDefault, s)); CK(cudaStreamSynchronize(s));
      double d2h = now() - a;
      void* p = m; size_t sz = n; size_t first = 0;
      a = now(); CK(cudaMemDiscardBatchAsync(&p, &sz, 1, 0, s)); CK(cudaStreamSynchronize(s));
      double disc = now() - a;
      a = now(); CK(cudaMemDiscardAndPrefetchBatchAsync(&p, &sz, 1, &gpu, &first, 1, 0, s)); CK(cudaStreamSynchronize(s));
      double refill = now() - a;
      a = now(); CK(cudaMemcpyAsync(m, bufs[b], n, cudaMemcpyDefault, s)); CK(cudaStreamSynchronize(s));
      double h2d = now() - a;
      printf("%-18s round %d: D2H %.3f s (%.1f GB/s) discard %.3f refill %.3f H2D %.3f s (%.1f GB/s)\n",
             names[b], round, d2h, n / d2h / 1e9, disc, refill, h2d, n / h2d / 1e9);
    }
  }
  // H2D into discarded pages without a refill.
  void* p = m; size_t sz = n;
  CK(cudaMemDiscardBatchAsync(&p, &sz, 1, 0, s)); CK(cudaStreamSynchronize(s));
  double a = now(); CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s)); CK(cudaStreamSynchronize(s));
  printf("H2D into discarded pages, no refill: %.3f s\n", now() - a);
  // Prefetch to GPU instead of refill.
  CK(cudaMemDiscardBatchAsync(&p, &sz, 1, 0, s)); CK(cudaStreamSynchronize(s));
  a = now(); CK(cudaMemPrefetchAsync(m, n, gpu, 0, s)); CK(cudaStreamSynchronize(s));
  double pf = now() - a;
  a = now(); CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s)); CK(cudaStreamSynchronize(s));
  printf("prefetch after discard %.3f s, then H2D %.3f s\n", pf, now() - a);
  cudaFree(m); cudaFreeHost(h); cudaHostUnregister(r); cudaHostUnregister(r2);
  printf("THP: "); fflush(stdout); system("cat /sys/kernel/mm/transparent_hugepage/enabled");
  return 0;
}
