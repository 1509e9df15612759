// Pools: CUDA graph private pools, MemPools (private, role, other
// allocators') and checkpoints, under umpool's allocator.
#include "pools.h"

#include <c10/util/Exception.h>

#include "history.h"

namespace umpool_torch {

std::atomic<long long> checkpoint_restores{0};

namespace {

int CallFilter(void* ctx, umpool_stream_t stream) {
  return (*static_cast<std::function<bool(cudaStream_t)>*>(ctx))(stream) ? 1 : 0;
}

void Check(int code, const char* what) {
  UMPOOL_TORCH_CHECK(code == UMPOOL_OK, "umpool: ", what, ": ", umpool_last_error());
}

// A private pool's live blocks at one moment (getCheckpointState).
struct Checkpoint final : cca::AllocatorState {
  c10::DeviceIndex device = 0;
  c10::MempoolId_t id;
  std::vector<umpool_block> blocks;
};

void AddBlock(void* ctx, const umpool_block* b) {
  static_cast<std::vector<umpool_block>*>(ctx)->push_back(*b);
}

}  // namespace

Pools& Pools::Get() {
  static Pools* p = new Pools;  // never destroyed
  return *p;
}

Pools::Entry& Pools::EntryFor(c10::DeviceIndex device, c10::MempoolId_t id) {
  return entries_[{device, id}];
}

bool Pools::TryRouted(c10::DeviceIndex device, cudaStream_t stream, size_t n, void** out) {
  std::shared_ptr<cca::CUDAAllocator> foreign;
  int role = -1;
  c10::MempoolId_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, e] : entries_) {
      if (key.first != device || e.kind == Kind::kPrivate || e.filters.empty()) continue;
      if (!e.filters.back()(stream)) continue;
      if (e.kind == Kind::kRole) {
        role = e.role;
      } else {
        foreign = e.allocator;
      }
      id = key.second;
      break;
    }
  }
  if (foreign != nullptr) {
    *out = foreign->raw_alloc_with_stream(n, stream);
    std::lock_guard<std::mutex> lock(mu_);
    foreign_blocks_[*out] = foreign;
    foreign_.store(1, std::memory_order_release);
    return true;
  }
  if (role < 0) return false;
  const int code = umpool_alloc(n, device, stream, role, out);
  if (code != UMPOOL_OK) return false;  // the caller's umpool_alloc reports it
  if (History::Get().active()) History::Get().OnAlloc(device, *out, n, stream, id);
  return true;
}

bool Pools::FreeForeign(void* ptr) {
  if (foreign_.load(std::memory_order_acquire) == 0) return false;
  std::shared_ptr<cca::CUDAAllocator> allocator;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = foreign_blocks_.find(ptr);
    if (it == foreign_blocks_.end()) return false;
    allocator = std::move(it->second);
    foreign_blocks_.erase(it);
  }
  allocator->raw_delete(ptr);
  return true;
}

bool Pools::TryUseOnOom(c10::DeviceIndex device, cudaStream_t stream, size_t n, void** out) {
  if (!any_use_on_oom_.load(std::memory_order_acquire)) return false;
  std::vector<c10::MempoolId_t> candidates;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, e] : entries_) {
      if (key.first == device && e.use_on_oom && e.kind == Kind::kPrivate) {
        candidates.push_back(key.second);
      }
    }
  }
  for (const c10::MempoolId_t& id : candidates) {
    if (umpool_pool_alloc(device, id.first, id.second, n, stream, out) == UMPOOL_OK) return true;
  }
  return false;
}

void Pools::SetRole(c10::DeviceIndex device, c10::MempoolId_t id, int role) {
  UMPOOL_TORCH_CHECK(umpool_role_name(role) != nullptr, "umpool: invalid role ", role);
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = EntryFor(device, id);
  UMPOOL_TORCH_CHECK(e.filters.empty(), "umpool: set the role of a MemPool before using it");
  e.kind = Kind::kRole;
  e.role = role;
}

void Pools::Begin(c10::DeviceIndex device, c10::MempoolId_t id,
                  std::function<bool(cudaStream_t)> filter) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = EntryFor(device, id);
  if (e.kind != Kind::kPrivate) {
    ++e.uses;
    e.filters.push_back(std::move(filter));
    routes_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  auto thunk = std::make_unique<std::function<bool(cudaStream_t)>>(std::move(filter));
  Check(umpool_begin_allocate_to_pool(device, id.first, id.second, &CallFilter, thunk.get()),
        "begin_allocate_to_pool");
  e.thunks.push_back(std::move(thunk));
}

void Pools::End(c10::DeviceIndex device, c10::MempoolId_t id) {
  std::unique_ptr<std::function<bool(cudaStream_t)>> done;  // freed after the C ABI's end
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = EntryFor(device, id);
    if (e.kind != Kind::kPrivate) {
      UMPOOL_TORCH_CHECK(!e.filters.empty(), "umpool: end_allocate_to_pool without a begin");
      e.filters.pop_back();
      routes_.fetch_sub(1, std::memory_order_acq_rel);
      return;
    }
    Check(umpool_end_allocate_to_pool(device, id.first, id.second), "end_allocate_to_pool");
    if (!e.thunks.empty()) {
      done = std::move(e.thunks.back());
      e.thunks.pop_back();
    }
  }
}

