#include "src/backend/vmm_backend.h"

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/backend/cuda_status.h"
#include "src/backend/sm_copy.h"

namespace umpool::internal {

// The driver's VMM entry points, looked up once through the runtime.
struct VmmDriver {
  CUresult (*address_reserve)(CUdeviceptr*, std::size_t, std::size_t, CUdeviceptr,
                              unsigned long long) = nullptr;
  CUresult (*address_free)(CUdeviceptr, std::size_t) = nullptr;
  CUresult (*create)(CUmemGenericAllocationHandle*, std::size_t, const CUmemAllocationProp*,
                     unsigned long long) = nullptr;
  CUresult (*release)(CUmemGenericAllocationHandle) = nullptr;
  CUresult (*map)(CUdeviceptr, std::size_t, std::size_t, CUmemGenericAllocationHandle,
                  unsigned long long) = nullptr;
  CUresult (*unmap)(CUdeviceptr, std::size_t) = nullptr;
  CUresult (*set_access)(CUdeviceptr, std::size_t, const CUmemAccessDesc*, std::size_t) = nullptr;
  CUresult (*error_name)(CUresult, const char**) = nullptr;
  absl::Status status;  // not ok: the driver lacks an entry point
};

namespace {

constexpr std::size_t kPage = kMapGranularity;

template <class F>
absl::Status Lookup(const char* symbol, F* fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t err =
      cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &found);
  if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || p == nullptr) {
    (void)cudaGetLastError();
    return absl::UnavailableError(
        absl::StrCat("vmm backend: the CUDA driver has no ", symbol, " (needs CUDA 12 or later)"));
  }
  *fn = reinterpret_cast<F>(p);
  return absl::OkStatus();
}

const VmmDriver& Driver() {
  static const VmmDriver* d = [] {
    auto* v = new VmmDriver;  // never destroyed: backends may outlive static teardown
    for (absl::Status st :
         {Lookup("cuMemAddressReserve", &v->address_reserve), Lookup("cuMemAddressFree", &v->address_free),
          Lookup("cuMemCreate", &v->create), Lookup("cuMemRelease", &v->release),
          Lookup("cuMemMap", &v->map), Lookup("cuMemUnmap", &v->unmap),
          Lookup("cuMemSetAccess", &v->set_access), Lookup("cuGetErrorName", &v->error_name)}) {
      if (!st.ok() && v->status.ok()) v->status = st;
    }
    return v;
  }();
  return *d;
}

// OK, or what `what` failed with; out of memory is ResourceExhausted.
absl::Status CuStatus(const VmmDriver& d, CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return absl::OkStatus();
  const char* name = "unknown CUDA driver error";
  if (d.error_name != nullptr) (void)d.error_name(r, &name);
  const std::string msg = absl::StrCat(what, " failed: ", name);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) return absl::ResourceExhaustedError(msg);
  if (r == CUDA_ERROR_INVALID_VALUE) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

