// The C ABI: CUDA graph private pools and their checkpoints.
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/capi/devices.h"
#include "src/capi/graph_pools.h"
#include "src/capi/last_error.h"
#include "umpool/umpool.h"

using namespace umpool::capi;  // NOLINT: the exports below are thin

extern "C" {

int umpool_begin_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo,
                                  umpool_stream_filter filter, void* ctx) {
  return Guard("umpool_begin_allocate_to_pool", [&] {
    if (filter == nullptr) {
      return Fail(absl::InvalidArgumentError("begin_allocate_to_pool: null filter"));
    }
    return Done(BeginToPool(device, PoolId{id_hi, id_lo},
                            [filter, ctx](umpool::Stream s) { return filter(ctx, s) != 0; }));
  });
}

int umpool_end_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo) {
  return Guard("umpool_end_allocate_to_pool",
               [&] { return Done(EndToPool(device, PoolId{id_hi, id_lo})); });
}

int umpool_release_pool(int device, uint64_t id_hi, uint64_t id_lo) {
  return Guard("umpool_release_pool",
               [&] { return Done(ReleasePool(device, PoolId{id_hi, id_lo})); });
}

int umpool_graph_pool_count(int device) {
  return GuardValue<int>("umpool_graph_pool_count", -1, [&] {
    return ValidDevice(device) ? GraphPoolCount(device) : -1;
  });
}

int umpool_create_pool(int device, uint64_t id_hi, uint64_t id_lo) {
  return Guard("umpool_create_pool", [&] {
    return Done(GraphPool(device, PoolId{id_hi, id_lo}, /*incref=*/true).status());
  });
}

int umpool_pool_use_count(int device, uint64_t id_hi, uint64_t id_lo) {
  return GuardValue<int>("umpool_pool_use_count", 0,
                         [&] { return UseCount(device, PoolId{id_hi, id_lo}); });
}

int umpool_trim_pool(int device, uint64_t id_hi, uint64_t id_lo) {
  return Guard("umpool_trim_pool", [&] {
    umpool::Pool* p = FindGraphPool(device, PoolId{id_hi, id_lo});
    if (p == nullptr) return static_cast<int>(UMPOOL_OK);  // no such pool: nothing to return
    return Done(p->Trim());
  });
}

int umpool_pool_alloc(int device, uint64_t id_hi, uint64_t id_lo, size_t size,
                      umpool_stream_t stream, void** out) {
  return Guard("umpool_pool_alloc", [&] {
    if (out == nullptr) return Fail(absl::InvalidArgumentError("umpool_pool_alloc: null output"));
    *out = nullptr;
    if (size == 0) return static_cast<int>(UMPOOL_OK);
    absl::StatusOr<umpool::Pool*> pool = GraphPool(device, PoolId{id_hi, id_lo}, false);
    if (!pool.ok()) return Fail(pool.status());
    const int role = PoolRole(device, PoolId{id_hi, id_lo});
    absl::StatusOr<void*> p =
        (*pool)->Allocate(size, stream, static_cast<umpool::Role>(role < 0 ? 0 : role));
    if (!p.ok()) return Fail(p.status());
    *out = *p;
    return static_cast<int>(UMPOOL_OK);
  });
}

int umpool_set_pool_role(int device, uint64_t id_hi, uint64_t id_lo, int role) {
  return Guard("umpool_set_pool_role",
               [&] { return Done(SetPoolRole(device, PoolId{id_hi, id_lo}, role)); });
}

int umpool_pool_live_blocks(int device, uint64_t id_hi, uint64_t id_lo,
                            umpool_block_visitor visit, void* ctx) {
  return Guard("umpool_pool_live_blocks", [&] {
    if (visit == nullptr) return Fail(absl::InvalidArgumentError("null visitor"));
    absl::StatusOr<umpool::Pool*> pool = GraphPool(device, PoolId{id_hi, id_lo}, false);
    if (!pool.ok()) return Fail(pool.status());
    for (const umpool::BlockInfo& b : (*pool)->LiveBlocks()) {
      const umpool_block c{b.ptr, b.bytes, b.requested, b.stream, static_cast<int>(b.role)};
      visit(ctx, &c);
    }
    return static_cast<int>(UMPOOL_OK);
  });
}

int umpool_pool_restore(int device, uint64_t id_hi, uint64_t id_lo, const umpool_block* blocks,
                        size_t count, umpool_ptr_visitor freed, umpool_ptr_visitor allocated,
                        void* ctx) {
  return Guard("umpool_pool_restore", [&] {
    if (blocks == nullptr && count > 0) return Fail(absl::InvalidArgumentError("null blocks"));
    absl::StatusOr<umpool::Pool*> pool = GraphPool(device, PoolId{id_hi, id_lo}, false);
    if (!pool.ok()) return Fail(pool.status());
    std::vector<umpool::BlockInfo> want;
    for (std::size_t i = 0; i < count; ++i) {
      const umpool_block& b = blocks[i];
      if (b.role < 0 || b.role >= umpool::kNumRoles) {
        return Fail(absl::InvalidArgumentError(absl::StrCat("block ", i, ": invalid role")));
      }
      want.push_back(umpool::BlockInfo{b.ptr, b.bytes, b.requested, b.stream,
                                       static_cast<umpool::Role>(b.role)});
    }
    std::vector<void*> f, a;
    absl::Status st = (*pool)->RestoreLiveBlocks(want, &f, &a);
    if (freed != nullptr) for (void* p : f) freed(ctx, p);
    if (allocated != nullptr) for (void* p : a) allocated(ctx, p);
    return Done(st);
  });
}

}  // extern "C"
