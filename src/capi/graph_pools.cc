#include "src/capi/graph_pools.h"

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "src/capi/devices.h"

namespace umpool::capi {
namespace {

struct GraphPoolState {
  int device = 0;
  std::unique_ptr<Pool> pool;  // never destroyed: a free may look it up at any time
  // Per begin without its end, in order: its stream filter, and the pools it
  // told BeginCapture. An allocation routes here if any filter picks it.
  std::vector<std::function<bool(Stream)>> filters;
  int use_count = 0;  // begins and increfs not yet released (PyTorch's use count)
  int role = -1;      // SetPoolRole's: every allocation's role (-1: the caller's)
  bool released = false;  // use count fell to 0: its memory goes back once free
  std::vector<std::vector<Pool*>> told;
};

struct State {
  std::mutex mu;
  std::map<std::tuple<int, std::uint64_t, std::uint64_t>, std::unique_ptr<GraphPoolState>> pools;
  std::array<std::atomic<int>, kMaxDevices> routing{};  // active begins per device
  std::atomic<int> count{0};
};

State& S() {
  static State* s = new State;  // never destroyed, like the device pools
  return *s;
}

// Options of a private pool: the device pool's placement, large blocks only.
PoolOptions PrivateOptions(const PoolOptions& main) {
  PoolOptions o = main;
  o.trace_path.clear();
  o.thread_cache = false;
  o.release_on_oom = false;
  o.capacity_bytes = 0;
  for (RolePolicy& p : o.roles) {
    p.slab_max_bytes = 0;
    p.discard_on_free = false;
  }
  return o;
}

// Caller holds S().mu.
absl::StatusOr<GraphPoolState*> GetOrCreateLocked(int device, PoolId id) {
  State& s = S();
  std::unique_ptr<GraphPoolState>& gp = s.pools[{device, id.hi, id.lo}];
  if (gp != nullptr) return gp.get();
  absl::StatusOr<Pool*> main = PoolFor(device);
  absl::StatusOr<std::unique_ptr<Pool>> pool =
      main.ok() ? Pool::Create(PrivateOptions((*main)->options()))
                : absl::StatusOr<std::unique_ptr<Pool>>(main.status());
  if (!pool.ok()) {
    s.pools.erase({device, id.hi, id.lo});
    return pool.status();
  }
  gp = std::make_unique<GraphPoolState>();
  gp->device = device;
  gp->pool = *std::move(pool);
  s.count.fetch_add(1, std::memory_order_acq_rel);
  return gp.get();
}

}  // namespace

absl::Status BeginToPool(int device, PoolId id, std::function<bool(Stream)> filter) {
  if (!filter) return absl::InvalidArgumentError("begin_allocate_to_pool: no stream filter");
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  absl::StatusOr<GraphPoolState*> gp = GetOrCreateLocked(device, id);
  if (!gp.ok()) return gp.status();
  (*gp)->filters.push_back(std::move(filter));
  ++(*gp)->use_count;
  (*gp)->released = false;
  // Every pool stops recording and querying events: in the default (global)
  // capture mode an event query from any thread invalidates the capture.
  std::vector<Pool*> told;
  for (int d = 0; d < kMaxDevices; ++d) {
    if (Pool* p = ExistingPool(d)) told.push_back(p);
  }
  for (auto& [key, other] : s.pools) told.push_back(other->pool.get());
  for (Pool* p : told) p->BeginCapture();
  (*gp)->told.push_back(std::move(told));
  s.routing[device].fetch_add(1, std::memory_order_acq_rel);
  return absl::OkStatus();
}

absl::Status EndToPool(int device, PoolId id) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  std::vector<Pool*> told;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.pools.find({device, id.hi, id.lo});
    if (it == s.pools.end() || it->second->filters.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "end_allocate_to_pool: no active begin for pool (", id.hi, ", ", id.lo, ") on device ",
          device));
    }
    GraphPoolState& gp = *it->second;
    gp.filters.pop_back();
    told = std::move(gp.told.back());
    gp.told.pop_back();
    s.routing[device].fetch_sub(1, std::memory_order_acq_rel);
  }
  absl::Status status;
  for (Pool* p : told) status.Update(p->EndCapture());
  return status;
}