CUmemAllocationProp Prop(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  return prop;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VmmBackend>> VmmBackend::Create(int device) {
  absl::StatusOr<std::string> name = CudaDeviceName(device);
  if (!name.ok()) return name.status();
  const VmmDriver& d = Driver();
  if (!d.status.ok()) return d.status;
  int supported = 0;
  UMPOOL_CUDA_TRY(cudaDeviceGetAttribute(
      &supported, static_cast<cudaDeviceAttr>(CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED),
      device));
  if (supported == 0) {
    return absl::UnavailableError(absl::StrCat(
        "vmm backend: device ", device, " (", *name, ") does not support CUDA virtual memory management"));
  }
  return std::unique_ptr<VmmBackend>(new VmmBackend(device, *std::move(name), d));
}

VmmBackend::VmmBackend(int device, std::string name, const VmmDriver& driver)
    : CudaBackend(device, std::move(name)), driver_(driver) {}

VmmBackend::~VmmBackend() {
  ScopedDevice guard(device_);
  (void)Bind(guard);
  MutexLock lock(&mu_);
  for (auto& [base, r] : reservations_) {
    (void)ReleaseAll(r, base);
    (void)driver_.address_free(base, r.bytes);
  }
}

absl::Status VmmBackend::Bind(const ScopedDevice& guard) {
  if (!guard.status().ok()) return guard.status();
  // The cuMem* calls need a current context; this makes the device's primary
  // context current on a thread that has not used the runtime yet.
  UMPOOL_CUDA_TRY(cudaFree(nullptr));
  return absl::OkStatus();
}

absl::StatusOr<void*> VmmBackend::Map(std::size_t bytes) {
  RelaxedCaptureMode relaxed;  // as cudaMalloc: a capture elsewhere stays valid
  if (bytes == 0 || bytes % kPage != 0) {
    return absl::InvalidArgumentError(absl::StrCat("vmm Map: ", bytes, " is not a multiple of 2 MiB"));
  }
  ScopedDevice guard(device_);
  if (absl::Status st = Bind(guard); !st.ok()) return st;
  CUdeviceptr va = 0;
  if (absl::Status st = CuStatus(driver_, driver_.address_reserve(&va, bytes, kPage, 0, 0),
                                 "cuMemAddressReserve");
      !st.ok()) {
    return st;
  }
  MutexLock lock(&mu_);
  Reservation& r = reservations_[va];
  r.bytes = bytes;
  r.pages.assign(bytes / kPage, kUnmapped);
  counters_.maps.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<void*>(va);
}

absl::Status VmmBackend::Unmap(void* ptr, std::size_t bytes) {
  RelaxedCaptureMode relaxed;  // as cudaMalloc: a capture elsewhere stays valid
  const auto base = reinterpret_cast<std::uintptr_t>(ptr);
  ScopedDevice guard(device_);
  if (absl::Status st = Bind(guard); !st.ok()) return st;
  MutexLock lock(&mu_);
  auto it = reservations_.find(base);
  if (it == reservations_.end() || it->second.bytes != bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vmm Unmap: ", absl::Hex(base), " + ", bytes, " is not a range this backend mapped"));
  }
  absl::Status st = ReleaseAll(it->second, base);
  if (st.ok()) st = CuStatus(driver_, driver_.address_free(base, bytes), "cuMemAddressFree");
  reservations_.erase(it);
  counters_.unmaps.fetch_add(1, std::memory_order_relaxed);
  return st;
}

absl::StatusOr<VmmBackend::Reservation*> VmmBackend::Find(std::uintptr_t lo, std::uintptr_t hi,
                                                          std::uintptr_t* base) {
  auto it = reservations_.upper_bound(lo);
  if (it != reservations_.begin() && hi <= std::prev(it)->first + std::prev(it)->second.bytes) {
    *base = std::prev(it)->first;
    return &std::prev(it)->second;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("vmm: ", absl::Hex(lo), "-", absl::Hex(hi), " is not memory of this backend"));
}

absl::Status VmmBackend::Populate(std::uintptr_t lo, std::uintptr_t hi) {
  std::uintptr_t base = 0;
  absl::StatusOr<Reservation*> found = Find(lo, hi, &base);
  if (!found.ok()) return found.status();
  Reservation* r = *found;
  const std::size_t end = (hi - base) / kPage;
  for (std::size_t i = (lo - base) / kPage; i < end;) {
    if (r->pages[i] == kDropped) {  // still backed: live again
      r->pages[i] = kLive;
      ++std::prev(r->chunks.upper_bound(i))->second.live;
    }
    if (r->pages[i] == kLive) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < end && r->pages[j] == kUnmapped) ++j;
    if (absl::Status st = MapRun(*r, base, i, j); !st.ok()) return st;
    i = j;
  }
  return absl::OkStatus();
}

absl::Status VmmBackend::MapRun(Reservation& r, std::uintptr_t base, std::size_t first,
                                std::size_t end) {
  constexpr std::size_t kChunkPages = kChunkBytes / kPage;
  const CUmemAllocationProp prop = Prop(device_);
  absl::Status st;
  std::size_t i = first;
  while (i < end) {  // chunks cut at every kChunkPages of the reservation
    const std::size_t n = std::min(end, (i / kChunkPages + 1) * kChunkPages) - i;
    CUmemGenericAllocationHandle h = 0;
    st = CuStatus(driver_, driver_.create(&h, n * kPage, &prop, 0), "cuMemCreate");
    if (!st.ok()) break;
    st = CuStatus(driver_, driver_.map(base + i * kPage, n * kPage, 0, h, 0), "cuMemMap");
    if (!st.ok()) {
      (void)driver_.release(h);
      break;
    }
    r.chunks[i] = Chunk{h, n, n};
    std::fill(r.pages.begin() + i, r.pages.begin() + i + n, std::uint8_t{kLive});
    populated_ += n * kPage;
    i += n;
  }
  if (i > first) {  // what was mapped is made accessible, error or not
    CUmemAccessDesc access{};
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    absl::Status acc = CuStatus(
        driver_, driver_.set_access(base + first * kPage, (i - first) * kPage, &access, 1),
        "cuMemSetAccess");
    if (st.ok()) st = acc;
  }
  return st;
}

absl::Status VmmBackend::Drop(std::uintptr_t lo, std::uintptr_t hi) {
  std::uintptr_t base = 0;
  absl::StatusOr<Reservation*> found = Find(lo, hi, &base);
  if (!found.ok()) return found.status();
  Reservation* r = *found;
  absl::Status st;
  for (std::size_t i = (lo - base) / kPage; i < (hi - base) / kPage; ++i) {
    if (r->pages[i] != kLive) continue;
    r->pages[i] = kDropped;
    auto c = std::prev(r->chunks.upper_bound(i));
    if (--c->second.live == 0) {
      absl::Status rel = ReleaseChunk(*r, base, c->first);
      if (st.ok()) st = rel;
    }
  }
  return st;
}

