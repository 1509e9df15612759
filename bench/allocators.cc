#include "bench/allocators.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "umpool/backend.h"
#include "umpool/version.h"

#if UMPOOL_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#endif

namespace umpool::bench {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "benchmark allocator failure: %s\n", what.c_str());
  std::exit(1);
}

class UmpoolAllocator final : public BenchAllocator {
 public:
  explicit UmpoolAllocator(BackendKind kind, bool prefetch = true) {
    PoolOptions o;
    o.backend = kind;
    if (!prefetch) o.roles[static_cast<int>(Role::kDefault)].prefetch = PrefetchMode::kNever;
    // UMPOOL_BENCH_CONF: options in UMPOOL_CONF's language on top (an A/B of
    // one option in one build, e.g. thread_cache_bytes:4MiB).
    if (const char* conf = std::getenv("UMPOOL_BENCH_CONF"); conf != nullptr) {
      absl::StatusOr<PoolOptions> parsed = ParsePoolOptions(conf, o);
      if (!parsed.ok()) Die("UMPOOL_BENCH_CONF: " + parsed.status().ToString());
      o = *std::move(parsed);
    }
    auto pool = Pool::Create(o);
    if (!pool.ok()) Die(pool.status().ToString());
    pool_ = *std::move(pool);
  }
  void* Alloc(std::size_t bytes, Stream stream) override {
    auto p = pool_->Allocate(bytes, stream);
    if (!p.ok()) Die(p.status().ToString());
    return *p;
  }
  void Free(void* p, std::size_t, Stream stream) override {
    if (absl::Status st = pool_->Deallocate(p, stream); !st.ok()) Die(st.ToString());
  }
  void Release() override { (void)pool_->Trim(); }
  long long PeakReservedBytes() const override { return pool_->GetStats().reserved_bytes.peak; }
  long long BackendCalls() const override {
    return static_cast<long long>(pool_->GetStats().backend_allocations);
  }

 private:
  std::unique_ptr<Pool> pool_;
};

