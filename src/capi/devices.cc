#include "src/capi/devices.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"

namespace umpool::capi {
namespace {

struct State {
  std::mutex mu;
  bool configured = false;   // guarded by mu
  absl::Status conf_status;  // guarded by mu
  Conf conf;                 // guarded by mu; fixed once the first pool exists
  std::array<std::atomic<Pool*>, kMaxDevices> pools{};
  std::array<std::atomic<double>, kMaxDevices> fraction{};
  // Each pool's cap at creation: what a memory fraction of 1.0 means on the
  // host backend (on a GPU it is the device's total memory).
  std::array<std::atomic<std::size_t>, kMaxDevices> base_capacity{};
  std::atomic<bool> any_pool{false};
};

// Never destroyed: PyTorch may free tensors during interpreter shutdown.
State& S() {
  static State* s = [] {
    auto* st = new State;
    for (auto& f : st->fraction) f.store(1.0);
    return st;
  }();
  return *s;
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

}  // namespace

absl::Status CheckDevice(int device) {
  if (!ValidDevice(device)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid device ", device));
  }
  return absl::OkStatus();
}

absl::Status Configure(absl::string_view text) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.any_pool.load()) {
    return absl::FailedPreconditionError(
        "umpool_configure: a pool already exists; configure before the first allocation");
  }
  absl::StatusOr<Conf> parsed = ParseConf(text);
  if (!parsed.ok()) return parsed.status();
  s.conf = *std::move(parsed);
  s.conf_status = absl::OkStatus();
  s.configured = true;
  return absl::OkStatus();
}

absl::Status EnsureConfigured() {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  EnsureConfiguredLocked(s);
  return s.conf_status;
}

absl::StatusOr<Conf> CurrentConf() {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  EnsureConfiguredLocked(s);
  if (!s.conf_status.ok()) return s.conf_status;
  return s.conf;
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
  if (options.backend == BackendKind::kHost && device != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid device ", device, ": the host backend has only device 0"));
  }
  options.device = device;
  // One trace file per device: "%d" in the path is the device, else devices
  // other than 0 get ".dev<N>" appended.
  if (!options.trace_path.empty()) {
    if (const std::size_t at = options.trace_path.find("%d"); at != std::string::npos) {
      options.trace_path.replace(at, 2, std::to_string(device));
    } else if (device != 0) {
      options.trace_path += ".dev" + std::to_string(device);
    }
  }
  // The device's cap, shared with its CUDA graph private pools (graph_pools.cc
  // copies these options): together they never pass it.
  auto shared = std::make_shared<SharedCapacity>(SIZE_MAX);
  options.shared_capacity = shared;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  if (!pool.ok()) return pool.status();
  shared->set_cap(static_cast<std::size_t>((*pool)->GetStats().capacity_bytes));
  Pool* raw = pool->release();  // lives until the process ends
  s.base_capacity[device].store(static_cast<std::size_t>(raw->GetStats().capacity_bytes),
                                std::memory_order_relaxed);
  s.pools[device].store(raw, std::memory_order_release);
  s.any_pool.store(true, std::memory_order_release);
  return raw;
}

Pool* ExistingPool(int device) {
  if (!ValidDevice(device)) return nullptr;
  return S().pools[device].load(std::memory_order_acquire);
}

Pool* DevicePoolHolding(const void* ptr, int hint) {
  State& s = S();
  if (ValidDevice(hint)) {
    Pool* p = s.pools[hint].load(std::memory_order_acquire);
    if (p != nullptr && p->Holds(ptr)) return p;
  }
  for (auto& slot : s.pools) {
    Pool* p = slot.load(std::memory_order_acquire);
    if (p != nullptr && p->Holds(ptr)) return p;
  }
  return nullptr;
}

absl::Status SetMemoryFraction(double fraction, int device) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory fraction ", fraction, " is not in (0, 1]"));
  }
  absl::StatusOr<Pool*> pool = PoolFor(device);
  if (!pool.ok()) return pool.status();
  absl::StatusOr<std::size_t> total = (*pool)->options().backend == BackendKind::kHost
                                           ? S().base_capacity[device].load()
                                           : (*pool)->DeviceTotalBytes();
  if (!total.ok()) return total.status();
  const std::size_t cap = std::min((*pool)->MaxCapacity(),
                                   static_cast<std::size_t>(fraction * static_cast<double>(*total)));
  if (absl::Status st = (*pool)->SetCapacity(cap); !st.ok()) return st;
  if ((*pool)->options().shared_capacity != nullptr) (*pool)->options().shared_capacity->set_cap(cap);
  S().fraction[device].store(fraction, std::memory_order_relaxed);
  return absl::OkStatus();
}

double MemoryFraction(int device) {
  if (!ValidDevice(device)) return 1.0;
  return S().fraction[device].load(std::memory_order_relaxed);
}

}  // namespace umpool::capi
