// bench/probes/managed_kernels.cu: how fast kernels run on managed memory resident on the
// GPU, by how its pages got there, against cudaMalloc memory. bench/torch/multistream.py
// --profile (H200, twenty-ninth session) found some kernels 2-10x slower under umpool on
// managed memory than natively or on the vmm backend, the GPU copies 5% slower, and the
// program's steps slower even after it stopped offloading. Each variant below is a 512 MiB
// buffer brought to the GPU one way; on it: a streaming kernel (read 256 MiB, write 256
// MiB), a page-hopping kernel (one 4-byte read every 64 KiB + 128 B: one translation per
// access, the GPU's TLB reach), and cudaMemsetAsync of all of it and of 4 MiB pieces.
// Best of 5 rounds. Not part of the build:
//   nvcc -O2 -std=c++17 -arch=sm_90 bench/probes/managed_kernels.cu -o probe && ./probe
#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>
#include <vector>

#include "probe_check.h"

namespace {

constexpr size_t kBytes = 512ull << 20;
constexpr size_t kPage = 2ull << 20;

__global__ void StreamRw(const float4* x, float4* y, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    float4 v = x[i];
    y[i] = make_float4(v.x * 2 + 1, v.y * 2 + 1, v.z * 2 + 1, v.w * 2 + 1);
  }
}

__global__ void PageHop(const float* x, size_t words, size_t hop_words, int rounds, float* out) {
  size_t i = (blockIdx.x * blockDim.x + threadIdx.x) * hop_words % words;
  float acc = 0;
  for (int r = 0; r < rounds; ++r) {
    acc += x[i];
    i = (i + hop_words * 4099) % words;
  }
  if (acc == 12345.f) *out = acc;  // keeps the reads
}

double Time(cudaStream_t s, int reps, void (*body)(void*, cudaStream_t), void* p) {
  body(p, s);  // warm
  CK(cudaStreamSynchronize(s));
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    double t = now();
    for (int i = 0; i < reps; ++i) body(p, s);
    CK(cudaStreamSynchronize(s));
    best = std::min(best, (now() - t) / reps);
  }
  return best;
}

float* g_out;

void RunStream(void* p, cudaStream_t s) {
  const size_t n = kBytes / 2 / sizeof(float4);
  StreamRw<<<1056, 512, 0, s>>>(static_cast<float4*>(p), static_cast<float4*>(p) + n, n);
}
void RunHop(void* p, cudaStream_t s) {
  PageHop<<<264, 256, 0, s>>>(static_cast<float*>(p), kBytes / 4, (64 * 1024 + 128) / 4, 64,
                              g_out);
}
void RunMemset(void* p, cudaStream_t s) { CK(cudaMemsetAsync(p, 0, kBytes, s)); }
void RunMemsetPieces(void* p, cudaStream_t s) {
  for (size_t off = 0; off < kBytes; off += 4u << 20) {
    CK(cudaMemsetAsync(static_cast<char*>(p) + off, 0, 4u << 20, s));
  }
}

enum class How {
  kMalloc,
  kWhole,         // advised, one prefetch of all of it (a new segment)
  kPieces,        // advised, prefetched 2 MiB at a time (growth in place, at its smallest)
  kNoAdviceWhole, // no advice, one prefetch
  kTouch,         // advised, never prefetched: a kernel's first touch populates it
  kDropRefill,    // kWhole, then every page discarded and refilled (umpool's give-back + refill)
  kDropTouch,     // kWhole, then discarded, then touched by a kernel
  kCopyIn,        // kWhole, then written by copies from pinned host memory (an offload's return)
};

struct Variant {
  const char* name;
  How how;
};

void Prefetch(void* p, size_t n, cudaStream_t s) {
  CK(cudaMemPrefetchAsync(p, n, cudaMemLocation{cudaMemLocationTypeDevice, 0}, 0, s));
}

