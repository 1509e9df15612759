// tests/test_util.h: helpers shared by the pool test suites.
#ifndef UMPOOL_TESTS_TEST_UTIL_H_
#define UMPOOL_TESTS_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/backend/host_backend.h"
#include "umpool/pool.h"

namespace umpool::testing {

// The random seed of a test: UMPOOL_TEST_SEED if set, else `fallback`.
// Printed, so a failing run can be repeated.
std::uint64_t TestSeed(std::uint64_t fallback);

// A pool on `kind` for tests, or a reason to skip (no GPU / no CUDA build).
// Managed/device pools get a small cap (1 GiB) unless options say otherwise,
// so tests never ask a shared GPU for much memory.
absl::StatusOr<std::unique_ptr<Pool>> MakeTestPool(BackendKind kind, PoolOptions options = {});

// A host pool whose backend the test controls (manual event completion,
// injected map failures). `*backend` stays valid while the pool lives.
std::unique_ptr<Pool> MakeHostPool(PoolOptions options, internal::HostBackend** backend,
                                   std::size_t backend_capacity = 0);

// Fills / checks `bytes` at `p` with a pattern derived from `seed`, through
// cudaMemcpy for device memory and directly otherwise.
void FillPattern(BackendKind kind, void* p, std::size_t bytes, std::uint64_t seed);
bool CheckPattern(BackendKind kind, const void* p, std::size_t bytes, std::uint64_t seed);

// true when a CUDA device is usable from this process.
bool HaveGpu();

// Fake stream handles for the host backend (any distinct values work).
inline Stream HostStream(int i) { return reinterpret_cast<Stream>(static_cast<std::uintptr_t>(0x100 + i)); }

// One worker of the multi-threaded pool tests: `ops` random allocations (of
// min_bytes .. min_bytes + spread - 1 bytes, at most max_live live) and frees
// on stream `s`, each block's first pattern_bytes filled with a pattern and
// checked before its free (and at the end); `each(i)` runs before op i when
// given. A failed allocation ends the ops; the live blocks are still checked
// and freed. Returns how many calls failed or patterns did not match.
struct PatternWork {
  int ops = 3000;
  std::size_t max_live = 32, min_bytes = 256, spread = 20000, pattern_bytes = 256;
  void (*each)(int i) = nullptr;
};
int RunPatternWorker(Pool& pool, BackendKind kind, Stream s, std::uint64_t seed,
                     const PatternWork& work);

}  // namespace umpool::testing

#endif  // UMPOOL_TESTS_TEST_UTIL_H_
