/* umpool/umpool.h: the C ABI of libumpool.so.
 *
 * PyTorch loads umpool as a pluggable allocator through these functions:
 *
 *   alloc = torch.cuda.memory.CUDAPluggableAllocator("libumpool.so", "umpool_malloc", "umpool_free")
 *   torch.cuda.memory.change_current_allocator(alloc)     # before CUDA is initialised
 *
 * (the Python package `umpool.torch.enable()` does this and wires every hook).
 *
 * Pools are created lazily, one per CUDA device, configured once from the
 * UMPOOL_CONF environment variable or umpool_configure() (docs/conf.md).
 *
 * Thread safety: every function may be called from any thread at any time.
 * Stream semantics: as umpool::Pool (include/umpool/pool.h): a block freed on
 *   stream S is reused at once on S and on other streams only after an event
 *   recorded on S after the free has completed; umpool_record_stream adds
 *   streams to wait for.
 * Alignment: every pointer returned is aligned to at least 256 bytes.
 * Size 0: the malloc functions return NULL and record no error; freeing NULL
 *   is a no-op.
 * Errors: functions returning int return 0 (UMPOOL_OK) or an umpool_status
 *   code, and umpool_last_error() (per thread) says why. The malloc functions
 *   report failure as described below; the first failure of each kind is also
 *   logged once to stderr with the request size and the pool's stats.
 */
#ifndef UMPOOL_UMPOOL_H_
#define UMPOOL_UMPOOL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UMPOOL_API __attribute__((visibility("default")))

/* The same type as cudaStream_t. */
typedef struct CUstream_st* umpool_stream_t;

typedef enum umpool_status {
  UMPOOL_OK = 0,
  UMPOOL_ERROR_INVALID_ARGUMENT = 1, /* bad pointer, size, device, role or configuration */
  UMPOOL_ERROR_OUT_OF_MEMORY = 2,    /* the cap or the device is exhausted */
  UMPOOL_ERROR_FAILED_PRECONDITION = 3, /* double free; configure after first use */
  UMPOOL_ERROR_UNAVAILABLE = 4,      /* no usable GPU, or built without CUDA */
  UMPOOL_ERROR_INTERNAL = 5
} umpool_status;

/* --- PyTorch pluggable-allocator entry points ------------------------------
 * Signatures are PyTorch's: alloc(size, device, stream), free(ptr, size,
 * device, stream). `device` is the CUDA ordinal the tensor lives on; free may
 * run with any device current and finds the right pool from the pointer.
 *
 * Failure of umpool_malloc*: by default (UMPOOL_CONF raise_on_oom:true) a C++
 * exception derived from std::runtime_error is thrown, carrying the error
 * text. PyTorch 2.11 does not check a pluggable allocator's NULL, but it does
 * propagate C++ exceptions from it to Python as RuntimeError, so the user
 * sees "umpool: out of memory allocating N bytes ..." instead of a crash.
 * With raise_on_oom:false they return NULL and set umpool_last_error(). */
UMPOOL_API void* umpool_malloc(size_t size, int device, umpool_stream_t stream);
UMPOOL_API void umpool_free(void* ptr, size_t size, int device, umpool_stream_t stream);

/* Role entry points: the same, with the role's placement policy. */
UMPOOL_API void* umpool_malloc_weights(size_t size, int device, umpool_stream_t stream);
UMPOOL_API void* umpool_malloc_kv(size_t size, int device, umpool_stream_t stream);
UMPOOL_API void* umpool_malloc_activations(size_t size, int device, umpool_stream_t stream);

/* For torch.cuda.MemPool: never throw; return NULL on failure. PyTorch's
 * caching allocator, which calls these for whole segments, turns NULL into
 * torch.OutOfMemoryError itself. */
UMPOOL_API void* umpool_pool_malloc(size_t size, int device, umpool_stream_t stream);
UMPOOL_API void* umpool_pool_malloc_weights(size_t size, int device, umpool_stream_t stream);
UMPOOL_API void* umpool_pool_malloc_kv(size_t size, int device, umpool_stream_t stream);
UMPOOL_API void* umpool_pool_malloc_activations(size_t size, int device, umpool_stream_t stream);

/* --- Hooks PyTorch can call (set from Python on the pluggable allocator) ---- */
/* set_init_fn: PyTorch 2.11 passes the number of devices. Reads the
 * configuration (a malformed UMPOOL_CONF is reported here, in
 * umpool_last_error()); pools are still created lazily, per device, at their
 * first allocation, so a process that uses one GPU touches no other. */
UMPOOL_API void umpool_init(int device_count);
/* set_reset_fn (torch.cuda.empty_cache): returns empty slabs and free large
 * blocks of every pool to CUDA. */
UMPOOL_API void umpool_empty_cache(void);
/* set_memory_fraction_fn: caps the device's pool at fraction x the device's
 * total memory (never above the pool's creation cap unless oversubscription
 * is allowed). fraction must be in (0, 1]. */
UMPOOL_API void umpool_set_memory_fraction(double fraction, int device);
/* set_record_stream_fn: the block at ptr is also used on stream. */
UMPOOL_API void umpool_record_stream(void* ptr, umpool_stream_t stream);