void* Make(How how, cudaStream_t s, void* host) {
  void* p = nullptr;
  if (how == How::kMalloc) {
    CK(cudaMalloc(&p, kBytes));
    CK(cudaMemsetAsync(p, 0, kBytes, s));
    return p;
  }
  CK(cudaMallocManaged(&p, kBytes));
  const cudaMemLocation gpu{cudaMemLocationTypeDevice, 0}, cpu{cudaMemLocationTypeHost, 0};
  if (how != How::kNoAdviceWhole) {
    CK(cudaMemAdvise(p, kBytes, cudaMemAdviseSetPreferredLocation, gpu));
    CK(cudaMemAdvise(p, kBytes, cudaMemAdviseSetAccessedBy, cpu));
  }
  if (how == How::kPieces) {
    for (size_t off = 0; off < kBytes; off += kPage) Prefetch(static_cast<char*>(p) + off, kPage, s);
  } else if (how != How::kTouch) {
    Prefetch(p, kBytes, s);
  }
  if (how == How::kDropRefill || how == How::kDropTouch) {
    // In 2 MiB ranges, as the pool drops a segment's free pages.
    std::vector<void*> ptrs;
    std::vector<size_t> sizes;
    for (size_t off = 0; off < kBytes; off += kPage) {
      ptrs.push_back(static_cast<char*>(p) + off);
      sizes.push_back(kPage);
    }
    CK(cudaMemDiscardBatchAsync(ptrs.data(), sizes.data(), ptrs.size(), 0, s));
    if (how == How::kDropRefill) {
      cudaMemLocation loc = gpu;
      size_t first = 0;
      CK(cudaMemDiscardAndPrefetchBatchAsync(ptrs.data(), sizes.data(), ptrs.size(), &loc, &first,
                                             1, 0, s));
    }
  }
  if (how == How::kCopyIn) {
    for (size_t off = 0; off < kBytes; off += 4u << 20) {
      CK(cudaMemcpyAsync(static_cast<char*>(p) + off, host, 4u << 20, cudaMemcpyDefault, s));
    }
  }
  if (how != How::kCopyIn) CK(cudaMemsetAsync(p, 0, kBytes, s));  // first touch for kTouch
  CK(cudaStreamSynchronize(s));
  return p;
}

// Kernels beside other work: StreamRw on `k` (stream ks) while stream cs runs `passes`
// passes of `one_pass` (each queues work on cs), queued first. Returns the mean kernel time
// in us (events on ks) over 40 launches.
double BesideOps(void* k, const std::function<void(cudaStream_t)>& one_pass, int passes,
                 cudaStream_t ks, cudaStream_t cs) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  const size_t n = (256ull << 20) / 2 / sizeof(float4);
  for (int pass = 0; pass < passes; ++pass) one_pass(cs);
  CK(cudaEventRecord(a, ks));
  for (int i = 0; i < 40; ++i) {
    StreamRw<<<1056, 512, 0, ks>>>(static_cast<float4*>(k), static_cast<float4*>(k) + n, n);
  }
  CK(cudaEventRecord(b, ks));
  CK(cudaStreamSynchronize(ks));
  CK(cudaStreamSynchronize(cs));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return ms * 1e3 / 40;
}

// BesideOps with copies of `piece`-byte pieces between pinned host memory and the 256
// MiB buffer `c` (h2d or d2h; cudaMemcpyDefault, or the explicit kind as PyTorch passes
// it): nine passes, ~45 ms of copies queued, more than the kernels take.
double BesideCopies(void* k, void* c, void* host, bool h2d, size_t piece, bool explicit_kind,
                    cudaStream_t ks, cudaStream_t cs) {
  const cudaMemcpyKind kind =
      !explicit_kind ? cudaMemcpyDefault : h2d ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
  return BesideOps(k, [&](cudaStream_t st) {
    for (size_t off = 0; off < (256ull << 20); off += piece) {
      char* dev = static_cast<char*>(c) + off;
      CK(cudaMemcpyAsync(h2d ? dev : host, h2d ? host : dev, piece, kind, st));
    }
  }, 9, ks, cs);
}

// Pinned host memory read by the SMs (16-byte words, a small grid: 16 blocks).
__global__ void SmCopy(const float4* src, float4* dst, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    dst[i] = src[i];
  }
}

