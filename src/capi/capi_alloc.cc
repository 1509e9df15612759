// The C ABI: allocation, frees, streams and moving blocks.
#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "src/capi/devices.h"
#include "src/capi/graph_pools.h"
#include "src/capi/last_error.h"
#include "umpool/umpool.h"

namespace umpool::capi {
namespace {

absl::Status NotUmpool(const char* fn, const void* ptr) {
  return absl::InvalidArgumentError(absl::StrCat(
      fn, ": pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
      " was not allocated by umpool"));
}

// The pool that holds `ptr`: a device pool (trying `hint` first) or a
// private graph pool.
Pool* OwnerOf(const void* ptr, int hint) {
  if (Pool* p = DevicePoolHolding(ptr, hint)) return p;
  return GraphPoolHolding(ptr);
}

int Alloc(std::size_t size, int device, umpool_stream_t stream, int role, void** out) {
  *out = nullptr;
  if (size == 0) return UMPOOL_OK;
  if (role < 0 || role >= kNumRoles) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("invalid role ", role)));
  }
  absl::StatusOr<Pool*> pool = PoolFor(device);
  if (!pool.ok()) return Fail(pool.status());
  if (ABSL_PREDICT_FALSE(Routing(device))) {
    if (Pool* gp = RoutedPool(device, stream, &role)) pool = gp;
  }
  absl::StatusOr<void*> p = (*pool)->Allocate(size, stream, static_cast<Role>(role));
  if (!p.ok()) return Fail(p.status());
  *out = *p;
  return UMPOOL_OK;
}

void* Malloc(std::size_t size, int device, umpool_stream_t stream, int role) {
  return GuardValue<void*>("umpool_malloc", nullptr, [&]() -> void* {
    void* p = nullptr;
    (void)Alloc(size, device, stream, role, &p);
    return p;
  });
}

int Free(void* ptr, std::optional<Stream> stream, int hint, const char* fn) {
  if (ptr == nullptr) return UMPOOL_OK;
  // The allocation-time device is only a hint: the pointer says which pool
  // owns it, even when that is another one.
  Pool* pool = DevicePoolHolding(ptr, hint);
  const bool private_pool = pool == nullptr;
  if (private_pool) pool = GraphPoolHolding(ptr);
  if (pool == nullptr) return Fail(NotUmpool(fn, ptr));
  absl::Status st = stream.has_value() ? pool->Deallocate(ptr, *stream) : pool->Deallocate(ptr);
  if (!st.ok()) return Fail(st);
  // Only a private pool can be released and waiting for its last free.
  if (private_pool) MaybeReturnReleased(pool);
  return UMPOOL_OK;
}

}  // namespace
}  // namespace umpool::capi

using namespace umpool::capi;  // NOLINT: the exports below are thin

extern "C" {

int umpool_alloc(size_t size, int device, umpool_stream_t stream, int role, void** out) {
  return Guard("umpool_alloc", [&] {
    if (out == nullptr) return Fail(absl::InvalidArgumentError("umpool_alloc: null output"));
    return Alloc(size, device, stream, role, out);
  });
}

void* umpool_malloc(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, 0);
}
void* umpool_pool_malloc(size_t size, int device, umpool_stream_t stream) {
  return Malloc(size, device, stream, 0);
}
#define UMPOOL_DEFINE_ROLE_MALLOC_(e, name, value)                                      \
  void* umpool_malloc_##name(size_t size, int device, umpool_stream_t stream) {         \
    return Malloc(size, device, stream, value);                                         \
  }                                                                                     \
  void* umpool_pool_malloc_##name(size_t size, int device, umpool_stream_t stream) {    \
    return Malloc(size, device, stream, value);                                         \
  }
UMPOOL_ROLES(UMPOOL_DEFINE_ROLE_MALLOC_)
#undef UMPOOL_DEFINE_ROLE_MALLOC_

void umpool_free(void* ptr, size_t /*size*/, int device, umpool_stream_t stream) {
  (void)Guard("umpool_free", [&] { return Free(ptr, stream, device, "umpool_free"); });
}

