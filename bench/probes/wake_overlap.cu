// bench/probes/wake_overlap.cu: ways to bring staged contents back into discarded managed
// pages (Wake), measured once to choose Wake's design; not part of the build.
// nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/wake_overlap.cu -o probe && ./probe 8
//
// Each variant starts from the same state: N GiB of GPU-resident managed memory copied to a
// pinned host buffer and its pages discarded (what Sleep leaves). It then times, until the
// stream is idle, getting the contents back on the GPU, and checks them.
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

__global__ void Fill(unsigned* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = (unsigned)i * 2654435761u + seed;
}
__global__ void Check(const unsigned* p, size_t n, unsigned seed, unsigned long long* bad) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    if (p[i] != (unsigned)i * 2654435761u + seed) atomicAdd(bad, 1ull);
}
// Copies from (pinned, mapped) host memory with SM loads: 16-byte vectors.
__global__ void KernelCopy(uint4* dst, const uint4* src, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) dst[i] = src[i];
}

static cudaMemLocation gpu{cudaMemLocationTypeDevice, 0};
static size_t n, chunk = size_t(1) << 30;
static unsigned* m;
static void* h;
static cudaStream_t s[4];

static void Discard() {
  void* p = m; size_t sz = n;
  CK(cudaMemDiscardBatchAsync(&p, &sz, 1, 0, s[0]));
  CK(cudaStreamSynchronize(s[0]));
}
static void Refill(char* p, size_t sz, cudaStream_t st) {
  void* pp = p; size_t first = 0;
  CK(cudaMemDiscardAndPrefetchBatchAsync(&pp, &sz, 1, &gpu, &first, 1, 0, st));
}