void Pools::Release(c10::DeviceIndex device, c10::MempoolId_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = EntryFor(device, id);
  if (e.kind != Kind::kPrivate) {
    e.uses = std::max(0, e.uses - 1);
    return;
  }
  // Called from destructors (CUDAGraph::reset, MemPool): warns, never throws.
  if (umpool_release_pool(device, id.first, id.second) != UMPOOL_OK) {
    TORCH_WARN(Msg("umpool: release_pool: ", umpool_last_error()));
  }
}

int Pools::UseCount(c10::DeviceIndex device, c10::MempoolId_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = EntryFor(device, id);
  if (e.kind != Kind::kPrivate) return e.uses;
  return umpool_pool_use_count(device, id.first, id.second);
}

void Pools::CreateOrIncref(c10::DeviceIndex device, c10::MempoolId_t id,
                           std::shared_ptr<cca::CUDAAllocator> allocator) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = EntryFor(device, id);
  if (allocator != nullptr && allocator.get() != &Allocator()) {
    e.kind = Kind::kForeign;
    e.allocator = std::move(allocator);
  }
  if (e.kind != Kind::kPrivate) {
    ++e.uses;
    return;
  }
  Check(umpool_create_pool(device, id.first, id.second), "create_pool");
}

void Pools::SetUseOnOom(c10::DeviceIndex device, c10::MempoolId_t id, bool use) {
  std::lock_guard<std::mutex> lock(mu_);
  EntryFor(device, id).use_on_oom = use;
  if (use) any_use_on_oom_.store(true, std::memory_order_release);
}

void Pools::EmptyCache(c10::MempoolId_t id) {
  std::vector<c10::DeviceIndex> devices;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, e] : entries_) {
      if (key.second == id && e.kind == Kind::kPrivate) devices.push_back(key.first);
    }
  }
  for (c10::DeviceIndex d : devices) Check(umpool_trim_pool(d, id.first, id.second), "empty_cache");
}

// --- The allocator's hooks ----------------------------------------------------

void UmpoolAllocator::beginAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                                          std::function<bool(cudaStream_t)> filter) {
  Pools::Get().Begin(device, mempool_id, std::move(filter));
}

void UmpoolAllocator::endAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) {
  Pools::Get().End(device, mempool_id);
}

void UmpoolAllocator::releasePool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) {
  Pools::Get().Release(device, mempool_id);
}

int UmpoolAllocator::getPoolUseCount(c10::DeviceIndex device, c10::MempoolId_t mempool_id) {
  return Pools::Get().UseCount(device, mempool_id);
}

void UmpoolAllocator::createOrIncrefPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                                         std::shared_ptr<cca::CUDAAllocator> allocator) {
  Pools::Get().CreateOrIncref(device, mempool_id, std::move(allocator));
}

void UmpoolAllocator::setUseOnOOM(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                                  bool use_on_oom) {
  Pools::Get().SetUseOnOom(device, mempool_id, use_on_oom);
}

void UmpoolAllocator::setNoSplit(c10::DeviceIndex, c10::MempoolId_t) {
  // umpool's pools never hand out part of another block; nothing to change.
}

bool UmpoolAllocator::checkPoolLiveAllocations(
    c10::DeviceIndex device, c10::MempoolId_t mempool_id,
    const std::unordered_set<void*>& expected_live_allocations) {
  std::vector<umpool_block> live;
  Check(umpool_pool_live_blocks(device, mempool_id.first, mempool_id.second, &AddBlock, &live),
        "checkPoolLiveAllocations");
  if (live.size() != expected_live_allocations.size()) return false;
  for (const umpool_block& b : live) {
    if (expected_live_allocations.count(b.ptr) == 0) return false;
  }
  return true;
}

std::shared_ptr<cca::AllocatorState> UmpoolAllocator::getCheckpointState(c10::DeviceIndex device,
                                                                         c10::MempoolId_t id) {
  auto state = std::make_shared<Checkpoint>();
  state->device = device;
  state->id = id;
  Check(umpool_pool_live_blocks(device, id.first, id.second, &AddBlock, &state->blocks),
        "getCheckpointState");
  return state;
}

cca::CheckpointDelta UmpoolAllocator::setCheckpointPoolState(
    c10::DeviceIndex device, std::shared_ptr<cca::AllocatorState> pps) {
  auto* state = dynamic_cast<Checkpoint*>(pps.get());
  UMPOOL_TORCH_CHECK(state != nullptr, "umpool: not a checkpoint of umpool's allocator");
  UMPOOL_TORCH_CHECK(state->device == device, "umpool: a checkpoint of device ", int(state->device),
              " restored on device ", int(device));
  struct Out {
    cca::CheckpointDelta delta;
    c10::DeviceIndex device;
  } out{{}, device};
  auto freed = [](void* ctx, void* p) {
    if (History::Get().active()) History::Get().OnFree(p);
    static_cast<Out*>(ctx)->delta.ptrs_freed.push_back(p);
  };
  auto allocated = [](void* ctx, void* p) {
    auto* o = static_cast<Out*>(ctx);
    o->delta.dataptrs_allocd.emplace_back(p, p, &RawDelete,
                                          c10::Device(c10::DeviceType::CUDA, o->device));
  };
  Check(umpool_pool_restore(device, state->id.first, state->id.second, state->blocks.data(),
                            state->blocks.size(), freed, allocated, &out),
        "setCheckpointPoolState");
  checkpoint_restores.fetch_add(1, std::memory_order_relaxed);
  return std::move(out.delta);
}

}  // namespace umpool_torch
