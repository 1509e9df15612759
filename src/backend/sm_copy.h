// src/backend/sm_copy.h: copies moved by the GPU's SMs instead of its copy
// engines: a kernel that reads pinned host memory over the bus and writes
// device memory (16-byte words, grid-stride).
//
// Why: right after another allocator freed a lot of memory (a trainer's
// cudaFree of ~115 GiB on the H200), the driver scrubs it on the copy
// engines for about half a second, and cudaMemcpyAsync host-to-device runs at
// half speed meanwhile: 16 GiB woke in 0.62-0.65 s instead of 0.31-0.34 s.
// The same copy by the SMs took 0.356-0.365 s then; with no other allocator
// 0.335 s, against 0.312 s by the copy engines in the same call
// (bench/probes/vmm_sleep.cu, UMPOOL_PROBE_SM_COPY=1;
// bench/results/H200-2026-11-30-session12): a little slower on an idle card,
// twice as fast after a large free. It occupies the SMs while it runs, so it
// suits a wake, when nothing else runs, not copies that overlap an engine's
// kernels.
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

// Queues on `stream` (of `device`, which the caller made current) a copy of
// `bytes` from `src`, pinned host memory mapped for the device (registered or
// allocated with the Mapped flag), to `dst`, device memory. Unimplemented —
// the caller then copies with cudaMemcpyAsync — when the copy is below
// kSmCopyMinBytes, `dst`, `src` or `bytes` is not a multiple of 16, `src` is
// not mapped, or the kernel could not be loaded (no JIT for this card).
absl::Status CopyBySms(void* dst, const void* src, std::size_t bytes, int device, Stream stream);

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BACKEND_SM_COPY_H_
