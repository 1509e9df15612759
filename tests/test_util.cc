#include "tests/test_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "umpool/backend.h"

#if UMPOOL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace umpool::testing {

std::uint64_t TestSeed(std::uint64_t fallback) {
  std::uint64_t seed = fallback;
  if (const char* env = std::getenv("UMPOOL_TEST_SEED"); env != nullptr && *env != '\0') {
    seed = std::strtoull(env, nullptr, 0);
  }
  std::printf("[ seed     ] %llu (set UMPOOL_TEST_SEED to repeat)\n",
              static_cast<unsigned long long>(seed));
  return seed;
}

bool HaveGpu() { return CudaAvailable(); }

absl::StatusOr<std::unique_ptr<Pool>> MakeTestPool(BackendKind kind, PoolOptions options) {
  options.backend = kind;
  if (kind != BackendKind::kHost && options.capacity_bytes == 0) {
    options.capacity_bytes = std::size_t{1} << 30;
  }
  return Pool::Create(options);
}

std::unique_ptr<Pool> MakeHostPool(PoolOptions options, internal::HostBackend** backend,
                                   std::size_t backend_capacity) {
  options.backend = BackendKind::kHost;
  auto b = std::make_unique<internal::HostBackend>(backend_capacity);
  *backend = b.get();
  auto pool = Pool::Create(options, std::move(b));
  if (!pool.ok()) {
    std::fprintf(stderr, "MakeHostPool: %s\n", pool.status().ToString().c_str());
    std::abort();
  }
  return *std::move(pool);
}

namespace {

std::vector<unsigned char> Pattern(std::size_t bytes, std::uint64_t seed) {
  std::vector<unsigned char> v(bytes);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < bytes; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<unsigned char>(x);
  }
  return v;
}

// The host touches managed memory only once the stream the block was
// allocated on has reached the allocation (Pool::Allocate's contract): a
// block refilled from given-back pages is populated by stream-ordered work
// that would otherwise land after the host's write.
void WaitBeforeHostAccess(BackendKind kind) {
#if UMPOOL_HAVE_CUDA
  if (kind == BackendKind::kManaged && cudaDeviceSynchronize() != cudaSuccess) std::abort();
#else
  (void)kind;
#endif
}

}  // namespace

void FillPattern(BackendKind kind, void* p, std::size_t bytes, std::uint64_t seed) {
  const std::vector<unsigned char> v = Pattern(bytes, seed);
  WaitBeforeHostAccess(kind);
#if UMPOOL_HAVE_CUDA
  if (kind == BackendKind::kDevice || kind == BackendKind::kVmm) {
    if (cudaMemcpy(p, v.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess) std::abort();
    return;
  }
#endif
  std::memcpy(p, v.data(), bytes);
}

bool CheckPattern(BackendKind kind, const void* p, std::size_t bytes, std::uint64_t seed) {
  const std::vector<unsigned char> v = Pattern(bytes, seed);
  WaitBeforeHostAccess(kind);
#if UMPOOL_HAVE_CUDA
  if (kind == BackendKind::kDevice || kind == BackendKind::kVmm) {
    std::vector<unsigned char> got(bytes);
    if (cudaMemcpy(got.data(), p, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) std::abort();
    return got == v;
  }
#endif
  return std::memcmp(p, v.data(), bytes) == 0;
}

int RunPatternWorker(Pool& pool, BackendKind kind, Stream s, std::uint64_t seed,
                     const PatternWork& work) {
  std::mt19937_64 rng(seed);
  std::vector<std::pair<void*, std::uint64_t>> live;
  int failures = 0;
  for (int i = 0; i < work.ops; ++i) {
    if (work.each != nullptr) work.each(i);
    if (live.size() < work.max_live && (live.empty() || rng() % 2)) {
      auto p = pool.Allocate(work.min_bytes + rng() % work.spread, s);
      if (!p.ok()) {  // counted; the live blocks are still checked and freed
        ++failures;
        break;
      }
      const std::uint64_t tag = rng();
      FillPattern(kind, *p, work.pattern_bytes, tag);
      live.emplace_back(*p, tag);
    } else {
      const std::size_t k = rng() % live.size();
      if (!CheckPattern(kind, live[k].first, work.pattern_bytes, live[k].second)) ++failures;
      if (!pool.Deallocate(live[k].first, s).ok()) ++failures;
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (auto& [p, tag] : live) {
    if (!CheckPattern(kind, p, work.pattern_bytes, tag)) ++failures;
    if (!pool.Deallocate(p, s).ok()) ++failures;
  }
  return failures;
}

}  // namespace umpool::testing