absl::Status VmmBackend::ReleaseChunk(Reservation& r, std::uintptr_t base, std::size_t first) {
  auto c = r.chunks.find(first);
  const std::size_t n = c->second.pages;
  absl::Status st = CuStatus(driver_, driver_.unmap(base + first * kPage, n * kPage), "cuMemUnmap");
  if (!st.ok()) return st;  // still mapped: kept as it is
  st = CuStatus(driver_, driver_.release(c->second.handle), "cuMemRelease");
  std::fill(r.pages.begin() + first, r.pages.begin() + first + n, std::uint8_t{kUnmapped});
  r.chunks.erase(c);
  populated_ -= n * kPage;
  return st;
}

absl::Status VmmBackend::ReleaseAll(Reservation& r, std::uintptr_t base) {
  absl::Status st;
  while (!r.chunks.empty()) {
    const std::size_t first = r.chunks.begin()->first;
    absl::Status rel = ReleaseChunk(r, base, first);
    if (!rel.ok()) {
      if (st.ok()) st = rel;
      r.chunks.erase(first);  // unmap failed: forgotten rather than retried forever
    }
  }
  return st;
}

absl::Status VmmBackend::Advise(void*, std::size_t, const Advice&) {
  counters_.advise_ops.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status VmmBackend::Prefetch(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                                  Location where, Stream stream) {
  if (where == Location::kHost) {
    // During a capture a prefetch is a hint nobody runs now (the managed
    // backend's is only captured): nothing to refuse.
    if (IsCapturing(stream)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        "vmm memory stays on the GPU: it cannot be evicted by migration (prefetch to the host); "
        "evict by staging (`<role>.evict:staging`) or sleep with offload by staging");
  }
  counters_.prefetch_ops.fetch_add(1, std::memory_order_relaxed);
  return PopulateRanges(ptrs, sizes, count);
}

absl::Status VmmBackend::PopulateRanges(void* const* ptrs, const std::size_t* sizes,
                                        std::size_t count) {
  RelaxedCaptureMode relaxed;
  ScopedDevice guard(device_);
  if (absl::Status st = Bind(guard); !st.ok()) return st;
  MutexLock lock(&mu_);
  for (std::size_t k = 0; k < count; ++k) {
    const auto p = reinterpret_cast<std::uintptr_t>(ptrs[k]);
    const std::uintptr_t lo = p & ~(kPage - 1);
    const std::uintptr_t hi = (p + sizes[k] + kPage - 1) & ~(kPage - 1);
    if (absl::Status st = Populate(lo, hi); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status VmmBackend::Discard(void* const* ptrs, const std::size_t* sizes, std::size_t count,
                                 DiscardMode mode, Stream stream) {
  if (count == 0) return absl::OkStatus();
  if (mode == DiscardMode::kRefill) {
    absl::Status st = PopulateRanges(ptrs, sizes, count);
    if (st.ok()) {
      counters_.discard_ops.fetch_add(1, std::memory_order_relaxed);
      for (std::size_t k = 0; k < count; ++k) {
        counters_.discard_bytes.fetch_add(sizes[k], std::memory_order_relaxed);
        counters_.refill_bytes.fetch_add(sizes[k], std::memory_order_relaxed);
      }
    }
    return st;
  }
  if (IsCapturing(stream)) {
    return absl::FailedPreconditionError(
        "vmm: pages cannot be released while their stream is being captured into a CUDA graph");
  }
  ScopedDevice guard(device_);
  if (absl::Status st = Bind(guard); !st.ok()) return st;
  // Work queued before the discard may still read the pages.
  UMPOOL_CUDA_TRY(cudaStreamSynchronize(stream));
  MutexLock lock(&mu_);
  absl::Status st;
  for (std::size_t k = 0; k < count; ++k) {
    const auto p = reinterpret_cast<std::uintptr_t>(ptrs[k]);
    const std::uintptr_t lo = (p + kPage - 1) & ~(kPage - 1);
    const std::uintptr_t hi = (p + sizes[k]) & ~(kPage - 1);
    if (lo >= hi) continue;
    absl::Status r = Drop(lo, hi);
    if (!r.ok() && st.ok()) st = r;
    counters_.discard_bytes.fetch_add(hi - lo, std::memory_order_relaxed);
  }
  counters_.discard_ops.fetch_add(1, std::memory_order_relaxed);
  return st;
}

std::size_t VmmBackend::populated_bytes() const {
  MutexLock lock(&mu_);
  return populated_;
}

absl::Status VmmBackend::CopyBack(void* dst, const void* src, std::size_t bytes, Stream stream) {
  return CopyBySmsOrEngines(dst, src, bytes, stream, SmCopyGrid::kWholeDevice);
}

}  // namespace umpool::internal