// advice: 0 none, 1 preferred GPU, 2 preferred GPU + accessed by CPU (umpool's default),
// 3 preferred GPU + accessed by GPU.
void* Alloc(bool managed, size_t bytes, cudaStream_t s, int advice = 2) {
  void* p = nullptr;
  if (!managed) {
    CK(cudaMalloc(&p, bytes));
  } else {
    CK(cudaMallocManaged(&p, bytes));
    const cudaMemLocation gpu{cudaMemLocationTypeDevice, 0}, cpu{cudaMemLocationTypeHost, 0};
    if (advice >= 1) CK(cudaMemAdvise(p, bytes, cudaMemAdviseSetPreferredLocation, gpu));
    if (advice >= 2) CK(cudaMemAdvise(p, bytes, cudaMemAdviseSetAccessedBy, advice == 2 ? cpu : gpu));
    Prefetch(p, bytes, s);
  }
  CK(cudaMemsetAsync(p, 0, bytes, s));
  CK(cudaStreamSynchronize(s));
  return p;
}

void BesideCopiesTable(cudaStream_t s) {
  cudaStream_t cs;
  CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  void* host = nullptr;
  CK(cudaHostAlloc(&host, 64u << 20, cudaHostAllocPortable | cudaHostAllocMapped));
  std::printf("\n# A 256 MiB streaming kernel (us a launch, mean of 40) while another stream copies\n"
              "# 4 MiB pieces between pinned host memory and a second 256 MiB buffer\n");
  std::printf("| kernel's buffer | copies' buffer | alone | beside H2D | beside D2H |\n"
              "|---|---|---:|---:|---:|\n");
  struct Case { const char* k; const char* c; bool km, cm, same; };
  for (Case x : {Case{"cudaMalloc", "cudaMalloc", false, false, false},
                 Case{"managed", "managed (another allocation)", true, true, false},
                 Case{"managed", "managed (same allocation)", true, true, true},
                 Case{"managed", "cudaMalloc", true, false, false},
                 Case{"cudaMalloc", "managed", false, true, false}}) {
    void* k = Alloc(x.km, x.same ? 512ull << 20 : 256ull << 20, s);
    void* c = x.same ? static_cast<char*>(k) + (256ull << 20) : Alloc(x.cm, 256ull << 20, s);
    const size_t n = (256ull << 20) / 2 / sizeof(float4);
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    StreamRw<<<1056, 512, 0, s>>>(static_cast<float4*>(k), static_cast<float4*>(k) + n, n);
    CK(cudaEventRecord(a, s));
    for (int i = 0; i < 40; ++i) {
      StreamRw<<<1056, 512, 0, s>>>(static_cast<float4*>(k), static_cast<float4*>(k) + n, n);
    }
    CK(cudaEventRecord(b, s));
    CK(cudaStreamSynchronize(s));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    const double h2d = BesideCopies(k, c, host, true, 4u << 20, false, s, cs);
    const double d2h = BesideCopies(k, c, host, false, 4u << 20, false, s, cs);
    std::printf("| %s | %s | %.1f | %.1f | %.1f |\n", x.k, x.c, ms * 1e3 / 40, h2d, d2h);
    CK(cudaFree(k));
    if (!x.same) CK(cudaFree(c));
  }
  std::printf("\n# The same kernel on cudaMalloc memory beside copies into and out of managed memory\n"
              "# under each advice (prefetched to the GPU), by piece size and memcpy kind (us a launch)\n");
  std::printf("| copies' buffer | H2D 4 MiB | D2H 4 MiB | H2D 64 MiB | D2H 64 MiB | H2D 4 MiB, kind H2D | "
              "D2H 4 MiB, kind D2H |\n|---|---:|---:|---:|---:|---:|---:|\n");
  const char* advice_names[] = {"cudaMalloc", "managed, no advice", "managed, preferred GPU",
                                "managed, preferred GPU, accessed by CPU",
                                "managed, preferred GPU, accessed by GPU"};
  void* k = Alloc(false, 256ull << 20, s);
  for (int advice = -1; advice <= 3; ++advice) {
    void* c = Alloc(advice >= 0, 256ull << 20, s, advice);
    std::printf("| %s |", advice_names[advice + 1]);
    for (auto [h2d, piece, kind] : {std::tuple{true, 4u << 20, false}, std::tuple{false, 4u << 20, false},
                                    std::tuple{true, 64u << 20, false}, std::tuple{false, 64u << 20, false},
                                    std::tuple{true, 4u << 20, true}, std::tuple{false, 4u << 20, true}}) {
      std::printf(" %.1f |", BesideCopies(k, c, host, h2d, piece, kind, s, cs));
    }
    std::printf("\n");
    CK(cudaFree(c));
  }
  std::printf("\n# The same kernel on cudaMalloc memory beside other work on a 256 MiB buffer, in\n"
              "# 4 MiB pieces (us a launch)\n| work beside it | on cudaMalloc memory | on managed memory |\n"
              "|---|---:|---:|\n");
  void* mapped = nullptr;
  CK(cudaHostGetDevicePointer(&mapped, host, 0));
  void* other = Alloc(false, 256ull << 20, s);
  const cudaMemLocation gpu{cudaMemLocationTypeDevice, 0}, cpu{cudaMemLocationTypeHost, 0};
  struct Work { const char* name; bool cuda_malloc_too; int passes; std::function<void(void*, cudaStream_t)> pass; };
  const size_t piece = 4u << 20;
  auto pieces = [&](void* c, auto&& fn) {
    for (size_t off = 0; off < (256ull << 20); off += piece) fn(static_cast<char*>(c) + off);
  };
  const Work works[] = {
      {"nothing", true, 1, [&](void*, cudaStream_t) {}},
      {"device-to-device copies to a cudaMalloc buffer", true, 40, [&](void* c, cudaStream_t st) {
         pieces(c, [&](char* p) {
           CK(cudaMemcpyAsync(static_cast<char*>(other) + (p - static_cast<char*>(c)), p, piece,
                              cudaMemcpyDeviceToDevice, st));
         });
       }},
      {"SM copies from mapped pinned memory (16 blocks)", true, 3, [&](void* c, cudaStream_t st) {
         pieces(c, [&](char* p) {
           SmCopy<<<16, 512, 0, st>>>(static_cast<const float4*>(mapped),
                                      reinterpret_cast<float4*>(p), piece / sizeof(float4));
         });
       }},
      {"prefetches to the host and back (migrations)", false, 3, [&](void* c, cudaStream_t st) {
         pieces(c, [&](char* p) {
           CK(cudaMemPrefetchAsync(p, piece, cpu, 0, st));
           CK(cudaMemPrefetchAsync(p, piece, gpu, 0, st));
         });
       }},
      {"discard and refill (cudaMemDiscardAndPrefetchBatchAsync)", false, 3, [&](void* c, cudaStream_t st) {
         pieces(c, [&](char* p) {
           void* ptr = p;
           size_t size = piece, first = 0;
           cudaMemLocation loc = gpu;
           CK(cudaMemDiscardAndPrefetchBatchAsync(&ptr, &size, 1, &loc, &first, 1, 0, st));
         });
       }},
  };
  for (const Work& w : works) {
    std::printf("| %s |", w.name);
    for (bool managed : {false, true}) {
      if (!managed && !w.cuda_malloc_too) {
        std::printf(" |");
        continue;
      }
      void* c = Alloc(managed, 256ull << 20, s);
      std::printf(" %.1f |", BesideOps(k, [&](cudaStream_t st) { w.pass(c, st); }, w.passes, s, cs));
      CK(cudaFree(c));
    }
    std::printf("\n");
  }
  CK(cudaFree(other));
  CK(cudaFree(k));
  CK(cudaFreeHost(host));
}

