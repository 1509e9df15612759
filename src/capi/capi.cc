// src/capi/capi.cc: the C ABI (include/umpool/umpool.h) over umpool::Pool.
//
// One pool per CUDA device, created lazily under a mutex and published
// through an atomic pointer, so the allocation path reads it lock-free.
// Configuration is read once (umpool_configure, else UMPOOL_CONF).
#include "umpool/umpool.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/capi/conf.h"
#include "umpool/pool.h"
#include "umpool/version.h"

#if UMPOOL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace umpool::capi {
namespace {

constexpr int kMaxDevices = 64;

// What umpool_malloc throws on failure: PyTorch turns it into a Python
// RuntimeError carrying the message.
class AllocationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

thread_local std::string tls_last_error;

struct State {
  std::mutex mu;
  bool configured = false;  // guarded by mu
  absl::Status conf_status;  // guarded by mu
  Conf conf;                 // guarded by mu; fixed once the first pool exists
  std::array<std::atomic<Pool*>, kMaxDevices> pools{};
  // Each pool's cap at creation: what a memory fraction of 1.0 means on the
  // host backend (on a GPU it is the device's total memory).
  std::array<std::atomic<std::size_t>, kMaxDevices> base_capacity{};
  std::atomic<bool> any_pool{false};
  std::atomic<bool> logged_oom{false}, logged_error{false};
};

// Never destroyed: PyTorch may free tensors during interpreter shutdown.
State& S() {
  static State* s = new State;
  return *s;
}

umpool_status CodeOf(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kOk: return UMPOOL_OK;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return UMPOOL_ERROR_INVALID_ARGUMENT;
    case absl::StatusCode::kResourceExhausted: return UMPOOL_ERROR_OUT_OF_MEMORY;
    case absl::StatusCode::kFailedPrecondition: return UMPOOL_ERROR_FAILED_PRECONDITION;
    case absl::StatusCode::kUnavailable: return UMPOOL_ERROR_UNAVAILABLE;
    default: return UMPOOL_ERROR_INTERNAL;
  }
}

int Fail(const absl::Status& st) {
  tls_last_error = std::string(st.message());
  std::atomic<bool>& logged =
      absl::IsResourceExhausted(st) ? S().logged_oom : S().logged_error;
  if (!logged.exchange(true)) {
    const char* prefix = absl::StartsWith(tls_last_error, "umpool") ? "" : "umpool: ";
    std::fprintf(stderr, "%s%s (further errors of this kind are not logged; see "
                 "umpool_last_error)\n", prefix, tls_last_error.c_str());
  }
  return CodeOf(st);
}

// Reads UMPOOL_CONF once, unless umpool_configure came first. Caller holds mu.
void EnsureConfiguredLocked(State& s) {
  if (s.configured) return;
  s.configured = true;
  const char* env = std::getenv("UMPOOL_CONF");
  if (env == nullptr) return;
  absl::StatusOr<Conf> conf = ParseConf(env);
  if (conf.ok()) {
    s.conf = *std::move(conf);
  } else {
    s.conf_status = conf.status();
  }
}

absl::Status CheckDevice(int device) {
  if (device < 0 || device >= kMaxDevices) {
    return absl::InvalidArgumentError(absl::StrCat("invalid device ", device));
  }
  return absl::OkStatus();
}

absl::StatusOr<Pool*> PoolFor(int device) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  if (Pool* p = s.pools[device].load(std::memory_order_acquire)) return p;
  std::lock_guard<std::mutex> lock(s.mu);
  if (Pool* p = s.pools[device].load(std::memory_order_acquire)) return p;
  EnsureConfiguredLocked(s);
  if (!s.conf_status.ok()) return s.conf_status;
  PoolOptions options = s.conf.pool;
  options.device = options.backend == BackendKind::kHost ? 0 : device;
  // One trace file per device: "%d" in the path is the device, else devices
  // other than 0 get ".dev<N>" appended.
  if (!options.trace_path.empty()) {
    if (const std::size_t at = options.trace_path.find("%d"); at != std::string::npos) {
      options.trace_path.replace(at, 2, std::to_string(options.device));
    } else if (options.device != 0) {
      options.trace_path += ".dev" + std::to_string(options.device);
    }
  }
  if (options.backend == BackendKind::kHost && device != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid device ", device, ": the host backend has only device 0"));
  }
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  if (!pool.ok()) return pool.status();
  Pool* raw = pool->release();  // lives until the process ends
  s.base_capacity[device].store(raw->GetStats().capacity_bytes, std::memory_order_relaxed);
  s.pools[device].store(raw, std::memory_order_release);
  s.any_pool.store(true, std::memory_order_release);
  return raw;
}

// The pool whose memory holds ptr (any device's), trying `hint` first, or nullptr.
Pool* OwnerOf(const void* ptr, int hint) {
  State& s = S();
  if (CheckDevice(hint).ok()) {
    Pool* p = s.pools[hint].load(std::memory_order_acquire);
    if (p != nullptr && p->Holds(ptr)) return p;
  }
  for (auto& slot : s.pools) {
    Pool* p = slot.load(std::memory_order_acquire);
    if (p != nullptr && p->Holds(ptr)) return p;
  }
  return nullptr;
}

