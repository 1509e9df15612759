#include "src/backend/sm_copy.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>

#include "src/backend/cuda_status.h"

namespace umpool::internal {
namespace {

// __global__ void umpool_copy_by_sms(uint4* dst, const uint4* src, size_t words) {
//   for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < words;
//        i += size_t(gridDim.x) * blockDim.x) dst[i] = src[i];
// }
// PTX ISA 7.0 for sm_70 and later: any driver that runs CUDA 12.8 compiles it.
constexpr char kCopyPtx[] = R"(.version 7.0
.target sm_70
.address_size 64

.visible .entry umpool_copy_by_sms(.param .u64 dst, .param .u64 src, .param .u64 words)
{
	.reg .pred %p;
	.reg .b32 %r<4>;
	.reg .b32 %v<4>;
	.reg .b64 %d<10>;

	ld.param.u64 %d0, [dst];
	ld.param.u64 %d1, [src];
	ld.param.u64 %d2, [words];
	cvta.to.global.u64 %d0, %d0;
	cvta.to.global.u64 %d1, %d1;
	mov.u32 %r0, %ctaid.x;
	mov.u32 %r1, %ntid.x;
	mov.u32 %r2, %tid.x;
	mul.wide.u32 %d3, %r0, %r1;
	cvt.u64.u32 %d4, %r2;
	add.u64 %d3, %d3, %d4;
	mov.u32 %r3, %nctaid.x;
	mul.wide.u32 %d5, %r3, %r1;
LOOP:
	setp.ge.u64 %p, %d3, %d2;
	@%p bra DONE;
	shl.b64 %d6, %d3, 4;
	add.u64 %d7, %d1, %d6;
	ld.global.v4.u32 {%v0, %v1, %v2, %v3}, [%d7];
	add.u64 %d8, %d0, %d6;
	st.global.v4.u32 [%d8], {%v0, %v1, %v2, %v3};
	add.u64 %d3, %d3, %d5;
	bra LOOP;
DONE:
	ret;
}
)";

struct CopyKernel {
  cudaKernel_t kernel = nullptr;  // null: unavailable
};

// Loaded at the first call, kept for the process (a library is
// context-independent: it loads into each device's context at its first launch).
const CopyKernel& Kernel() {
  static CopyKernel k;
  static std::once_flag once;
  std::call_once(once, [] {
    cudaLibrary_t lib = nullptr;
    if (cudaLibraryLoadData(&lib, kCopyPtx, nullptr, nullptr, 0, nullptr, nullptr, 0) !=
            cudaSuccess ||
        cudaLibraryGetKernel(&k.kernel, lib, "umpool_copy_by_sms") != cudaSuccess) {
      (void)cudaGetLastError();
      k.kernel = nullptr;
    }
  });
  return k;
}

// True, with *out set to the address the device uses for it, when `p` is
// pinned host memory mapped for the device (registered or allocated Mapped);
// false, *out untouched, otherwise.
bool HostView(const void* p, void** out) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  if (a.type != cudaMemoryTypeHost || a.devicePointer == nullptr) return false;
  *out = a.devicePointer;
  return true;
}

}  // namespace

absl::Status CopyBySms(void* dst, const void* src, std::size_t bytes, int device, Stream stream,
                       SmCopyGrid grid) {
  const auto misaligned = [](std::uintptr_t v) { return (v & 15) != 0; };
  if (bytes < kSmCopyMinBytes || misaligned(reinterpret_cast<std::uintptr_t>(dst)) ||
      misaligned(reinterpret_cast<std::uintptr_t>(src)) || misaligned(bytes)) {
    return absl::UnimplementedError("copy left to the copy engines (small or misaligned)");
  }
  const CopyKernel& k = Kernel();
  if (k.kernel == nullptr) {
    return absl::UnimplementedError("the SM copy kernel could not be loaded");
  }
  // The host side as the device sees it: the source (a wake, a fetch) or the
  // destination (an eviction). The other side is the device's memory.
  void* from = const_cast<void*>(src);
  void* to = dst;
  const bool host_src = HostView(src, &from);
  const bool host_dst = HostView(dst, &to);
  if (host_src == host_dst) {
    return absl::UnimplementedError("not one side pinned host memory mapped for the device");
  }
  unsigned blocks = 8, threads = 512;
  if (grid == SmCopyGrid::kWholeDevice) {
    int sms = 0;
    UMPOOL_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    // Two blocks per SM: enough loads in flight to fill the bus (the probe's shape).
    blocks = 2 * static_cast<unsigned>(sms);
    threads = 1024;
  }
  std::size_t words = bytes / 16;
  void* args[] = {&to, &from, &words};
  UMPOOL_CUDA_TRY(cudaLaunchKernel(reinterpret_cast<const void*>(k.kernel), dim3(blocks),
                                   dim3(threads), args, 0, static_cast<cudaStream_t>(stream)));
  return absl::OkStatus();
}

}  // namespace umpool::internal