// SM copies between mapped pinned host memory and managed memory, by grid size: their
// bandwidth alone (best of 5 passes of 64 x 4 MiB) and the streaming kernel's time beside
// them. What copies by the SMs would cost umpool's own staging copies (evictions, fetches)
// instead of stalling an engine's kernels as the copy engines do on managed memory.
void SmCopyTable(cudaStream_t s) {
  cudaStream_t cs;
  CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  void* host = nullptr;
  CK(cudaHostAlloc(&host, 256ull << 20, cudaHostAllocPortable | cudaHostAllocMapped));
  std::memset(host, 1, 256ull << 20);
  void* mapped = nullptr;
  CK(cudaHostGetDevicePointer(&mapped, host, 0));
  void* k = Alloc(false, 256ull << 20, s);
  void* c = Alloc(true, 256ull << 20, s);
  const size_t piece = 4u << 20;
  std::printf("\n# SM copies between mapped pinned memory and managed memory (4 MiB pieces), by grid:\n"
              "# GB/s alone; the 256 MiB streaming kernel's us a launch beside them (71 alone)\n"
              "| blocks of 512 threads | H2D GB/s | D2H GB/s | kernel beside H2D | kernel beside D2H |\n"
              "|---:|---:|---:|---:|---:|\n");
  for (int blocks : {8, 16, 32, 66, 132, 264}) {
    auto pass = [&](bool h2d, cudaStream_t st) {
      for (size_t off = 0; off < (256ull << 20); off += piece) {
        const float4* src = reinterpret_cast<const float4*>(
            static_cast<char*>(h2d ? mapped : c) + off);
        float4* dst = reinterpret_cast<float4*>(static_cast<char*>(h2d ? c : mapped) + off);
        SmCopy<<<blocks, 512, 0, st>>>(src, dst, piece / sizeof(float4));
      }
    };
    double gbps[2];
    for (int d = 0; d < 2; ++d) {
      double best = 1e30;
      pass(d == 0, s);
      CK(cudaStreamSynchronize(s));
      for (int r = 0; r < 5; ++r) {
        double t = now();
        pass(d == 0, s);
        CK(cudaStreamSynchronize(s));
        best = std::min(best, now() - t);
      }
      gbps[d] = (256ull << 20) / best / 1e9;
    }
    // Enough passes queued to cover the kernels (~3 ms) at the measured speed.
    const int passes_h2d = std::max(1, static_cast<int>(gbps[0] * 1e9 * 6e-3 / (256ull << 20)) + 1);
    const int passes_d2h = std::max(1, static_cast<int>(gbps[1] * 1e9 * 6e-3 / (256ull << 20)) + 1);
    const double h2d = BesideOps(k, [&](cudaStream_t st) { pass(true, st); }, passes_h2d, s, cs);
    const double d2h = BesideOps(k, [&](cudaStream_t st) { pass(false, st); }, passes_d2h, s, cs);
    std::printf("| %d | %.1f | %.1f | %.1f | %.1f |\n", blocks, gbps[0], gbps[1], h2d, d2h);
  }
  CK(cudaFree(c));
  CK(cudaFree(k));
  CK(cudaFreeHost(host));
}

}  // namespace

