// bench/pool_benchmark.cc: umpool against its anchors, one harness for all.
//
// Every workload runs against every allocator that is available on this
// machine (AvailableAllocators): umpool on the host and managed backends, the
// seed's per-request managed path, cudaMallocAsync's default pool and a CUDA
// 13 managed memory pool. The JSON context names the GPU, driver and runtime.
// UMPOOL_BENCH_CONF (UMPOOL_CONF's language) sets options of umpool's pools:
// an A/B of one option in one build (e.g. thread_cache_bytes:4MiB).
//   BM_CachedPair/<alloc>/<bytes>      alloc+free on one stream
//   BM_Churn/<alloc>                    64 live blocks of 8 sizes, random replace
//   BM_Threads/<alloc>/threads:N        4 KiB pairs, each thread on its own stream
//   BM_CrossStream/<alloc>/<bytes>      allocate on B, free on A (blocks flow A -> B)
//   BM_FirstAlloc/<alloc>/<bytes>       allocation into an empty pool (slab creation)
// GPU side (GPU allocators only):
//   BM_CopyBandwidth/<alloc>            copy kernel between two 1 GiB blocks (GB/s counter)
//   BM_FirstKernel/<alloc>              fresh 1 GiB block: allocation to the end of the
//                                       first kernel that reads it (prefetched vs faulting)
//   BM_EvictedKvReuse/umpool_managed/discard:0|1   reuse of 512 MiB of KV evicted to host
//                                       memory, without and with discard on free
//   BM_ResidentKvReuse/umpool_managed/discard:0|1  the same KV left resident: freed,
//                                       allocated again and written (no fetch)
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "bench/allocators.h"
#include "umpool/backend.h"
#include "umpool/pool.h"

#if UMPOOL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#if UMPOOL_BENCH_KERNELS
#include "bench/gpu_kernels.h"
#endif