int umpool_deallocate(void* ptr, umpool_stream_t stream) {
  return Guard("umpool_deallocate", [&] { return Free(ptr, stream, -1, "umpool_deallocate"); });
}

int umpool_free_block(void* ptr) {
  return Guard("umpool_free_block", [&] { return Free(ptr, std::nullopt, -1, "umpool_free_block"); });
}

void umpool_record_stream(void* ptr, umpool_stream_t stream) {
  (void)Guard("umpool_record_stream", [&] {
    umpool::Pool* pool = OwnerOf(ptr, -1);
    if (pool == nullptr) return Fail(NotUmpool("umpool_record_stream", ptr));
    absl::Status st = pool->RecordStream(ptr, stream);
    return Done(st);
  });
}

int umpool_release_stream(int device, umpool_stream_t stream) {
  return Guard("umpool_release_stream", [&] {
    return Done(ForPoolsOf(device, OnError::kContinue,
                           [&](umpool::Pool* p) { return p->ReleaseStream(stream); }));
  });
}

int umpool_prefetch(const void* ptr, size_t bytes, int to_gpu, umpool_stream_t stream) {
  return Guard("umpool_prefetch", [&] {
    umpool::Pool* pool = OwnerOf(ptr, -1);
    if (pool == nullptr) return Fail(NotUmpool("umpool_prefetch", ptr));
    const umpool::Location where = to_gpu ? umpool::Location::kDevice : umpool::Location::kHost;
    absl::Status st = pool->Prefetch(ptr, bytes, where, stream);
    return Done(st);
  });
}

int umpool_prefetch_blocks(const void* const* ptrs, size_t count, int to_gpu,
                           umpool_stream_t stream) {
  return Guard("umpool_prefetch_blocks", [&] {
    if (count == 0) return static_cast<int>(UMPOOL_OK);
    if (ptrs == nullptr) {
      return Fail(absl::InvalidArgumentError("umpool_prefetch_blocks: null array"));
    }
    umpool::Pool* pool = OwnerOf(ptrs[0], -1);
    if (pool == nullptr) return Fail(NotUmpool("umpool_prefetch_blocks", ptrs[0]));
    const umpool::Location where = to_gpu ? umpool::Location::kDevice : umpool::Location::kHost;
    absl::Status st = pool->PrefetchBlocks(ptrs, count, where, stream);
    return Done(st);
  });
}

size_t umpool_block_size(const void* ptr) {
  return GuardValue<size_t>("umpool_block_size", 0, [&]() -> size_t {
    umpool::Pool* pool = OwnerOf(ptr, -1);
    if (pool == nullptr) return 0;
    absl::StatusOr<std::size_t> n = pool->BlockSize(ptr);
    return n.ok() ? *n : 0;
  });
}

int umpool_block_containing(const void* ptr, void** base, size_t* bytes) {
  return Guard("umpool_block_containing", [&] {
    if (base == nullptr || bytes == nullptr) {
      return Fail(absl::InvalidArgumentError("umpool_block_containing: null output"));
    }
    umpool::Pool* pool = OwnerOf(ptr, -1);
    if (pool == nullptr) return Fail(NotUmpool("umpool_block_containing", ptr));
    absl::StatusOr<umpool::BlockInfo> b = pool->BlockContaining(ptr);
    if (!b.ok()) return Fail(b.status());
    *base = b->ptr;
    *bytes = b->bytes;
    return static_cast<int>(UMPOOL_OK);
  });
}

int umpool_block_location(const void* ptr, int* on_gpu) {
  return Guard("umpool_block_location", [&] {
    if (on_gpu == nullptr) return Fail(absl::InvalidArgumentError("umpool_block_location: null output"));
    umpool::Pool* pool = OwnerOf(ptr, -1);
    if (pool == nullptr) return Fail(NotUmpool("umpool_block_location", ptr));
    absl::StatusOr<umpool::Location> where = pool->BlockLocation(ptr);
    if (!where.ok()) return Fail(where.status());
    *on_gpu = *where == umpool::Location::kDevice ? 1 : 0;
    return static_cast<int>(UMPOOL_OK);
  });
}

}  // extern "C"