int main(int argc, char** argv) {
  size_t gib = argc > 1 ? atoi(argv[1]) : 8;
  n = gib << 30;
  CK(cudaFree(0));
  for (auto& st : s) CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  CK(cudaStreamDestroy(s[3]));
  CK(cudaStreamCreateWithFlags(&s[3], cudaStreamDefault));  // blocking, like the NULL stream's stand-in
  h = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(h, n, MADV_HUGEPAGE);
  CK(cudaHostRegister(h, n, cudaHostRegisterPortable | cudaHostRegisterMapped));
  CK(cudaMallocManaged(reinterpret_cast<void**>(&m), n));
  cudaMemLocation cpu{cudaMemLocationTypeHost, 0};
  CK(cudaMemAdvise(m, n, cudaMemAdviseSetPreferredLocation, gpu));
  CK(cudaMemAdvise(m, n, cudaMemAdviseSetAccessedBy, cpu));
  CK(cudaMemPrefetchAsync(m, n, gpu, 0, s[0]));
  unsigned long long* bad; CK(cudaMallocManaged(&bad, sizeof(*bad)));
  const char* names[] = {"refill then copy (today)", "prefetch then copy", "refill, sync, copy on 2 streams",
                         "refill, sync, copy on 4 streams", "1 GiB chunks: refill k+1 while copying k",
                         "refill, sync, kernel copy", "refill in one call, copies per 1 GiB on 2 streams",
                         "1 GiB chunks: refill k+1 queued before copy k", "chunks as 4, NULL-stream copies"};
  const int kVariants = sizeof(names) / sizeof(names[0]);
  for (int round = 0; round < 1; ++round) {
    for (int v = 0; v < kVariants; ++v) {
      unsigned seed = round * 100 + v;
      Fill<<<1024, 256, 0, s[0]>>>(m, n / 4, seed);
      CK(cudaMemcpyAsync(h, m, n, cudaMemcpyDefault, s[0]));
      CK(cudaStreamSynchronize(s[0]));
      Discard();
      char* c = reinterpret_cast<char*>(m);
      char* hc = static_cast<char*>(h);
      double t = now();
      switch (v) {
        case 0: Refill(c, n, s[0]); CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s[0])); break;
        case 1: CK(cudaMemPrefetchAsync(m, n, gpu, 0, s[0])); CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s[0])); break;
        case 2: case 3: {
          int k = v == 2 ? 2 : 4;
          Refill(c, n, s[0]); CK(cudaStreamSynchronize(s[0]));
          for (int i = 0; i < k; ++i) CK(cudaMemcpyAsync(c + i * (n / k), hc + i * (n / k), n / k, cudaMemcpyDefault, s[i]));
          break;
        }
        case 4: {
          size_t chunks = n / chunk;
          Refill(c, chunk, s[1]);
          for (size_t i = 0; i < chunks; ++i) {
            CK(cudaStreamSynchronize(s[1]));  // chunk i is populated
            CK(cudaMemcpyAsync(c + i * chunk, hc + i * chunk, chunk, cudaMemcpyDefault, s[0]));
            if (i + 1 < chunks) Refill(c + (i + 1) * chunk, chunk, s[1]);
          }
          break;
        }
        case 5:
          Refill(c, n, s[0]);
          KernelCopy<<<132 * 8, 512, 0, s[0]>>>(reinterpret_cast<uint4*>(m), static_cast<const uint4*>(h), n / 16);
          break;
        case 7: case 8: {
          size_t chunks = n / chunk;
          cudaStream_t cs = v == 8 ? s[3] : s[0];
          Refill(c, chunk, s[1]);
          for (size_t i = 0; i < chunks; ++i) {
            CK(cudaStreamSynchronize(s[1]));
            if (v == 7 && i + 1 < chunks) Refill(c + (i + 1) * chunk, chunk, s[1]);
            CK(cudaMemcpyAsync(c + i * chunk, hc + i * chunk, chunk, cudaMemcpyDefault, cs));
            if (v == 8 && i + 1 < chunks) Refill(c + (i + 1) * chunk, chunk, s[1]);
          }
          break;
        }
        case 6: {
          Refill(c, n, s[0]); CK(cudaStreamSynchronize(s[0]));
          for (size_t i = 0; i < n / chunk; ++i) CK(cudaMemcpyAsync(c + i * chunk, hc + i * chunk, chunk, cudaMemcpyDefault, s[i % 2]));
          break;
        }
      }
      for (auto& st : s) CK(cudaStreamSynchronize(st));
      double d = now() - t;
      *bad = 0;
      Check<<<1024, 256, 0, s[0]>>>(m, n / 4, seed, bad);
      CK(cudaStreamSynchronize(s[0]));
      printf("round %d  %-48s %.3f s  %5.1f GB/s  bad words %llu\n", round, names[v], d, n / d / 1e9, *bad);
      fflush(stdout);
    }
  }
  // Sleep/wake cycles with no kernel touching the pages in between (as
  // sleep_benchmark does): chunked overlap (as 4) and, per chunk, refill and
  // copy on one of two streams (host-synced before the next chunk's copy).
  for (int mode = 0; mode < 3; ++mode) {
    unsigned seed = 1000 + mode;
    Fill<<<1024, 256, 0, s[0]>>>(m, n / 4, seed);
    CK(cudaStreamSynchronize(s[0]));
    char* c = reinterpret_cast<char*>(m);
    char* hc = static_cast<char*>(h);
    for (int cycle = 0; cycle < 3; ++cycle) {
      CK(cudaMemcpyAsync(h, m, n, cudaMemcpyDefault, s[0]));
      CK(cudaStreamSynchronize(s[0]));
      Discard();
      double t = now();
      size_t chunks = n / chunk;
      if (mode == 0) {
        Refill(c, chunk, s[1]);
        for (size_t i = 0; i < chunks; ++i) {
          CK(cudaStreamSynchronize(s[1]));
          CK(cudaMemcpyAsync(c + i * chunk, hc + i * chunk, chunk, cudaMemcpyDefault, s[0]));
          if (i + 1 < chunks) Refill(c + (i + 1) * chunk, chunk, s[1]);
        }
      } else if (mode == 1) {
        for (size_t i = 0; i < chunks; ++i) {
          cudaStream_t st = s[1 + i % 2];
          Refill(c + i * chunk, chunk, st);
          CK(cudaMemcpyAsync(c + i * chunk, hc + i * chunk, chunk, cudaMemcpyDefault, st));
        }
      } else {
        Refill(c, n, s[0]);
        CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s[0]));
      }
      for (auto& st : s) CK(cudaStreamSynchronize(st));
      double d = now() - t;
      printf("untouched cycle %d  %-40s %.3f s  %5.1f GB/s\n", cycle,
             mode == 0 ? "chunks, refill k+1 while copying k" : mode == 1 ? "chunk k: refill+copy on stream k%2" : "refill then copy, one stream", d, n / d / 1e9);
      fflush(stdout);
    }
    *bad = 0;
    Check<<<1024, 256, 0, s[0]>>>(m, n / 4, seed, bad);
    CK(cudaStreamSynchronize(s[0]));
    printf("untouched mode %d: bad words %llu\n", mode, *bad);
  }
  // The pool maps segments with an unpopulated reserve (sixteen GiB beyond
  // what it uses): the same serial wake on the first N GiB of such a mapping,
  // with a DMA copy, and with an SM copy.
  CK(cudaFree(m));
  {
    size_t reserve = size_t(16) << 30;
    CK(cudaMallocManaged(reinterpret_cast<void**>(&m), n + reserve));
    CK(cudaMemAdvise(m, n + reserve, cudaMemAdviseSetPreferredLocation, gpu));
    CK(cudaMemAdvise(m, n + reserve, cudaMemAdviseSetAccessedBy, cpu));
    CK(cudaMemPrefetchAsync(m, n, gpu, 0, s[0]));
    for (int mode = 0; mode < 2; ++mode) {
      unsigned seed = 2000 + mode;
      Fill<<<1024, 256, 0, s[0]>>>(m, n / 4, seed);
      CK(cudaStreamSynchronize(s[0]));
      for (int cycle = 0; cycle < 3; ++cycle) {
        CK(cudaMemcpyAsync(h, m, n, cudaMemcpyDefault, s[0]));
        CK(cudaStreamSynchronize(s[0]));
        Discard();
        double t = now();
        Refill(reinterpret_cast<char*>(m), n, s[0]);
        if (mode == 0) {
          CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s[0]));
        } else {
          KernelCopy<<<132 * 8, 512, 0, s[0]>>>(reinterpret_cast<uint4*>(m), static_cast<const uint4*>(h), n / 16);
        }
        CK(cudaStreamSynchronize(s[0]));
        double d = now() - t;
        printf("reserve mapping, cycle %d, %-12s %.3f s  %5.1f GB/s\n", cycle, mode == 0 ? "DMA copy" : "SM copy", d, n / d / 1e9);
        fflush(stdout);
      }
      *bad = 0;
      Check<<<1024, 256, 0, s[0]>>>(m, n / 4, seed, bad);
      CK(cudaStreamSynchronize(s[0]));
      printf("reserve mapping mode %d: bad words %llu\n", mode, *bad);
    }
  }
  CK(cudaFree(m));
  CK(cudaHostUnregister(h));
  return 0;
}