namespace umpool::bench {
namespace {

BenchAllocator& Get(const AllocatorFactory& f) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<BenchAllocator>> made;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = made[f.name];
  if (!slot) slot = f.make();
  return *slot;
}

void SyncIfGpu(bool gpu, Stream s) {
#if UMPOOL_HAVE_CUDA
  if (gpu) (void)cudaStreamSynchronize(s);
#endif
}

void CachedPair(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const Stream s = BenchStream(0, f.needs_gpu);
  a.Free(a.Alloc(bytes, s), bytes, s);  // warm
  const long long calls = a.BackendCalls();
  for (auto _ : state) {
    void* p = a.Alloc(bytes, s);
    benchmark::DoNotOptimize(p);
    a.Free(p, bytes, s);
  }
  state.SetItemsProcessed(state.iterations());
  if (calls >= 0) state.counters["backend_calls"] = static_cast<double>(a.BackendCalls() - calls);
  SyncIfGpu(f.needs_gpu, s);
}

void Churn(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  const Stream s = BenchStream(0, f.needs_gpu);
  constexpr std::size_t kSizes[8] = {512, 1536, 4096, 12288, 65536, 200000, 1 << 20, 3 << 20};
  std::mt19937 rng(42);
  std::vector<std::pair<void*, std::size_t>> live(64);
  for (auto& [p, n] : live) {
    n = kSizes[rng() % 8];
    p = a.Alloc(n, s);
  }
  std::vector<std::uint32_t> script(1 << 16);
  for (auto& x : script) x = rng();
  std::size_t i = 0;
  for (auto _ : state) {
    const std::uint32_t r = script[i++ & (script.size() - 1)];
    auto& [p, n] = live[r % 64];
    a.Free(p, n, s);
    n = kSizes[(r >> 8) % 8];
    p = a.Alloc(n, s);
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
  for (auto& [p, n] : live) a.Free(p, n, s);
  SyncIfGpu(f.needs_gpu, s);
}

void Threads(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  const Stream s = BenchStream(1 + state.thread_index(), f.needs_gpu);
  constexpr std::size_t kBytes = 4096;
  a.Free(a.Alloc(kBytes, s), kBytes, s);
  for (auto _ : state) {
    void* p = a.Alloc(kBytes, s);
    benchmark::DoNotOptimize(p);
    a.Free(p, kBytes, s);
  }
  state.SetItemsProcessed(state.iterations());
  SyncIfGpu(f.needs_gpu, s);
}

void CrossStream(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const Stream sa = BenchStream(20, f.needs_gpu), sb = BenchStream(21, f.needs_gpu);
  for (auto _ : state) {
    void* p = a.Alloc(bytes, sb);
    benchmark::DoNotOptimize(p);
    a.Free(p, bytes, sa);
  }
  state.SetItemsProcessed(state.iterations());
  SyncIfGpu(f.needs_gpu, sa);
  SyncIfGpu(f.needs_gpu, sb);
}

void FirstAlloc(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const Stream s = BenchStream(0, f.needs_gpu);
  for (auto _ : state) {
    a.Release();
    SyncIfGpu(f.needs_gpu, s);
    const auto t0 = std::chrono::steady_clock::now();
    void* p = a.Alloc(bytes, s);
    SyncIfGpu(f.needs_gpu, s);  // include the slab's prefetch
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    a.Free(p, bytes, s);
  }
  a.Release();
  state.SetItemsProcessed(state.iterations());
}

#if UMPOOL_BENCH_KERNELS
#define GPU_CHECK(expr)                                                  \
  do {                                                                   \
    if ((expr) != cudaSuccess) {                                         \
      state.SkipWithError(#expr);                                        \
      return;                                                            \
    }                                                                    \
  } while (0)

void CopyBandwidth(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  constexpr std::size_t kBytes = std::size_t{1} << 30;
  const Stream s = BenchStream(0, true);
  void* src = a.Alloc(kBytes, s);
  void* dst = a.Alloc(kBytes, s);
  GPU_CHECK(cudaMemsetAsync(src, 1, kBytes, s));
  GPU_CHECK(cudaMemsetAsync(dst, 0, kBytes, s));
  for (int i = 0; i < 3; ++i) GPU_CHECK(LaunchCopy(dst, src, kBytes, s));
  cudaEvent_t e0, e1;
  GPU_CHECK(cudaEventCreate(&e0));
  GPU_CHECK(cudaEventCreate(&e1));
  constexpr int kReps = 20;
  double bytes = 0;
  for (auto _ : state) {
    GPU_CHECK(cudaEventRecord(e0, s));
    for (int i = 0; i < kReps; ++i) GPU_CHECK(LaunchCopy(dst, src, kBytes, s));
    GPU_CHECK(cudaEventRecord(e1, s));
    GPU_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    GPU_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    state.SetIterationTime(ms / 1e3 / kReps);
    bytes += 2.0 * kBytes * kReps;
  }
  state.counters["GB/s"] = benchmark::Counter(2.0 * kBytes, benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(static_cast<std::int64_t>(2.0 * kBytes) * state.iterations());
  (void)bytes;
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  a.Free(dst, kBytes, s);
  a.Free(src, kBytes, s);
  a.Release();
}

void FirstKernel(benchmark::State& state, AllocatorFactory f) {
  BenchAllocator& a = Get(f);
  constexpr std::size_t kBytes = std::size_t{1} << 30;
  const Stream s = BenchStream(0, true);
  unsigned long long* sink = nullptr;
  GPU_CHECK(cudaMalloc(reinterpret_cast<void**>(&sink), sizeof(*sink)));
  for (auto _ : state) {
    a.Release();
    GPU_CHECK(cudaDeviceSynchronize());
    const auto t0 = std::chrono::steady_clock::now();
    void* p = a.Alloc(kBytes, s);
    GPU_CHECK(LaunchRead(p, kBytes, sink, s));
    GPU_CHECK(cudaStreamSynchronize(s));
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    a.Free(p, kBytes, s);
  }
  a.Release();
  cudaFree(sink);
}
// A paused request's KV (32 x 16 MiB) is evicted to host memory and freed; a
// new request reuses the blocks (fetch to the GPU, then write). Timed from the
// first reallocation to the end of the writes; with discard on free the
// driver has no dead contents to migrate back.
// range(0): discard on free; range(1): the blocks are evicted before they are
// freed (a paused request) and fetched when reused, else they stay resident
// and the new request just writes them.
void KvReuse(benchmark::State& state) {
  const bool evict = state.range(1) != 0;
  constexpr int kBlocks = 32;
  constexpr std::size_t kBytes = std::size_t{16} << 20;
  PoolOptions o;
  o.backend = BackendKind::kManaged;
  o.capacity_bytes = std::size_t{2} << 30;
  o.roles[static_cast<int>(Role::kKv)].discard_on_free = state.range(0) != 0;
  auto pool = Pool::Create(o);
  if (!pool.ok()) {
    state.SkipWithError("pool");
    return;
  }
  const Stream s = BenchStream(0, true);
  std::vector<void*> kv(kBlocks);
  for (auto _ : state) {
    for (auto& p : kv) {
      p = *(*pool)->Allocate(kBytes, s, Role::kKv);
      GPU_CHECK(cudaMemsetAsync(p, 1, kBytes, s));  // the request writes its KV
      if (evict) (void)(*pool)->Evict(p, s);
    }
    GPU_CHECK(cudaStreamSynchronize(s));
    for (void* p : kv) (void)(*pool)->Deallocate(p, s);
    GPU_CHECK(cudaStreamSynchronize(s));
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& p : kv) {
      p = *(*pool)->Allocate(kBytes, s, Role::kKv);
      if (evict) (void)(*pool)->Fetch(p, s);
      GPU_CHECK(cudaMemsetAsync(p, 2, kBytes, s));
    }
    GPU_CHECK(cudaStreamSynchronize(s));
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    for (void* p : kv) (void)(*pool)->Deallocate(p, s);
  }
  state.counters["discarded_GiB"] =
      static_cast<double>((*pool)->GetStats().discard_bytes) / (1 << 30);
  state.SetBytesProcessed(static_cast<std::int64_t>(kBlocks * kBytes) * state.iterations());
}
#endif

void RegisterAll() {
#if UMPOOL_BENCH_KERNELS
  if (CudaAvailable()) {
    for (const char* kind : {"Evicted", "Resident"}) {
      const int evict = kind[0] == 'E' ? 1 : 0;
      for (int discard = 0; discard < 2; ++discard) {
        benchmark::RegisterBenchmark(
            (std::string("BM_") + kind + "KvReuse/umpool_managed/discard:" + std::to_string(discard)).c_str(),
            KvReuse)
            ->Args({discard, evict})->UseManualTime()->Iterations(5);
      }
    }
  }
#endif
  for (const AllocatorFactory& f : AvailableAllocators()) {
    const std::string n = f.name;
#if UMPOOL_BENCH_KERNELS
    if (f.needs_gpu) {
      benchmark::RegisterBenchmark(("BM_CopyBandwidth/" + n).c_str(), CopyBandwidth, f)
          ->UseManualTime()->Iterations(5);
      benchmark::RegisterBenchmark(("BM_FirstKernel/" + n).c_str(), FirstKernel, f)
          ->UseManualTime()->Iterations(5);
    }
#endif
    if (!f.in_cpu_workloads) continue;
    auto* b = benchmark::RegisterBenchmark(("BM_CachedPair/" + n).c_str(), CachedPair, f);
    for (long long bytes : {512LL, 4096LL, 65536LL, 1LL << 20, 16LL << 20, 256LL << 20}) b->Arg(bytes);
    benchmark::RegisterBenchmark(("BM_Churn/" + n).c_str(), Churn, f);
    benchmark::RegisterBenchmark(("BM_Threads/" + n).c_str(), Threads, f)
        ->Threads(1)->Threads(2)->Threads(4)->Threads(8)->Threads(16)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_CrossStream/" + n).c_str(), CrossStream, f)
        ->Arg(4096)->Arg(1 << 20)->Arg(64 << 20);
    benchmark::RegisterBenchmark(("BM_FirstAlloc/" + n).c_str(), FirstAlloc, f)
        ->Arg(4096)->Arg(1 << 20)->Arg(64 << 20)->Arg(1LL << 30)
        ->UseManualTime()->Iterations(8);
  }
}

}  // namespace
}  // namespace umpool::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const auto& [k, v] : umpool::bench::MachineContext()) benchmark::AddCustomContext(k, v);
  umpool::bench::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
