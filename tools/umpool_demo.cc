// tools/umpool_demo.cc: the README's main job. A short demonstration and
// benchmark of the pool: on the managed backend when a GPU is usable, on the
// host backend otherwise (it says which). It shows the pool's reason to
// exist: after warm-up, allocations are served from advised, prefetched slabs
// without a backend call, and compares that with the seed's per-request path.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "umpool/backend.h"
#include "umpool/umpool.hpp"

#if UMPOOL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

double NsPerPair(umpool::Pool& pool, std::size_t bytes, int iters) {
  for (int i = 0; i < 100; ++i) {  // warm-up: creates the slab once
    void* p = *pool.Allocate(bytes);
    (void)pool.Deallocate(p);
  }
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) {
    auto p = pool.Allocate(bytes);
    if (!p.ok()) {
      std::fprintf(stderr, "allocate failed: %s\n", p.status().ToString().c_str());
      std::exit(1);
    }
    (void)pool.Deallocate(*p);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / iters;
}

#if UMPOOL_HAVE_CUDA
// The seed allocator's cost for one request (cudaMallocManaged, 2 advice
// calls, prefetch, stream sync, cudaFree).
double SeedNsPerPair(std::size_t bytes, int iters) {
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) {
    void* p = nullptr;
    if (cudaMallocManaged(&p, bytes, cudaMemAttachGlobal) != cudaSuccess) std::exit(1);
    cudaMemLocation gpu{cudaMemLocationTypeDevice, 0}, cpu{cudaMemLocationTypeHost, 0};
    (void)cudaMemAdvise(p, bytes, cudaMemAdviseSetPreferredLocation, gpu);
    (void)cudaMemAdvise(p, bytes, cudaMemAdviseSetAccessedBy, cpu);
    (void)cudaMemPrefetchAsync(p, bytes, gpu, 0, nullptr);
    (void)cudaStreamSynchronize(nullptr);
    (void)cudaFree(p);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / iters;
}
#endif

}  // namespace

int main() {
  const bool gpu = umpool::CudaAvailable();
  umpool::PoolOptions options;
  options.backend = gpu ? umpool::BackendKind::kManaged : umpool::BackendKind::kHost;
  if (gpu) options.capacity_bytes = std::size_t{4} << 30;  // a small, safe cap for the demo
  auto pool = umpool::Pool::Create(options);
  if (!pool.ok()) {
    std::fprintf(stderr, "umpool-demo: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  std::printf("umpool %s demo on the %s backend: %s\n", UMPOOL_VERSION_STRING,
              std::string(umpool::BackendKindName(options.backend)).c_str(),
              (*pool)->Describe().c_str());
  if (!gpu) std::printf("(no usable GPU: running on the host backend)\n");

  std::printf("\n%-12s %16s %18s\n", "size", "umpool ns/pair", "seed ns/pair");
  for (std::size_t bytes : {std::size_t{4096}, std::size_t{1} << 20, std::size_t{64} << 20}) {
    const double ours = NsPerPair(**pool, bytes, 200000);
    std::string seed = "n/a (no GPU)";
#if UMPOOL_HAVE_CUDA
    if (gpu) seed = std::to_string(static_cast<long long>(SeedNsPerPair(bytes, 50)));
#endif
    std::printf("%-12zu %16.1f %18s\n", bytes, ours, seed.c_str());
  }

  // A decode-step-like loop: 64 tensors of mixed sizes per step.
  const std::size_t sizes[] = {8192, 65536, 1 << 20, 4 << 20, 12288, 256 << 10, 40 << 20};
  auto step = [&] {
    std::vector<void*> live;
    for (int i = 0; i < 64; ++i) live.push_back(*(*pool)->Allocate(sizes[i % 7]));
    for (void* p : live) (void)(*pool)->Deallocate(p);
  };
  step();
  const umpool::Stats warm = (*pool)->GetStats();
  const auto t0 = Clock::now();
  for (int i = 0; i < 2000; ++i) step();
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / 2000;
  const umpool::Stats after = (*pool)->GetStats();
  std::printf("\n2000 steps x 64 mixed allocations: %.2f us/step, backend calls after warm-up: %llu\n",
              us, static_cast<unsigned long long>(after.backend_allocations - warm.backend_allocations));
  std::printf("\n%s", after.ToString().c_str());
  return 0;
}
