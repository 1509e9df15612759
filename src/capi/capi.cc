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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>
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

  // CUDA graph private pools (umpool_begin_allocate_to_pool).
  struct GraphPool {
    int device = 0;
    std::unique_ptr<Pool> pool;  // never destroyed: OwnerOf may return it at any time
    std::function<bool(umpool_stream_t)> filter;
    int active = 0;        // begins without their end
    bool released = false;
    std::vector<std::vector<Pool*>> told;  // per active begin: pools told BeginCapture
  };
  std::mutex graph_mu;
  std::map<std::tuple<int, std::uint64_t, std::uint64_t>, std::unique_ptr<GraphPool>> graph_pools;
  std::array<std::atomic<int>, kMaxDevices> routing{};  // active begins per device
  std::atomic<int> graph_pool_count{0};
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
  if (s.graph_pool_count.load(std::memory_order_acquire) > 0) {
    std::lock_guard<std::mutex> lock(s.graph_mu);
    for (auto& [key, gp] : s.graph_pools) {
      if (gp->pool->Holds(ptr)) return gp->pool.get();
    }
  }
  return nullptr;
}

// The private pool an allocation on (device, stream) goes to while a graph
// capture routes allocations, or nullptr.
Pool* GraphPoolFor(int device, umpool_stream_t stream) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.graph_mu);
  for (auto& [key, gp] : s.graph_pools) {
    if (gp->device == device && gp->active > 0 && gp->filter && gp->filter(stream)) {
      return gp->pool.get();
    }
  }
  return nullptr;
}

absl::Status BeginToPool(int device, std::uint64_t hi, std::uint64_t lo,
                         std::function<bool(umpool_stream_t)> filter) {
  if (!filter) return absl::InvalidArgumentError("begin_allocate_to_pool: no stream filter");
  absl::StatusOr<Pool*> main = PoolFor(device);
  if (!main.ok()) return main.status();
  State& s = S();
  std::lock_guard<std::mutex> lock(s.graph_mu);
  std::unique_ptr<State::GraphPool>& gp = s.graph_pools[{device, hi, lo}];
  if (gp == nullptr) {
    PoolOptions options = (*main)->options();
    options.trace_path.clear();
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    if (!pool.ok()) {
      s.graph_pools.erase({device, hi, lo});
      return pool.status();
    }
    gp = std::make_unique<State::GraphPool>();
    gp->device = device;
    gp->pool = *std::move(pool);
    s.graph_pool_count.fetch_add(1, std::memory_order_acq_rel);
  }
  if (gp->released) {
    return absl::FailedPreconditionError("begin_allocate_to_pool: that pool was released");
  }
  gp->filter = std::move(filter);
  ++gp->active;
  // Every pool stops recording and querying events: in the default
  // (global) capture mode an event query from any thread invalidates it.
  std::vector<Pool*> told;
  for (auto& slot : s.pools) {
    if (Pool* p = slot.load(std::memory_order_acquire)) told.push_back(p);
  }
  for (auto& [key, other] : s.graph_pools) told.push_back(other->pool.get());
  for (Pool* p : told) p->BeginCapture();
  gp->told.push_back(std::move(told));
  s.routing[device].fetch_add(1, std::memory_order_acq_rel);
  return absl::OkStatus();
}

absl::Status EndToPool(int device, std::uint64_t hi, std::uint64_t lo) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  std::vector<Pool*> told;
  {
    std::lock_guard<std::mutex> lock(s.graph_mu);
    auto it = s.graph_pools.find({device, hi, lo});
    if (it == s.graph_pools.end() || it->second->active == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "end_allocate_to_pool: no active begin for pool (", hi, ", ", lo, ") on device ", device));
    }
    State::GraphPool& gp = *it->second;
    --gp.active;
    told = std::move(gp.told.back());
    gp.told.pop_back();
    s.routing[device].fetch_sub(1, std::memory_order_acq_rel);
  }
  absl::Status status;
  for (Pool* p : told) status.Update(p->EndCapture());
  return status;
}

absl::Status ReleasePool(int device, std::uint64_t hi, std::uint64_t lo) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  Pool* pool = nullptr;
  {
    std::lock_guard<std::mutex> lock(s.graph_mu);
    auto it = s.graph_pools.find({device, hi, lo});
    if (it == s.graph_pools.end()) return absl::OkStatus();  // never used: nothing to do
    it->second->released = true;
    pool = it->second->pool.get();
  }
  // The graph is gone: what its tensors no longer use goes back now, the
  // rest when they are freed (umpool_free).
  if (pool->GetStats().allocated_bytes.current == 0) return pool->Trim();
  return absl::OkStatus();
}