absl::Status NotUmpool(const char* fn, const void* ptr) {
  return absl::InvalidArgumentError(absl::StrCat(
      fn, ": pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
      " was not allocated by umpool"));
}

void* Malloc(std::size_t size, int device, umpool_stream_t stream, Role role, bool may_throw) {
  if (size == 0) return nullptr;
  absl::StatusOr<Pool*> pool = PoolFor(device);
  absl::Status st;
  if (pool.ok()) {
    absl::StatusOr<void*> p = (*pool)->Allocate(size, stream, role);
    if (p.ok()) return *p;
    st = p.status();
  } else {
    st = pool.status();
  }
  Fail(st);
  bool raise = true;
  {
    std::lock_guard<std::mutex> lock(S().mu);
    raise = S().conf.raise_on_oom;
  }
  if (may_throw && raise) throw AllocationError(tls_last_error);
  return nullptr;
}

}  // namespace
}  // namespace umpool::capi

using umpool::Pool;
using umpool::Role;
using namespace umpool::capi;

extern "C" {

void* umpool_malloc(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kDefault, true);
}
void* umpool_malloc_weights(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kWeights, true);
}
void* umpool_malloc_kv(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kKv, true);
}
void* umpool_malloc_activations(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kActivations, true);
}
void* umpool_pool_malloc(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kDefault, false);
}
void* umpool_pool_malloc_weights(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kWeights, false);
}
void* umpool_pool_malloc_kv(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kKv, false);
}
void* umpool_pool_malloc_activations(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, Role::kActivations, false);
}

void umpool_free(void* ptr, size_t /*size*/, int device, umpool_stream_t stream) {
  if (ptr == nullptr) return;
  // `device` is the allocation-time device; the pointer says which pool owns it
  // even when that is another one.
  Pool* pool = OwnerOf(ptr, device);
  if (pool == nullptr) {
    Fail(absl::InvalidArgumentError(absl::StrCat(
        "umpool_free: pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
        " was not allocated by umpool (device ", device, ")")));
    return;
  }
  if (absl::Status st = pool->Deallocate(ptr, stream); !st.ok()) Fail(st);
}

void umpool_init(int device_count) {
  if (device_count < 0 || device_count > kMaxDevices) {
    Fail(absl::InvalidArgumentError(absl::StrCat("umpool_init: bad device count ", device_count)));
    return;
  }
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  EnsureConfiguredLocked(s);
  if (!s.conf_status.ok()) Fail(s.conf_status);
}

void umpool_empty_cache(void) {
  for (auto& slot : S().pools) {
    if (Pool* p = slot.load(std::memory_order_acquire)) {
      if (absl::Status st = p->Trim(); !st.ok()) Fail(st);
    }
  }
}

void umpool_set_memory_fraction(double fraction, int device) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    Fail(absl::InvalidArgumentError(
        absl::StrCat("memory fraction ", fraction, " is not in (0, 1]")));
    return;
  }
  absl::StatusOr<Pool*> pool = PoolFor(device);
  if (!pool.ok()) {
    Fail(pool.status());
    return;
  }
  std::size_t total = 0;
#if UMPOOL_HAVE_CUDA
  if ((*pool)->options().backend != umpool::BackendKind::kHost) {
    int current = -1;
    (void)cudaGetDevice(&current);
    if (current != device) (void)cudaSetDevice(device);
    std::size_t free_b = 0;
    const cudaError_t err = cudaMemGetInfo(&free_b, &total);
    if (current >= 0 && current != device) (void)cudaSetDevice(current);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      Fail(absl::InternalError("set_memory_fraction: cudaMemGetInfo failed"));
      return;
    }
  }
#endif
  if (total == 0) total = S().base_capacity[device].load(std::memory_order_relaxed);
  const std::size_t cap = std::min((*pool)->MaxCapacity(),
                                   static_cast<std::size_t>(fraction * static_cast<double>(total)));
  if (absl::Status st = (*pool)->SetCapacity(cap); !st.ok()) Fail(st);
}

void umpool_record_stream(void* ptr, umpool_stream_t stream) {
  Pool* pool = OwnerOf(ptr, -1);
  if (pool == nullptr) {
    Fail(NotUmpool("umpool_record_stream", ptr));
    return;
  }
  if (absl::Status st = pool->RecordStream(ptr, stream); !st.ok()) Fail(st);
}

int umpool_configure(const char* conf) {
  if (conf == nullptr) return Fail(absl::InvalidArgumentError("umpool_configure: null text"));
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.any_pool.load()) {
    return Fail(absl::FailedPreconditionError(
        "umpool_configure: a pool already exists; configure before the first allocation"));
  }
  absl::StatusOr<Conf> parsed = ParseConf(conf);
  if (!parsed.ok()) {
    tls_last_error = std::string(parsed.status().message());
    return CodeOf(parsed.status());
  }
  s.conf = *std::move(parsed);
  s.conf_status = absl::OkStatus();
  s.configured = true;
  return UMPOOL_OK;
}

