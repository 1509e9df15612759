// bench/allocators.h: the allocators the benchmarks compare, behind one
// interface, so every workload runs the same code against each of them.
#ifndef UMPOOL_BENCH_ALLOCATORS_H_
#define UMPOOL_BENCH_ALLOCATORS_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "umpool/pool.h"

namespace umpool::bench {

class BenchAllocator {
 public:
  virtual ~BenchAllocator() = default;
  virtual void* Alloc(std::size_t bytes, Stream stream) = 0;
  virtual void Free(void* p, std::size_t bytes, Stream stream) = 0;
  // Returns cached memory (between benchmarks).
  virtual void Release() {}
  // Backend calls made so far (maps/cudaMalloc*), or -1 if unknown.
  virtual long long BackendCalls() const { return -1; }
  // Peak bytes reserved from the device since construction, by the
  // allocator's own account, or -1 if it keeps none. For the per-request
  // paths (seed, cudaMalloc) it is the peak of the bytes they were asked for.
  virtual long long PeakReservedBytes() const { return -1; }
};

struct AllocatorFactory {
  std::string name;  // e.g. "umpool_managed", "seed", "cudaMallocAsync"
  bool needs_gpu;
  std::unique_ptr<BenchAllocator> (*make)();
  // false: only for the GPU-side benchmarks (e.g. a no-prefetch variant).
  bool in_cpu_workloads = true;
};

// Every allocator compiled in; those needing a GPU are listed only when one is usable.
std::vector<AllocatorFactory> AvailableAllocators();

// A stream per index for the workload (real CUDA streams on a GPU, host
// handles otherwise); created once, never destroyed.
Stream BenchStream(int index, bool gpu);

// Describes the machine for the JSON context: GPU name, driver and runtime.
std::vector<std::pair<std::string, std::string>> MachineContext();

}  // namespace umpool::bench

#endif  // UMPOOL_BENCH_ALLOCATORS_H_