// After a free into a released private pool: return its memory once empty.
void MaybeReturnReleased(Pool* pool) {
  State& s = S();
  if (s.graph_pool_count.load(std::memory_order_acquire) == 0) return;
  bool released = false;
  {
    std::lock_guard<std::mutex> lock(s.graph_mu);
    for (auto& [key, gp] : s.graph_pools) {
      if (gp->pool.get() == pool) released = gp->released;
    }
  }
  if (released && pool->GetStats().allocated_bytes.current == 0) (void)pool->Trim();
}

// Copies `text` into buf (NUL-terminated, truncated to len); returns the
// length needed. The contract of umpool_stats_text and umpool_snapshot_json.
int CopyOut(const std::string& text, char* buf, std::size_t len) {
  if (buf != nullptr && len > 0) {
    const std::size_t n = std::min(len - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(text.size() + 1);
}

absl::Status NotUmpool(const char* fn, const void* ptr) {
  return absl::InvalidArgumentError(absl::StrCat(
      fn, ": pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
      " was not allocated by umpool"));
}

void* Malloc(std::size_t size, int device, umpool_stream_t stream, Role role, bool may_throw) {
  if (size == 0) return nullptr;
  absl::StatusOr<Pool*> pool = PoolFor(device);
  if (pool.ok() && CheckDevice(device).ok() &&
      ABSL_PREDICT_FALSE(S().routing[device].load(std::memory_order_acquire) > 0)) {
    if (Pool* gp = GraphPoolFor(device, stream)) pool = gp;
  }
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
  if (absl::Status st = pool->Deallocate(ptr, stream); !st.ok()) {
    Fail(st);
    return;
  }
  if (ABSL_PREDICT_FALSE(S().graph_pool_count.load(std::memory_order_relaxed) > 0)) {
    MaybeReturnReleased(pool);
  }
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
  return CopyOut(p == nullptr ? absl::StrCat("umpool: no pool on device ", device, " yet\n")
                               : absl::StrCat(p->Describe(), "\n", p->GetStats().ToString()),
                 buf, len);
}

int umpool_snapshot_json(int device, char* buf, size_t len) {
  if (!CheckDevice(device).ok()) return -1;
  Pool* p = S().pools[device].load(std::memory_order_acquire);
  return CopyOut(p == nullptr
                     ? absl::StrCat("{\"umpool_snapshot\":1,\"device\":", device, ",\"spans\":[]}\n")
                     : p->SnapshotJson(),
                 buf, len);
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

int umpool_begin_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo,
                                  umpool_stream_filter filter, void* ctx) {
  if (filter == nullptr) return Fail(absl::InvalidArgumentError("begin_allocate_to_pool: null filter"));
  absl::Status st = BeginToPool(device, id_hi, id_lo,
                                [filter, ctx](umpool_stream_t s) { return filter(ctx, s) != 0; });
  return st.ok() ? UMPOOL_OK : Fail(st);
}

int umpool_end_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo) {
  absl::Status st = EndToPool(device, id_hi, id_lo);
  return st.ok() ? UMPOOL_OK : Fail(st);
}

int umpool_release_pool(int device, uint64_t id_hi, uint64_t id_lo) {
  absl::Status st = ReleasePool(device, id_hi, id_lo);
  return st.ok() ? UMPOOL_OK : Fail(st);
}

int umpool_graph_pool_count(int device) {
  if (!CheckDevice(device).ok()) return -1;
  State& s = S();
  std::lock_guard<std::mutex> lock(s.graph_mu);
  int n = 0;
  for (auto& [key, gp] : s.graph_pools) {
    if (gp->device == device && !(gp->released && gp->pool->GetStats().reserved_bytes.current == 0)) ++n;
  }
  return n;
}

void umpool_torch_begin_allocate_to_pool(int device,
                                         std::pair<unsigned long long, unsigned long long> id,
                                         std::function<bool(umpool_stream_t)> filter) {
  if (absl::Status st = BeginToPool(device, id.first, id.second, std::move(filter)); !st.ok()) {
    Fail(st);
  }
}

void umpool_torch_end_allocate_to_pool(int device,
                                       std::pair<unsigned long long, unsigned long long> id) {
  if (absl::Status st = EndToPool(device, id.first, id.second); !st.ok()) Fail(st);
}

void umpool_torch_release_pool(int device, std::pair<unsigned long long, unsigned long long> id) {
  if (absl::Status st = ReleasePool(device, id.first, id.second); !st.ok()) Fail(st);
}

}  // extern "C"