absl::Status ReleasePool(int device, PoolId id) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  Pool* pool = nullptr;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.pools.find({device, id.hi, id.lo});
    if (it == s.pools.end()) return absl::OkStatus();  // never used: nothing to do
    // PyTorch releases a pool once per use (a graph, a use_mem_pool block, a
    // MemPool object); it is done with it when the count reaches 0.
    if (--it->second->use_count > 0) return absl::OkStatus();
    it->second->use_count = 0;
    it->second->released = true;
    pool = it->second->pool.get();
  }
  // What its tensors no longer use goes back now, the rest when they are
  // freed (MaybeReturnReleased).
  if (pool->GetStats().allocated_bytes.current == 0) return pool->Trim();
  return absl::OkStatus();
}

absl::StatusOr<Pool*> GraphPool(int device, PoolId id, bool incref) {
  if (absl::Status st = CheckDevice(device); !st.ok()) return st;
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  absl::StatusOr<GraphPoolState*> gp = GetOrCreateLocked(device, id);
  if (!gp.ok()) return gp.status();
  if (incref) {
    ++(*gp)->use_count;
    (*gp)->released = false;  // in use again
  }
  return (*gp)->pool.get();
}

int UseCount(int device, PoolId id) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.pools.find({device, id.hi, id.lo});
  return it == s.pools.end() ? 0 : it->second->use_count;
}

bool Routing(int device) {
  return ValidDevice(device) && S().routing[device].load(std::memory_order_acquire) > 0;
}

Pool* RoutedPool(int device, Stream stream, int* role) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& [key, gp] : s.pools) {
    if (gp->device != device) continue;
    for (const auto& filter : gp->filters) {
      if (!filter(stream)) continue;
      if (gp->role >= 0) *role = gp->role;
      return gp->pool.get();
    }
  }
  return nullptr;
}

absl::Status SetPoolRole(int device, PoolId id, int role) {
  if (role < -1 || role >= kNumRoles) {
    return absl::InvalidArgumentError(absl::StrCat("set_pool_role: invalid role ", role));
  }
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  absl::StatusOr<GraphPoolState*> gp = GetOrCreateLocked(device, id);
  if (!gp.ok()) return gp.status();
  (*gp)->role = role;
  return absl::OkStatus();
}

int PoolRole(int device, PoolId id) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.pools.find({device, id.hi, id.lo});
  return it == s.pools.end() ? -1 : it->second->role;
}

Pool* GraphPoolHolding(const void* ptr) {
  State& s = S();
  if (s.count.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& [key, gp] : s.pools) {
    if (gp->pool->Holds(ptr)) return gp->pool.get();
  }
  return nullptr;
}

void MaybeReturnReleased(Pool* pool) {
  State& s = S();
  if (s.count.load(std::memory_order_acquire) == 0) return;
  bool released = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [key, gp] : s.pools) {
      if (gp->pool.get() == pool) released = gp->released;
    }
  }
  if (released && pool->GetStats().allocated_bytes.current == 0) (void)pool->Trim();
}

int GraphPoolCount(int device) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  int n = 0;
  for (auto& [key, gp] : s.pools) {
    if (gp->device == device &&
        !(gp->released && gp->pool->GetStats().reserved_bytes.current == 0)) {
      ++n;
    }
  }
  return n;
}

std::vector<std::pair<PoolId, Pool*>> GraphPoolsOf(int device) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<std::pair<PoolId, Pool*>> out;
  for (auto& [key, gp] : s.pools) {
    if (gp->device == device) {
      out.emplace_back(PoolId{std::get<1>(key), std::get<2>(key)}, gp->pool.get());
    }
  }
  return out;
}

Pool* FindGraphPool(int device, PoolId id) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.pools.find({device, id.hi, id.lo});
  return it == s.pools.end() ? nullptr : it->second->pool.get();
}

std::vector<Pool*> PoolsOf(int device) {
  std::vector<Pool*> out;
  if (Pool* p = ExistingPool(device)) out.push_back(p);
  for (auto& [id, p] : GraphPoolsOf(device)) out.push_back(p);
  return out;
}

}  // namespace umpool::capi
