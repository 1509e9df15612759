// bench/probes/sleep_pipeline.cu: ways to put N GiB of GPU-resident managed memory to sleep
// (copy to pinned memory, drop the pages) and wake it (refill the pages on the GPU, copy back),
// measured to choose Sleep's and Wake's design for issue 15; not part of the build.
// nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/sleep_pipeline.cu -o probe && ./probe 16
//
// Every method runs three sleep/wake cycles on the same memory, times sleep and wake until
// the streams are idle, and checks the contents after each wake. Methods:
//   serial      what the pool did in the eighth session: all copies out, host wait, one
//               discard; wake: one refill, then all copies back (one stream)
//   pipelined   1 GiB groups: the copies out of group k queued, the host waits for group k-1's
//               and discards it on a second stream, overlapping; wake: group k+1 refilled on
//               the second stream (host-synced) while group k is copied back
//   pipe2       as pipelined, the copies out alternating over two streams
//   kernel_out  as pipelined, the copies out by SM stores into mapped pinned memory
// Besides: one D2H cudaMemcpyAsync of the whole range from managed and from cudaMalloc
// memory, the reference rates.
#include <cuda_runtime.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
#define CK(x)                                                                 \
  do {                                                                        \
    cudaError_t err_ = (x);                                                      \
    if (err_ != cudaSuccess) {                                                 \
      std::printf("%s: %s\n", #x, cudaGetErrorString(err_));                  \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

__global__ void Fill(unsigned* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = (unsigned)i * 2654435761u + seed;
}
__global__ void Check(const unsigned* p, size_t n, unsigned seed, unsigned long long* bad) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    if (p[i] != (unsigned)i * 2654435761u + seed) atomicAdd(bad, 1ull);
}
__global__ void KernelCopy(uint4* dst, const uint4* src, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = src[i];
}

static cudaMemLocation gpu{cudaMemLocationTypeDevice, 0};
static size_t n, group = size_t(1) << 30;
static char* m;
static char* h;
static char* h_dev;  // h, mapped for kernels
static cudaStream_t s[3];
static cudaEvent_t ev[64];

static void Discard(char* p, size_t sz, cudaStream_t st) {
  void* pp = p;
  CK(cudaMemDiscardBatchAsync(&pp, &sz, 1, 0, st));
}
static void Refill(char* p, size_t sz, cudaStream_t st) {
  void* pp = p;
  size_t first = 0;
  CK(cudaMemDiscardAndPrefetchBatchAsync(&pp, &sz, 1, &gpu, &first, 1, 0, st));
}
static void CopyOut(size_t off, size_t sz, cudaStream_t st, bool kernel) {
  if (kernel) {
    KernelCopy<<<1056, 512, 0, st>>>(reinterpret_cast<uint4*>(h_dev + off), reinterpret_cast<const uint4*>(m + off), sz / 16);
    CK(cudaGetLastError());
  } else {
    CK(cudaMemcpyAsync(h + off, m + off, sz, cudaMemcpyDefault, st));
  }
}

static double Sleep(const std::string& how) {
  CK(cudaDeviceSynchronize());
  const double t = now();
  if (how == "serial") {
    CopyOut(0, n, s[0], false);
    CK(cudaStreamSynchronize(s[0]));
    Discard(m, n, s[0]);
    CK(cudaStreamSynchronize(s[0]));
  } else {
    const size_t groups = n / group;
    for (size_t g = 0; g < groups; ++g) {
      cudaStream_t cs = how == "pipe2" ? s[g % 2] : s[0];
      CopyOut(g * group, group, cs, how == "kernel_out");
      CK(cudaEventRecord(ev[g], cs));
      if (g > 0) {
        CK(cudaEventSynchronize(ev[g - 1]));
        Discard(m + (g - 1) * group, group, s[2]);
      }
    }
    CK(cudaEventSynchronize(ev[groups - 1]));
    Discard(m + (groups - 1) * group, group, s[2]);
    CK(cudaStreamSynchronize(s[2]));
  }
  return now() - t;
}

static double Wake(const std::string& how) {
  CK(cudaDeviceSynchronize());
  const double t = now();
  if (how == "serial") {
    Refill(m, n, s[0]);
    CK(cudaMemcpyAsync(m, h, n, cudaMemcpyDefault, s[0]));
    CK(cudaStreamSynchronize(s[0]));
  } else {
    const size_t groups = n / group;
    Refill(m, group, s[2]);
    CK(cudaEventRecord(ev[0], s[2]));
    for (size_t g = 0; g < groups; ++g) {
      CK(cudaEventSynchronize(ev[g]));
      if (g + 1 < groups) {
        Refill(m + (g + 1) * group, group, s[2]);
        CK(cudaEventRecord(ev[g + 1], s[2]));
      }
      CK(cudaMemcpyAsync(m + g * group, h + g * group, group, cudaMemcpyDefault, s[0]));
    }
    CK(cudaStreamSynchronize(s[0]));
  }
  return now() - t;
}

int main(int argc, char** argv) {
  const size_t gib = argc > 1 ? std::atoi(argv[1]) : 16;
  n = gib << 30;
  CK(cudaFree(0));
  for (auto& st : s) CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (auto& event : ev) CK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  h = static_cast<char*>(mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  madvise(h, n, MADV_HUGEPAGE);
  double t = now();
  CK(cudaHostRegister(h, n, cudaHostRegisterPortable | cudaHostRegisterMapped));
  std::printf("cudaHostRegister %zu GiB: %.3f s\n", gib, now() - t);
  CK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h_dev), h, 0));
  CK(cudaMallocManaged(reinterpret_cast<void**>(&m), n));
  cudaMemLocation cpu{cudaMemLocationTypeHost, 0};
  CK(cudaMemAdvise(m, n, cudaMemAdviseSetPreferredLocation, gpu));
  CK(cudaMemAdvise(m, n, cudaMemAdviseSetAccessedBy, cpu));
  CK(cudaMemPrefetchAsync(m, n, gpu, 0, s[0]));
  unsigned long long* bad;
  CK(cudaMallocManaged(reinterpret_cast<void**>(&bad), sizeof *bad));
  const size_t words = n / 4;
  Fill<<<1056, 512, 0, s[0]>>>(reinterpret_cast<unsigned*>(m), words, 7);
  CK(cudaStreamSynchronize(s[0]));

  // Reference rates: one D2H copy from managed and from cudaMalloc memory.
  for (int r = 0; r < 2; ++r) {
    t = now();
    CK(cudaMemcpyAsync(h, m, n, cudaMemcpyDefault, s[0]));
    CK(cudaStreamSynchronize(s[0]));
    double d = now() - t;
    std::printf("D2H one copy from managed      %.3f s  %.1f GB/s\n", d, n / d / 1e9);
  }
  {
    char* dm;
    CK(cudaMalloc(&dm, n));
    for (int r = 0; r < 2; ++r) {
      t = now();
      CK(cudaMemcpyAsync(h, dm, n, cudaMemcpyDefault, s[0]));
      CK(cudaStreamSynchronize(s[0]));
      double d = now() - t;
      std::printf("D2H one copy from cudaMalloc   %.3f s  %.1f GB/s\n", d, n / d / 1e9);
      t = now();
      CK(cudaMemcpyAsync(dm, h, n, cudaMemcpyDefault, s[0]));
      CK(cudaStreamSynchronize(s[0]));
      d = now() - t;
      std::printf("H2D one copy to cudaMalloc     %.3f s  %.1f GB/s\n", d, n / d / 1e9);
    }
    CK(cudaFree(dm));
  }
  const char* methods[] = {"serial", "pipelined", "pipe2", "kernel_out"};
  for (const char* how : methods) {
    for (int c = 0; c < 3; ++c) {
      const double sl = Sleep(how);
      const double wk = Wake(how);
      *bad = 0;
      Check<<<1056, 512, 0, s[0]>>>(reinterpret_cast<const unsigned*>(m), words, 7, bad);
      CK(cudaStreamSynchronize(s[0]));
      std::printf("%-11s cycle %d  sleep %.3f s (%.1f GB/s)  wake %.3f s (%.1f GB/s)  bad words %llu\n", how, c,
                  sl, n / sl / 1e9, wk, n / wk / 1e9, *bad);
    }
  }
  return 0;
}
