// umpool/umpool_torch.h: entry points for PyTorch's CUDAPluggableAllocator,
// used where umpool's own torch allocator cannot be compiled (umpool.torch
// falls back to them with a warning).
//
// These are C++ functions, not part of the C ABI: PyTorch calls them through
// function pointers it looks up by their (mangled) names, and they may throw.
// umpool::torch_hooks::Malloc throws std::runtime_error carrying the error
// text when it cannot allocate (PyTorch 2.11 does not check a pluggable
// allocator's NULL, but turns the exception into a Python RuntimeError); the
// pool hooks take PyTorch's own parameter types (c10's MempoolId_t is a pair
// of unsigned long long). C callers use umpool/umpool.h, which never throws.
#ifndef UMPOOL_UMPOOL_TORCH_H_
#define UMPOOL_UMPOOL_TORCH_H_

#include <cstddef>
#include <functional>
#include <utility>

#include "umpool/umpool.h"

namespace umpool::torch_hooks {

using MempoolId = std::pair<unsigned long long, unsigned long long>;

// alloc(size, device, stream): throws std::runtime_error on failure (unless
// UMPOOL_CONF raise_on_oom:false, then returns NULL).
UMPOOL_API void* Malloc(std::size_t size, int device, umpool_stream_t stream);
// set_begin_allocate_to_pool / set_end_allocate_to_pool_fn / set_release_pool.
UMPOOL_API void BeginAllocateToPool(int device, MempoolId id,
                                    std::function<bool(umpool_stream_t)> filter);
UMPOOL_API void EndAllocateToPool(int device, MempoolId id);
UMPOOL_API void ReleasePool(int device, MempoolId id);

}  // namespace umpool::torch_hooks

// The mangled names of the functions above, for ctypes lookups (checked
// against the library by tests/capi_test.cc and python/tests/test_basic.py;
// python/umpool/torch.py uses the same strings).
#define UMPOOL_TORCH_MALLOC_SYMBOL "_ZN6umpool11torch_hooks6MallocEmiP11CUstream_st"
#define UMPOOL_TORCH_BEGIN_SYMBOL \
  "_ZN6umpool11torch_hooks19BeginAllocateToPoolEiSt4pairIyyESt8functionIFbP11CUstream_stEE"
#define UMPOOL_TORCH_END_SYMBOL "_ZN6umpool11torch_hooks17EndAllocateToPoolEiSt4pairIyyE"
#define UMPOOL_TORCH_RELEASE_SYMBOL "_ZN6umpool11torch_hooks11ReleasePoolEiSt4pairIyyE"

#endif  // UMPOOL_UMPOOL_TORCH_H_