#if UMPOOL_HAVE_CUDA
#define BENCH_CUDA(expr)                                                        \
  do {                                                                          \
    cudaError_t e = (expr);                                                     \
    if (e != cudaSuccess) Die(std::string(#expr) + ": " + cudaGetErrorString(e)); \
  } while (0)

// The seed allocator: one cudaMallocManaged per request, advised and
// prefetched below 2 GiB; free syncs the stream and calls cudaFree.
class SeedAllocator final : public BenchAllocator {
 public:
  void* Alloc(std::size_t bytes, Stream stream) override {
    int device = 0;
    BENCH_CUDA(cudaGetDevice(&device));
    void* p = nullptr;
    BENCH_CUDA(cudaMallocManaged(&p, bytes, cudaMemAttachGlobal));
    cudaMemLocation gpu{cudaMemLocationTypeDevice, device};
    cudaMemLocation cpu{cudaMemLocationTypeHost, 0};
    BENCH_CUDA(cudaMemAdvise(p, bytes, cudaMemAdviseSetPreferredLocation, gpu));
    BENCH_CUDA(cudaMemAdvise(p, bytes, cudaMemAdviseSetAccessedBy, cpu));
    if (bytes < (std::size_t{2} << 30)) {
      if (cudaMemPrefetchAsync(p, bytes, gpu, 0, stream) != cudaSuccess) (void)cudaGetLastError();
    }
    ++calls_;
    live_ += static_cast<long long>(bytes);
    peak_ = std::max(peak_, live_);
    return p;
  }
  void Free(void* p, std::size_t bytes, Stream stream) override {
    BENCH_CUDA(cudaStreamSynchronize(stream));
    BENCH_CUDA(cudaFree(p));
    live_ -= static_cast<long long>(bytes);
  }
  long long BackendCalls() const override { return calls_; }
  long long PeakReservedBytes() const override { return peak_; }

 private:
  long long calls_ = 0;
  long long live_ = 0, peak_ = 0;
};

// cudaMalloc / cudaFree per request (the bandwidth reference).
class CudaMallocAllocator final : public BenchAllocator {
 public:
  void* Alloc(std::size_t bytes, Stream) override {
    void* p = nullptr;
    BENCH_CUDA(cudaMalloc(&p, bytes));
    return p;
  }
  void Free(void* p, std::size_t, Stream stream) override {
    BENCH_CUDA(cudaStreamSynchronize(stream));
    BENCH_CUDA(cudaFree(p));
  }
};

// PyTorch's CUDACachingAllocator (raw_alloc_with_stream / raw_delete) through
// bench/torch_anchor/torch_shim.cc, dlopened from UMPOOL_TORCH_SHIM.
class TorchAllocator final : public BenchAllocator {
 public:
  TorchAllocator() {
    const char* path = std::getenv("UMPOOL_TORCH_SHIM");
    void* h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (h == nullptr) Die(std::string("dlopen UMPOOL_TORCH_SHIM: ") + dlerror());
    auto init = reinterpret_cast<int (*)()>(dlsym(h, "umpool_torch_anchor_init"));
    alloc_ = reinterpret_cast<void* (*)(std::size_t, cudaStream_t)>(
        dlsym(h, "umpool_torch_anchor_alloc"));
    free_ = reinterpret_cast<void (*)(void*)>(dlsym(h, "umpool_torch_anchor_free"));
    empty_ = reinterpret_cast<void (*)()>(dlsym(h, "umpool_torch_anchor_empty_cache"));
    stats_ = reinterpret_cast<void (*)(long long*)>(dlsym(h, "umpool_torch_anchor_stats"));
    if (!init || !alloc_ || !free_ || !empty_) Die("torch shim lacks a symbol");
    init();
  }
  void* Alloc(std::size_t bytes, Stream stream) override { return alloc_(bytes, stream); }
  void Free(void* p, std::size_t, Stream) override { free_(p); }
  void Release() override {
    BENCH_CUDA(cudaDeviceSynchronize());
    empty_();
  }
  // reserved_bytes peak and segments allocated (cudaMalloc calls), from
  // PyTorch's DeviceStats.
  long long PeakReservedBytes() const override { return Stat(1); }
  long long BackendCalls() const override { return Stat(2); }

 private:
  void* (*alloc_)(std::size_t, cudaStream_t) = nullptr;
  void (*free_)(void*) = nullptr;
  void (*empty_)() = nullptr;
  void (*stats_)(long long*) = nullptr;
  long long Stat(int i) const {
    if (stats_ == nullptr) return -1;
    long long v[4] = {-1, -1, -1, -1};
    stats_(v);
    return v[i];
  }
};

// A stream-ordered CUDA memory pool with its release threshold raised so that
// it caches: the device's default pool through cudaMallocAsync, or a CUDA 13
// managed-memory pool through cudaMallocFromPoolAsync.
class CudaPoolAllocator final : public BenchAllocator {
 public:
  enum class Kind { kDefaultPool, kManagedPool };
  explicit CudaPoolAllocator(Kind kind) : kind_(kind) {
    int device = 0;
    BENCH_CUDA(cudaGetDevice(&device));
    if (kind_ == Kind::kDefaultPool) {
      BENCH_CUDA(cudaDeviceGetDefaultMemPool(&pool_, device));
    } else {
      cudaMemPoolProps props{};
      props.allocType = cudaMemAllocationTypeManaged;
      props.location.type = cudaMemLocationTypeDevice;
      props.location.id = device;
      BENCH_CUDA(cudaMemPoolCreate(&pool_, &props));
    }
    std::uint64_t threshold = UINT64_MAX;
    BENCH_CUDA(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold));
  }
  ~CudaPoolAllocator() override {
    if (kind_ == Kind::kManagedPool) {
      (void)cudaDeviceSynchronize();
      (void)cudaMemPoolDestroy(pool_);
    }
  }
  void* Alloc(std::size_t bytes, Stream stream) override {
    void* p = nullptr;
    if (kind_ == Kind::kDefaultPool) {
      BENCH_CUDA(cudaMallocAsync(&p, bytes, stream));
    } else {
      BENCH_CUDA(cudaMallocFromPoolAsync(&p, bytes, pool_, stream));
    }
    return p;
  }
  void Free(void* p, std::size_t, Stream stream) override { BENCH_CUDA(cudaFreeAsync(p, stream)); }
  long long PeakReservedBytes() const override {
    std::uint64_t v = 0;  // the attribute is a cuuint64_t
    if (cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &v) != cudaSuccess) return -1;
    return static_cast<long long>(v);
  }
  void Release() override {
    BENCH_CUDA(cudaDeviceSynchronize());
    BENCH_CUDA(cudaMemPoolTrimTo(pool_, 0));
  }

 private:
  const Kind kind_;
  cudaMemPool_t pool_ = nullptr;
};
#endif

}  // namespace