/* --- Configuration, stats, errors ----------------------------------------- */
/* Configures every pool created afterwards (UMPOOL_CONF syntax). Must be
 * called before the first pool exists (FAILED_PRECONDITION otherwise);
 * overrides UMPOOL_CONF. */
UMPOOL_API int umpool_configure(const char* conf);

typedef struct umpool_stats {
  int64_t allocated_bytes_current, allocated_bytes_peak;
  int64_t reserved_bytes_current, reserved_bytes_peak;
  int64_t large_reserved_bytes_current, large_reserved_bytes_peak;
  uint64_t allocations, frees, cache_hits;
  uint64_t backend_allocations, backend_frees;
  uint64_t advise_calls, prefetch_calls;
  uint64_t alloc_retries, ooms, cross_stream_reuses, events_recorded, trims;
  int64_t slabs, large_segments;
  uint64_t capacity_bytes;
  uint64_t discard_calls, discard_bytes;
} umpool_stats;

/* Stats of the device's pool (all zero except capacity if it has none yet:
 * NOT created by this call). */
UMPOOL_API int umpool_get_stats(int device, umpool_stats* out);
UMPOOL_API int umpool_reset_peak_stats(int device);
/* Human-readable stats into buf (NUL-terminated, truncated to len). Returns
 * the length needed, or -1 if the device is invalid. */
UMPOOL_API int umpool_stats_text(int device, char* buf, size_t len);
/* The device pool's spans and blocks as JSON (umpool::Pool::SnapshotJson),
 * into buf like umpool_stats_text: returns the length needed (call again with
 * a larger buffer if it grew), or -1 if the device is invalid. A device with
 * no pool yet gives a snapshot with no spans. */
UMPOOL_API int umpool_snapshot_json(int device, char* buf, size_t len);
/* Returns empty slabs and free large blocks of the device's pool to CUDA. */
UMPOOL_API int umpool_trim(int device);
/* The calling thread's last error text ("" if none). Valid until the thread's
 * next umpool call. */
UMPOOL_API const char* umpool_last_error(void);
UMPOOL_API void umpool_clear_last_error(void);
/* Moves [ptr, ptr + bytes) to the GPU (to_gpu != 0) or to host memory,
 * ordered on `stream`; addresses never change. The range must lie inside one
 * live block of any device's pool (ptr may be interior); bytes == 0 means to
 * the end of the block. umpool::Pool::Prefetch has the details. */
UMPOOL_API int umpool_prefetch(const void* ptr, size_t bytes, int to_gpu, umpool_stream_t stream);
/* Moves the whole blocks containing ptrs[0..count) to the GPU or to host
 * memory in one batched, stream-ordered call. All must belong to one device's
 * pool; every pointer is checked before anything moves. count 0: no-op. */
UMPOOL_API int umpool_prefetch_blocks(const void* const* ptrs, size_t count, int to_gpu,
                                      umpool_stream_t stream);

/* Usable size of the live block at ptr (from any device's pool), or 0 if ptr
 * is not a live umpool block. */
UMPOOL_API size_t umpool_block_size(const void* ptr);
/* Library version, e.g. "0.1.0". */
UMPOOL_API const char* umpool_version(void);

/* CUDA graph private pools (PyTorch's semantics). From a begin until its end,
 * allocations on `device` for which filter(ctx, stream) returns non-zero come
 * from the private pool named (id_hi, id_lo), created on first use; its blocks
 * are never handed to other allocations, so a graph that was captured using
 * them can be replayed safely. While any begin is active every umpool pool
 * records and queries no events (umpool::Pool::BeginCapture). Frees find the
 * private pool by address; umpool_release_pool returns the pool's memory once
 * its blocks are all freed. Call begin before cudaStreamBeginCapture and end
 * after cudaStreamEndCapture. Return UMPOOL_OK or an error code. */
typedef int (*umpool_stream_filter)(void* ctx, umpool_stream_t stream);
UMPOOL_API int umpool_begin_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo,
                                             umpool_stream_filter filter, void* ctx);
UMPOOL_API int umpool_end_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo);
UMPOOL_API int umpool_release_pool(int device, uint64_t id_hi, uint64_t id_lo);
/* Private pools of `device` that exist now (released ones included until
 * their memory is returned). */
UMPOOL_API int umpool_graph_pool_count(int device);

#ifdef __cplusplus
}  /* extern "C" */

#include <functional>
#include <utility>

/* The same three hooks with the signatures torch.cuda.memory.
 * CUDAPluggableAllocator's set_begin_allocate_to_pool,
 * set_end_allocate_to_pool_fn and set_release_pool call (c10's MempoolId_t is
 * a pair of unsigned long long). umpool.torch.enable() installs them. */
extern "C" UMPOOL_API void umpool_torch_begin_allocate_to_pool(
    int device, std::pair<unsigned long long, unsigned long long> id,
    std::function<bool(umpool_stream_t)> filter);
extern "C" UMPOOL_API void umpool_torch_end_allocate_to_pool(
    int device, std::pair<unsigned long long, unsigned long long> id);
extern "C" UMPOOL_API void umpool_torch_release_pool(
    int device, std::pair<unsigned long long, unsigned long long> id);
#endif

#endif /* UMPOOL_UMPOOL_H_ */
