// src/backend/sm_copy.h: copies moved by the GPU's SMs instead of its copy
// engines: a kernel that copies between pinned host memory (over the bus) and
// device or managed memory, either way (16-byte words, grid-stride).
//
// Why (a wake): right after another allocator freed a lot of memory (a trainer's
// cudaFree of ~115 GiB on the H200), the driver scrubs it on the copy
// engines for about half a second, and cudaMemcpyAsync host-to-device runs at
// half speed meanwhile: 16 GiB woke in 0.62-0.65 s instead of 0.31-0.34 s.
// The same copy by the SMs took 0.356-0.365 s then; with no other allocator
// 0.335 s, against 0.312 s by the copy engines in the same call
// (bench/probes/vmm_sleep.cu, UMPOOL_PROBE_SM_COPY=1;
// bench/results/H200-2026-11-30-session12): a little slower on an idle card,
// twice as fast after a large free. It occupies the SMs while it runs, so it
// suits a wake, when nothing else runs, not copies that overlap an engine's
// kernels. On a few SMs (SmCopyGrid::kFewSms) it suits copies that do: on
// managed memory better than the copy engines (see SmCopyGrid).
//
// The kernel ships as PTX text loaded once per process with
// cudaLibraryLoadData (the driver compiles it for the card): the library
// itself is built without nvcc.
//
// Thread safety: CopyBySms may be called from any thread.
#ifndef UMPOOL_SRC_BACKEND_SM_COPY_H_
#define UMPOOL_SRC_BACKEND_SM_COPY_H_

#include <cstddef>

#include "absl/status/status.h"
#include "umpool/backend.h"

namespace umpool::internal {

// Below this a copy is left to the copy engines (a launch costs what a small
// cudaMemcpyAsync does).
inline constexpr std::size_t kSmCopyMinBytes = std::size_t{1} << 20;

// How many SMs a copy takes.
enum class SmCopyGrid {
  // Two blocks of 1024 threads per SM: the bus's full speed, the SMs busy
  // while it runs (a wake, when nothing else runs).
  kWholeDevice,
  // Eight blocks of 512 threads: copies that run beside an engine's kernels.
  // On managed memory the copy engines hold kernels up: a kernel on another
  // stream took 2-3.5x longer beside cudaMemcpyAsync between pinned and
  // managed memory in 4 MiB pieces, 17x beside 64 MiB pieces, on any memory
  // and under any advice; beside copies by eight SMs 1.05x (host to GPU,
  // 42.6 GB/s) and 1.16x (GPU to host, 50.5 GB/s); more blocks slowed it more
  // and copied no faster (H200, bench/probes/managed_kernels.cu,
  // bench/results/H200-2026-12-02-session30).
  kFewSms,
};

// Queues on `stream` (of `device`, which the caller made current) a copy of
// `bytes` from `src` to `dst`, one of them pinned host memory mapped for the
// device (registered or allocated with the Mapped flag), the other device or
// managed memory. Unimplemented — the caller then copies with cudaMemcpyAsync
// — when the copy is below kSmCopyMinBytes, `dst`, `src` or `bytes` is not a
// multiple of 16, neither side is mapped host memory, or the kernel could not
// be loaded (no JIT for this card).
absl::Status CopyBySms(void* dst, const void* src, std::size_t bytes, int device, Stream stream,
                       SmCopyGrid grid = SmCopyGrid::kWholeDevice);

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_SM_COPY_H_