int umpool_get_stats(int device, umpool_stats* out) {
  if (out == nullptr) return Fail(absl::InvalidArgumentError("umpool_get_stats: null output"));
  if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
  std::memset(out, 0, sizeof(*out));
  Pool* p = S().pools[device].load(std::memory_order_acquire);
  if (p == nullptr) return UMPOOL_OK;
  const umpool::Stats s = p->GetStats();
  out->allocated_bytes_current = s.allocated_bytes.current;
  out->allocated_bytes_peak = s.allocated_bytes.peak;
  out->reserved_bytes_current = s.reserved_bytes.current;
  out->reserved_bytes_peak = s.reserved_bytes.peak;
  out->large_reserved_bytes_current = s.large_reserved_bytes.current;
  out->large_reserved_bytes_peak = s.large_reserved_bytes.peak;
  out->allocations = s.allocations;
  out->frees = s.frees;
  out->cache_hits = s.cache_hits;
  out->backend_allocations = s.backend_allocations;
  out->backend_frees = s.backend_frees;
  out->advise_calls = s.advise_calls;
  out->prefetch_calls = s.prefetch_calls;
  out->alloc_retries = s.alloc_retries;
  out->ooms = s.ooms;
  out->cross_stream_reuses = s.cross_stream_reuses;
  out->events_recorded = s.events_recorded;
  out->trims = s.trims;
  out->slabs = s.slabs;
  out->large_segments = s.large_segments;
  out->capacity_bytes = s.capacity_bytes;
  out->discard_calls = s.discard_calls;
  out->discard_bytes = s.discard_bytes;
  return UMPOOL_OK;
}

int umpool_reset_peak_stats(int device) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
  if (Pool* p = S().pools[device].load(std::memory_order_acquire)) p->ResetPeaks();
  return UMPOOL_OK;
}

int umpool_stats_text(int device, char* buf, size_t len) {
  if (!CheckDevice(device).ok()) return -1;
  Pool* p = S().pools[device].load(std::memory_order_acquire);
  const std::string text =
      p == nullptr ? absl::StrCat("umpool: no pool on device ", device, " yet\n")
                   : absl::StrCat(p->Describe(), "\n", p->GetStats().ToString());
  if (buf != nullptr && len > 0) {
    const std::size_t n = std::min(len - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(text.size() + 1);
}

int umpool_snapshot_json(int device, char* buf, size_t len) {
  if (!CheckDevice(device).ok()) return -1;
  Pool* p = S().pools[device].load(std::memory_order_acquire);
  const std::string text =
      p == nullptr ? absl::StrCat("{\"umpool_snapshot\":1,\"device\":", device, ",\"spans\":[]}\n")
                   : p->SnapshotJson();
  if (buf != nullptr && len > 0) {
    const std::size_t n = std::min(len - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(text.size() + 1);
}

int umpool_trim(int device) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return Fail(st);
  Pool* p = S().pools[device].load(std::memory_order_acquire);
  if (p == nullptr) return UMPOOL_OK;
  absl::Status st = p->Trim();
  return st.ok() ? UMPOOL_OK : Fail(st);
}

int umpool_prefetch(const void* ptr, size_t bytes, int to_gpu, umpool_stream_t stream) {
  Pool* pool = OwnerOf(ptr, -1);
  if (pool == nullptr) return Fail(NotUmpool("umpool_prefetch", ptr));
  const umpool::Location where = to_gpu ? umpool::Location::kDevice : umpool::Location::kHost;
  absl::Status st = pool->Prefetch(ptr, bytes, where, stream);
  return st.ok() ? UMPOOL_OK : Fail(st);
}

int umpool_prefetch_blocks(const void* const* ptrs, size_t count, int to_gpu,
                           umpool_stream_t stream) {
  if (count == 0) return UMPOOL_OK;
  if (ptrs == nullptr) return Fail(absl::InvalidArgumentError("umpool_prefetch_blocks: null array"));
  Pool* pool = OwnerOf(ptrs[0], -1);
  if (pool == nullptr) return Fail(NotUmpool("umpool_prefetch_blocks", ptrs[0]));
  const umpool::Location where = to_gpu ? umpool::Location::kDevice : umpool::Location::kHost;
  absl::Status st = pool->PrefetchBlocks(ptrs, count, where, stream);
  return st.ok() ? UMPOOL_OK : Fail(st);
}

size_t umpool_block_size(const void* ptr) {
  Pool* pool = OwnerOf(ptr, -1);
  if (pool == nullptr) return 0;
  absl::StatusOr<std::size_t> n = pool->BlockSize(ptr);
  return n.ok() ? *n : 0;
}

const char* umpool_last_error(void) { return tls_last_error.c_str(); }
void umpool_clear_last_error(void) { tls_last_error.clear(); }
const char* umpool_version(void) { return UMPOOL_VERSION_STRING; }

}  // extern "C"