std::vector<AllocatorFactory> AvailableAllocators() {
  std::vector<AllocatorFactory> all = {
      {"umpool_host", false,
       [] { return std::unique_ptr<BenchAllocator>(new UmpoolAllocator(BackendKind::kHost)); }},
  };
#if UMPOOL_HAVE_CUDA
  if (CudaAvailable()) {
    all.push_back({"umpool_managed", true, [] {
                     return std::unique_ptr<BenchAllocator>(new UmpoolAllocator(BackendKind::kManaged));
                   }});
    all.push_back({"umpool_managed_noprefetch", true,
                   [] {
                     return std::unique_ptr<BenchAllocator>(
                         new UmpoolAllocator(BackendKind::kManaged, /*prefetch=*/false));
                   },
                   /*in_cpu_workloads=*/false});
    if (std::getenv("UMPOOL_TORCH_SHIM") != nullptr) {
      all.push_back({"pytorch_native", true,
                     [] { return std::unique_ptr<BenchAllocator>(new TorchAllocator()); }});
    }
    all.push_back({"cudaMalloc", true,
                   [] { return std::unique_ptr<BenchAllocator>(new CudaMallocAllocator()); }});
    all.push_back({"seed_per_request", true,
                   [] { return std::unique_ptr<BenchAllocator>(new SeedAllocator()); }});
    all.push_back({"cudaMallocAsync", true,
                   [] {
                     return std::unique_ptr<BenchAllocator>(
                         new CudaPoolAllocator(CudaPoolAllocator::Kind::kDefaultPool));
                   }});
    all.push_back({"cuda_managed_pool", true,
                   [] {
                     return std::unique_ptr<BenchAllocator>(
                         new CudaPoolAllocator(CudaPoolAllocator::Kind::kManagedPool));
                   }});
  }
#endif
  return all;
}

Stream BenchStream(int index, bool gpu) {
  static std::mutex mu;
  static std::vector<Stream> streams;
  std::lock_guard<std::mutex> lock(mu);
#if UMPOOL_HAVE_CUDA
  if (gpu) {
    while (static_cast<int>(streams.size()) <= index) {
      cudaStream_t s = nullptr;
      BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      streams.push_back(s);
    }
    return streams[index];
  }
#endif
  return reinterpret_cast<Stream>(static_cast<std::uintptr_t>(0x1000 + index));
}

std::vector<std::pair<std::string, std::string>> MachineContext() {
  std::vector<std::pair<std::string, std::string>> ctx;
  ctx.emplace_back("umpool_version", UMPOOL_VERSION_STRING);
#if UMPOOL_HAVE_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) {
    cudaDeviceProp prop{};
    (void)cudaGetDeviceProperties(&prop, 0);
    int driver = 0, runtime = 0;
    (void)cudaDriverGetVersion(&driver);
    (void)cudaRuntimeGetVersion(&runtime);
    ctx.emplace_back("gpu", prop.name);
    ctx.emplace_back("cuda_driver", std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10));
    ctx.emplace_back("cuda_runtime", std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10));
    std::size_t free_b = 0, total = 0;
    (void)cudaMemGetInfo(&free_b, &total);
    ctx.emplace_back("gpu_memory_total_bytes", std::to_string(total));
    return ctx;
  }
  (void)cudaGetLastError();
#endif
  ctx.emplace_back("gpu", "none (host backend only)");
  return ctx;
}

}  // namespace umpool::bench
