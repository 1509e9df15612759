// bench/sleep_benchmark.cc: Pool::Sleep and Wake of a model's weights on the
// managed backend, offloaded by staging (pinned copies) and by eviction, and
// on the vmm backend (staging; the dropped pages go back to the driver).
//
//   BM_SleepWake/offload_by:staging|eviction   weights of UMPOOL_SLEEP_GIB
//       (default 16) GiB in 64 MiB blocks, slept (offloaded) and woken each
//       iteration. Counters: sleep_s and wake_s (median of the iterations
//       after the first, each timed to the end of its stream work),
//       first_sleep_s and first_wake_s (the first sleep pins the staging
//       buffer), GB/s of each.
//   BM_DiscardSleep   the same blocks as KV: a sleep that only discards
//       (same counters).
//   BM_SleepWake/vmm, BM_DiscardSleep/vmm   the same on the vmm backend;
//       freed_GiB: what cudaMemGetInfo saw freed by the last sleep.
//
// Skipped where no GPU is usable or the GPU has less than twice the bytes
// free (the GPU machines' rule: never ask for more managed memory than the
// card has free).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "umpool/backend.h"
#include "umpool/pool.h"

namespace umpool::bench {
namespace {

constexpr std::size_t kBlock = std::size_t{64} << 20;

std::size_t SleepBytes() {
  const char* env = std::getenv("UMPOOL_SLEEP_GIB");
  const double gib = env != nullptr ? std::atof(env) : 16.0;
  return static_cast<std::size_t>(gib * (1 << 30)) / kBlock * kBlock;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A managed pool holding `bytes` of written blocks of `role`, or null (the
// state skipped with the reason).
std::unique_ptr<Pool> Loaded(benchmark::State& state, std::size_t bytes, Role role,
                             BackendKind backend, cudaStream_t s, std::vector<void*>* blocks) {
  std::size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess || free_bytes < 2 * bytes) {
    state.SkipWithError("no GPU, or less than twice the bytes free");
    return nullptr;
  }
  PoolOptions o;
  o.backend = backend;
  o.capacity_bytes = bytes + (std::size_t{1} << 30);
  auto pool = Pool::Create(o);
  if (!pool.ok()) {
    state.SkipWithError(std::string(pool.status().message()).c_str());
    return nullptr;
  }
  for (std::size_t done = 0; done < bytes; done += kBlock) {
    absl::StatusOr<void*> p = (*pool)->Allocate(kBlock, s, role);
    if (!p.ok() || cudaMemsetAsync(*p, 0x5a, kBlock, s) != cudaSuccess) {
      state.SkipWithError("allocate");
      return nullptr;
    }
    blocks->push_back(*p);
  }
  cudaStreamSynchronize(s);
  return *std::move(pool);
}

std::size_t DeviceFree() {
  std::size_t free_bytes = 0, total = 0;
  (void)cudaMemGetInfo(&free_bytes, &total);
  return free_bytes;
}

// range(0): 0 = offload weights by staging, 1 = by eviction, 2 = discard KV
// only; range(1): the backend (BackendKind: 0 managed, 3 vmm).
void SleepWake(benchmark::State& state) {
  const bool discard = state.range(0) == 2;
  const Role role = discard ? Role::kKv : Role::kWeights;
  const std::size_t bytes = SleepBytes();
  cudaStream_t s = nullptr;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  std::vector<void*> blocks;
  const auto backend = static_cast<BackendKind>(state.range(1));
  std::unique_ptr<Pool> pool = Loaded(state, bytes, role, backend, s, &blocks);
  if (pool == nullptr) return;
  SleepOptions options;
  options.roles[static_cast<int>(role)] = discard ? SleepAction::kDiscard : SleepAction::kOffload;
  if (!discard) options.offload_by = static_cast<OffloadBy>(state.range(0));
  std::vector<double> sleeps, wakes;
  double first = -1, first_wake = -1, freed = 0;
  for (auto _ : state) {
    const std::size_t free0 = DeviceFree();
    auto t0 = std::chrono::steady_clock::now();
    absl::Status st = pool->Sleep(options, s);
    cudaStreamSynchronize(s);
    const double slept = Seconds(t0);
    freed = (static_cast<double>(DeviceFree()) - static_cast<double>(free0)) / (1 << 30);
    t0 = std::chrono::steady_clock::now();
    if (st.ok()) st = pool->Wake(s);
    cudaStreamSynchronize(s);
    const double woke = Seconds(t0);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    if (first < 0) {
      first = slept;  // pins the staging buffer: reported alone
      first_wake = woke;
    } else {
      sleeps.push_back(slept);
      wakes.push_back(woke);
    }
    state.SetIterationTime(slept + woke);
  }
  const double gb = static_cast<double>(bytes) / 1e9;
  state.counters["GiB"] = static_cast<double>(bytes) / (1 << 30);
  state.counters["first_sleep_s"] = first;
  state.counters["first_wake_s"] = first_wake;
  state.counters["freed_GiB"] = freed;
  state.counters["sleep_s"] = Median(sleeps);
  state.counters["wake_s"] = Median(wakes);
  state.counters["sleep_GB/s"] = gb / Median(sleeps);
  state.counters["wake_GB/s"] = gb / Median(wakes);
  for (void* p : blocks) (void)pool->Deallocate(p, s);
  pool.reset();
  cudaStreamDestroy(s);
}

}  // namespace
}  // namespace umpool::bench

int main(int argc, char** argv) {
  using namespace umpool::bench;
  benchmark::Initialize(&argc, argv);
  if (umpool::CudaAvailable()) {
    const int managed = static_cast<int>(umpool::BackendKind::kManaged);
    const int vmm = static_cast<int>(umpool::BackendKind::kVmm);
    const int staging = static_cast<int>(umpool::OffloadBy::kStaging);
    benchmark::RegisterBenchmark("BM_SleepWake/offload_by:staging", SleepWake)
        ->Args({staging, managed})->UseManualTime()->Iterations(4);
    benchmark::RegisterBenchmark("BM_SleepWake/offload_by:eviction", SleepWake)
        ->Args({static_cast<int>(umpool::OffloadBy::kEviction), managed})->UseManualTime()->Iterations(3);
    benchmark::RegisterBenchmark("BM_DiscardSleep", SleepWake)
        ->Args({2, managed})->UseManualTime()->Iterations(4);
    benchmark::RegisterBenchmark("BM_SleepWake/vmm/offload_by:staging", SleepWake)
        ->Args({staging, vmm})->UseManualTime()->Iterations(4);
    benchmark::RegisterBenchmark("BM_DiscardSleep/vmm", SleepWake)
        ->Args({2, vmm})->UseManualTime()->Iterations(4);
  } else {
    std::fprintf(stderr, "sleep_benchmark: no usable CUDA device; nothing to run\n");
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