int main() {
  CK(cudaFree(nullptr));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaMalloc(&g_out, 4));
  void* host = nullptr;
  CK(cudaHostAlloc(&host, 4u << 20, cudaHostAllocPortable));
  std::memset(host, 0, 4u << 20);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# %s; 512 MiB buffers, best of 5 rounds\n", prop.name);
  std::printf("| memory | stream r+w GB/s | page hops (us) | memset 512 MiB (us) | memset 4 MiB x128 (us) |\n"
              "|---|---:|---:|---:|---:|\n");
  const Variant variants[] = {
      {"cudaMalloc", How::kMalloc},
      {"managed, advised, prefetched whole", How::kWhole},
      {"managed, advised, prefetched 2 MiB at a time", How::kPieces},
      {"managed, no advice, prefetched whole", How::kNoAdviceWhole},
      {"managed, advised, first touch by a kernel", How::kTouch},
      {"managed, prefetched, discarded, refilled (DiscardAndPrefetch)", How::kDropRefill},
      {"managed, prefetched, discarded, touched by a kernel", How::kDropTouch},
      {"managed, prefetched, written by copies from pinned memory", How::kCopyIn},
      {"cudaMalloc (again)", How::kMalloc},
  };
  for (const Variant& v : variants) {
    void* p = Make(v.how, s, host);
    const double rw = Time(s, 10, RunStream, p);
    const double hop = Time(s, 10, RunHop, p);
    const double ms = Time(s, 10, RunMemset, p);
    const double mp = Time(s, 3, RunMemsetPieces, p);
    std::printf("| %s | %.0f | %.1f | %.1f | %.1f |\n", v.name, kBytes / rw / 1e9, hop * 1e6,
                ms * 1e6, mp * 1e6);
    CK(cudaFree(p));
  }
  CK(cudaFreeHost(host));
  BesideCopiesTable(s);
  SmCopyTable(s);
  return 0;
}
