/* umpool/umpool.h: the C ABI of libumpool.so.
 *
 * For engines written in C, Rust, Go or Zig, and for PyTorch. umpool.torch
 * (python/umpool/torch.py) plugs it into PyTorch: through a C++ allocator
 * compiled against the installed torch (python/umpool/csrc), or through
 * torch.cuda.memory.CUDAPluggableAllocator with the entry points of
 * umpool/umpool_torch.h where no compiler is found.
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
 * Size 0: the allocation functions return NULL (umpool_alloc: UMPOOL_OK and
 *   *out = NULL) and record no error; freeing NULL is a no-op.
 * Errors: no function ever throws or aborts. Functions returning int return 0
 *   (UMPOOL_OK) or an umpool_status code; the allocation functions return
 *   NULL; the void ones only record the error. umpool_last_error() (per
 *   thread) says why, and the first failure of each kind (out of memory,
 *   other) is logged once to stderr with the request and the pool's stats.
 */
#ifndef UMPOOL_UMPOOL_H_
#define UMPOOL_UMPOOL_H_

#include <stddef.h>
#include <stdint.h>

#include "umpool/roles.h"
#include "umpool/stats_table.h"

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
  UMPOOL_ERROR_FAILED_PRECONDITION = 3, /* double free; configure after first use; during a capture */
  UMPOOL_ERROR_UNAVAILABLE = 4,      /* no usable GPU, or built without CUDA */
  UMPOOL_ERROR_INTERNAL = 5
} umpool_status;

/* --- Allocation ------------------------------------------------------------
 * `device` is the CUDA ordinal; `role` one of umpool/roles.h's values (0
 * default, 1 weights, 2 kv, 3 activations; umpool_role_name). While a graph
 * private pool routes allocations (umpool_begin_allocate_to_pool), those its
 * filter picks come from that pool. A block is ready for work enqueued on
 * `stream`; the host may touch it once `stream` has reached the allocation
 * (synchronize it first, as with cudaMallocAsync): reused pages may be
 * repopulated by work on `stream` (give_back_free_pages). */

/* The status-returning allocation: *out gets the block (NULL for size 0). */
UMPOOL_API int umpool_alloc(size_t size, int device, umpool_stream_t stream, int role,
                            void** out);
/* PyTorch's pluggable signature: alloc(size, device, stream). NULL on failure. */
UMPOOL_API void* umpool_malloc(size_t size, int device, umpool_stream_t stream);
/* The same with a role's placement policy: umpool_malloc_weights,
 * umpool_malloc_kv, umpool_malloc_activations (and umpool_malloc_default). */
#define UMPOOL_DECLARE_ROLE_MALLOC_(e, name, value) \
  UMPOOL_API void* umpool_malloc_##name(size_t size, int device, umpool_stream_t stream);
UMPOOL_ROLES(UMPOOL_DECLARE_ROLE_MALLOC_)
#undef UMPOOL_DECLARE_ROLE_MALLOC_
/* For torch.cuda.MemPool(CUDAPluggableAllocator(...)) segments, by role:
 * umpool_pool_malloc, umpool_pool_malloc_<role>. NULL on failure, which
 * PyTorch's caching allocator turns into torch.OutOfMemoryError itself. */
UMPOOL_API void* umpool_pool_malloc(size_t size, int device, umpool_stream_t stream);
#define UMPOOL_DECLARE_ROLE_POOL_MALLOC_(e, name, value) \
  UMPOOL_API void* umpool_pool_malloc_##name(size_t size, int device, umpool_stream_t stream);
UMPOOL_ROLES(UMPOOL_DECLARE_ROLE_POOL_MALLOC_)
#undef UMPOOL_DECLARE_ROLE_POOL_MALLOC_

/* PyTorch's pluggable signature: free(ptr, size, device, stream). `stream`
 * is where the block was last used (PyTorch passes its allocation stream);
 * the pool is found from the pointer, whatever `device` says. Errors (a
 * foreign pointer, a double free) are recorded, nothing changes. */
UMPOOL_API void umpool_free(void* ptr, size_t size, int device, umpool_stream_t stream);
/* Frees on an explicit stream / on the stream the block was allocated for
 * (a tensor's deleter). Return a status. */
UMPOOL_API int umpool_deallocate(void* ptr, umpool_stream_t stream);
UMPOOL_API int umpool_free_block(void* ptr);

/* The block at ptr is also used on `stream` (Tensor.record_stream). */
UMPOOL_API void umpool_record_stream(void* ptr, umpool_stream_t stream);
/* `stream` (of `device`) is about to be destroyed: waits for its work and
 * stops using the handle (umpool::Pool::ReleaseStream), in every pool of the
 * device. Call it before cudaStreamDestroy on a stream umpool has seen. */
UMPOOL_API int umpool_release_stream(int device, umpool_stream_t stream);

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
/* The live block containing ptr (which may point inside it): its start and
 * usable size. */
UMPOOL_API int umpool_block_containing(const void* ptr, void** base, size_t* bytes);
/* Where the pool keeps the live block containing ptr (ptr may be interior):
 * *on_gpu = 0 for a large block the pool evicted to host memory (chosen by a
 * role's hbm_budget, or moved by umpool_prefetch(_blocks) to the host) and
 * has not fetched back since, 1 otherwise (slab blocks are not tracked: 1).
 * An engine under a budget fetches the blocks at 0 before a kernel reads
 * them. A lock, no CUDA call, no stream semantics; thread-safe.
 * INVALID_ARGUMENT for a NULL output or a pointer umpool did not hand out,
 * FAILED_PRECONDITION for a freed block; *on_gpu is then untouched.
 * umpool::Pool::BlockLocation has the details. */
UMPOOL_API int umpool_block_location(const void* ptr, int* on_gpu);

/* --- Hooks PyTorch calls ----------------------------------------------------*/
/* PyTorch passes the number of devices. Reads the configuration (a malformed
 * UMPOOL_CONF is reported here, in umpool_last_error()); pools are still
 * created lazily, per device, at their first allocation. */
UMPOOL_API void umpool_init(int device_count);
/* torch.cuda.empty_cache: returns empty slabs and free segments of every
 * device pool and of every private graph pool whose uses were all released
 * to CUDA. A private pool still in use keeps its memory (PyTorch's rule: its
 * graphs replay into blocks it holds as free between replays). */
UMPOOL_API void umpool_empty_cache(void);
/* Caps the device's pool at fraction x the device's total memory (never above
 * the pool's creation cap unless oversubscription is allowed); fraction in (0, 1]. */
UMPOOL_API void umpool_set_memory_fraction(double fraction, int device);
/* The fraction set last (1.0 if none). */
UMPOOL_API double umpool_get_memory_fraction(int device);

/* --- Configuration, stats, errors ----------------------------------------- */
/* Configures every pool created afterwards (UMPOOL_CONF syntax). Must be
 * called before the first pool exists (FAILED_PRECONDITION otherwise);
 * overrides UMPOOL_CONF. */
UMPOOL_API int umpool_configure(const char* conf);
/* The configuration keys as a Markdown table (docs/conf.md's), with each
 * key's default; copied into buf like umpool_stats_text. */
UMPOOL_API int umpool_conf_doc(char* buf, size_t len);

/* The statistics of umpool/stats_table.h: a value X has X_current and
 * X_peak, a count or gauge is one field. */
typedef struct umpool_stats {
#define UMPOOL_C_STAT_VALUE_(name, key, doc) int64_t name##_current, name##_peak;
#define UMPOOL_C_STAT_COUNT_(name, key, doc) uint64_t name;
#define UMPOOL_C_STAT_GAUGE_(name, key, doc) int64_t name;
  UMPOOL_STAT_VALUES(UMPOOL_C_STAT_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_C_STAT_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_C_STAT_GAUGE_)
#undef UMPOOL_C_STAT_VALUE_
#undef UMPOOL_C_STAT_COUNT_
#undef UMPOOL_C_STAT_GAUGE_
} umpool_stats;

/* Stats of the device: its pool plus its private graph pools (all zero if it
 * has none yet: NOT created by this call). */
UMPOOL_API int umpool_get_stats(int device, umpool_stats* out);
/* The field list of umpool_stats, for bindings: one line per field,
 * "<name> <i64|u64> <PyTorch memory_stats key or ->", in struct order.
 * Static text; NULL only if memory ran out building it (see umpool_last_error). */
UMPOOL_API const char* umpool_stats_fields(void);
UMPOOL_API int umpool_reset_peak_stats(int device);
/* Human-readable stats into buf (NUL-terminated, truncated to len). Returns
 * the length needed, or -1 if the device is invalid. */
UMPOOL_API int umpool_stats_text(int device, char* buf, size_t len);
/* The device pool's spans and blocks as JSON (umpool::Pool::SnapshotJson),
 * into buf like umpool_stats_text: returns the length needed (call again with
 * a larger buffer if it grew), or -1 if the device is invalid. A device with
 * no pool yet gives a snapshot with no spans. */
UMPOOL_API int umpool_snapshot_json(int device, char* buf, size_t len);

/* Every span (segment or slab) of the device's pools, for memory tools. */
typedef struct umpool_block_run {
  uint64_t offset, bytes;  /* from the span's base; one block's size */
  uint32_t count;          /* consecutive blocks of this size and state */
  char state;              /* 'L' live, 'R' live + record_stream, 'F' free, 'U' never used,
                              'B' free with its pages given back (not reserved) */
  uint64_t requested;      /* live blocks: bytes asked for, all `count` together */
} umpool_block_run;
typedef struct umpool_span_info {
  uint64_t base, bytes;
  int is_slab;             /* a slab (inside a segment) or a segment */
  int is_slab_space;       /* a segment of slab space: its live blocks are slabs */
  int role;
  uint64_t block_bytes;    /* slabs: the class size */
  uint64_t pool_id_hi, pool_id_lo;  /* 0, 0: the device's pool; else a private pool */
  const umpool_block_run* blocks;   /* address order; valid during the call */
  size_t block_count;
} umpool_span_info;
typedef void (*umpool_span_visitor)(void* ctx, const umpool_span_info* span);
UMPOOL_API int umpool_visit_spans(int device, umpool_span_visitor visit, void* ctx);

/* Returns empty slabs and free segments of the device's pool to CUDA. */
UMPOOL_API int umpool_trim(int device);
/* Sleep between phases (an inference engine beside a trainer): the free
 * cached memory of the device's pool and of its private graph pools goes back
 * to CUDA, then the live blocks of the roles in offload_roles (bit r = role r)
 * are copied to a pinned host staging buffer and their pages discarded
 * (contents kept; the buffer is pinned at the first sleep and kept for the
 * next: umpool_release_staging frees it; where the host cannot pin it, they
 * are evicted instead) and those in discard_roles dropped (contents
 * undefined), one batched call each, ordered on `stream`. A tensor written
 * while it sleeps loses the write at wake-up (the staged contents return).
 * Addresses never change: captured CUDA graphs stay valid. Another
 * allocator's cudaMalloc can then take that GPU memory (the driver evicts
 * the pages); cudaMemGetInfo counts them until it does. With
 * UMPOOL_CONF=backend:vmm the pages are released to the driver instead
 * (cudaMemGetInfo counts them free; a kernel touching a sleeping tensor
 * fails with an illegal address). Asleep already: a no-op. Errors: INVALID_ARGUMENT (a role in both masks, a bit past the last
 * role, a bad device); FAILED_PRECONDITION (during a graph capture; a
 * device_memory role). Thread-safe. */
UMPOOL_API int umpool_sleep(int device, unsigned offload_roles, unsigned discard_roles,
                            umpool_stream_t stream);
/* Brings back what umpool_sleep moved (pages repopulated on the GPU, then
 * the offloaded contents copied back), ordered on `stream`; above 1 GiB the
 * repopulation overlaps the copies on an internal stream and the call
 * returns once it is done (the copies stay queued on `stream`). Not asleep: a
 * no-op. Wake only once the other allocator has given its memory back. */
UMPOOL_API int umpool_wake_up(int device, umpool_stream_t stream);
/* Frees the pinned staging buffers umpool_sleep keeps between sleeps (the
 * device's pool and its private pools; waits for wake-up's copies). A pool
 * that sleeps keeps its buffer. Not created yet: a no-op. Thread-safe. */
UMPOOL_API int umpool_release_staging(int device);
/* Pins now the staging buffers an umpool_sleep offloading `offload_roles`
 * would need (the live blocks of those roles, in the device's pool and its
 * private pools), so that the first sleep does not pay for pinning (about
 * 2.7 s per 8 GiB on the H200's host). Host-blocking; no-op for a pool that
 * sleeps or has a big enough buffer. Errors: INVALID_ARGUMENT (bad device or
 * mask), OUT_OF_MEMORY where the host cannot pin that much. Thread-safe. */
UMPOOL_API int umpool_reserve_staging(int device, unsigned offload_roles);
/* Pins `bytes` of host memory now for eviction by staging in the device's
 * pool (<role>.evict:staging), so that evictions do not pay for pinning as
 * they go; umpool_trim frees the chunks no evicted block uses. Host-blocking;
 * 0 bytes or held already: a no-op. Errors: INVALID_ARGUMENT (bad device),
 * OUT_OF_MEMORY where the host cannot pin that much. Thread-safe. */
UMPOOL_API int umpool_reserve_eviction_staging(int device, size_t bytes);
/* umpool_sleep / umpool_wake_up of one private pool only (a CUDA graph pool
 * or a torch.cuda.MemPool under umpool's allocator): an engine that allocates
 * inside its own MemPool puts exactly its memory to sleep. INVALID_ARGUMENT
 * for a pool that does not exist. */
UMPOOL_API int umpool_sleep_pool(int device, uint64_t id_hi, uint64_t id_lo,
                                 unsigned offload_roles, unsigned discard_roles,
                                 umpool_stream_t stream);
UMPOOL_API int umpool_wake_pool(int device, uint64_t id_hi, uint64_t id_lo,
                                umpool_stream_t stream);
/* Flags of umpool_sleep_ex. CONTENTS_UNCHANGED: the caller promises that the
 * blocks to offload were not written since the pool last woke (weights
 * during generation, a streamed layer): where the pool's last sleep staged
 * the same blocks and kept its buffer, their copies are skipped and only
 * their pages dropped (no copy, no host wait); otherwise the flag changes
 * nothing. A block written meanwhile would come back with its contents of
 * the last sleep. */
#define UMPOOL_SLEEP_CONTENTS_UNCHANGED 1u
/* umpool_sleep (id_hi = id_lo = 0: the device's pool and its private pools)
 * or umpool_sleep_pool (a private pool's id) with `flags` (above). Errors as
 * theirs; INVALID_ARGUMENT for an unknown flag bit. */
UMPOOL_API int umpool_sleep_ex(int device, uint64_t id_hi, uint64_t id_lo,
                               unsigned offload_roles, unsigned discard_roles, unsigned flags,
                               umpool_stream_t stream);
/* Called before an allocation on `device` fails for lack of memory, after
 * umpool has returned its own cached memory: `bytes` is what the request
 * needs, `role` its role. Return nonzero if it freed memory (umpool retries
 * once), 0 to let the allocation fail. Runs on the allocating thread with no
 * umpool lock held: it may free and allocate through umpool; it is never
 * re-entered from its own allocations, never called during a CUDA graph
 * capture. NULL removes it. The device's pool (created if needed). With the
 * conf key pressure_watermark it is also called once when the pool's
 * reserved bytes pass that size (after the allocation, which succeeded;
 * `bytes` = reserved bytes above the watermark; the result is ignored). */
typedef int (*umpool_pressure_fn)(void* ctx, int device, size_t bytes, int role);
UMPOOL_API int umpool_set_pressure_callback(int device, umpool_pressure_fn fn, void* ctx);
/* One role's residency on a device (its pool and private pools): large
 * blocks only (above the role's slab_max). Conf <role>.hbm_budget sets a
 * budget: the pool then evicts the least recently allocated or fetched
 * blocks of the role to host memory when an allocation or a fetch would keep
 * more on the GPU (docs/residency.md). */
typedef struct umpool_residency {
  size_t budget_bytes;      /* 0: no budget */
  size_t resident_bytes;    /* budgeted roles: blocks allocated or fetched, not evicted since */
  size_t host_bytes;        /* live blocks the pool evicted and has not fetched back */
  uint64_t evictions;       /* blocks the pool evicted (evict, prefetch to the host, budget) */
  uint64_t budget_evictions;  /* ... of them chosen by the budget */
  uint64_t fetches;         /* blocks fetched to the GPU */
  uint64_t evicted_bytes;
  uint64_t fetched_bytes;
  size_t reserved_bytes;    /* populated bytes of the role's large space and slabs */
  size_t allocated_bytes;   /* live blocks of the role */
} umpool_residency;
/* Fills *out for `role` (0..3). INVALID_ARGUMENT for a bad device or role or
 * a NULL out. All zero when the device has no pool yet. Thread-safe. */
UMPOOL_API int umpool_get_residency(int device, int role, umpool_residency* out);
/* 1 if the device's pool sleeps, 0 if not (or not created yet); -1 for a
 * bad device (the last error says why). */
UMPOOL_API int umpool_is_asleep(int device);
/* The calling thread's last error text ("" if none). Valid until the thread's
 * next umpool call. */
UMPOOL_API const char* umpool_last_error(void);
/* Its umpool_status code (UMPOOL_OK if none). */
UMPOOL_API int umpool_last_error_code(void);
UMPOOL_API void umpool_clear_last_error(void);
/* Library version, e.g. "0.1.0". */
UMPOOL_API const char* umpool_version(void);
/* The roles: how many, and each one's name (NULL outside 0..count-1). */
UMPOOL_API int umpool_role_count(void);
UMPOOL_API const char* umpool_role_name(int role);

/* --- CUDA graph private pools (PyTorch's semantics) -------------------------
 * From a begin until its end, allocations on `device` for which filter(ctx,
 * stream) returns non-zero come from the private pool named (id_hi, id_lo),
 * created on first use; its blocks are never handed to other allocations, so
 * a graph that was captured using them can be replayed safely. While any
 * begin is active every umpool pool records and queries no events
 * (umpool::Pool::BeginCapture). Frees find the private pool by address;
 * umpool_release_pool returns the pool's memory once its blocks are all
 * freed. Call begin before cudaStreamBeginCapture and end after
 * cudaStreamEndCapture. */
typedef int (*umpool_stream_filter)(void* ctx, umpool_stream_t stream);
UMPOOL_API int umpool_begin_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo,
                                             umpool_stream_filter filter, void* ctx);
UMPOOL_API int umpool_end_allocate_to_pool(int device, uint64_t id_hi, uint64_t id_lo);
UMPOOL_API int umpool_release_pool(int device, uint64_t id_hi, uint64_t id_lo);
/* Private pools of `device` that exist now (released ones included until
 * their memory is returned). */
UMPOOL_API int umpool_graph_pool_count(int device);
/* Creates the private pool (id_hi, id_lo) of `device` if it does not exist,
 * and counts a use of it (PyTorch's createOrIncrefPool; umpool_release_pool
 * gives it back). */
UMPOOL_API int umpool_create_pool(int device, uint64_t id_hi, uint64_t id_lo);
/* Uses of the private pool not yet released (0 for an unknown pool). */
UMPOOL_API int umpool_pool_use_count(int device, uint64_t id_hi, uint64_t id_lo);
/* Returns the private pool's empty slabs and free segments to CUDA. */
UMPOOL_API int umpool_trim_pool(int device, uint64_t id_hi, uint64_t id_lo);
/* Gives the private pool (created if missing) a role: every allocation into
 * it, routed or direct, takes that role's placement and is that role for
 * umpool_sleep_pool, whatever role the caller asked for (a role-tagged
 * engine pool: umpool.tag in Python). -1 clears it. Errors: INVALID_ARGUMENT
 * for a bad device or role. Thread-safe. */
UMPOOL_API int umpool_set_pool_role(int device, uint64_t id_hi, uint64_t id_lo, int role);
/* Allocates from the private pool directly (no routing filter), with the
 * pool's role (umpool_set_pool_role) or the default role. */
UMPOOL_API int umpool_pool_alloc(int device, uint64_t id_hi, uint64_t id_lo, size_t size,
                                 umpool_stream_t stream, void** out);

/* Checkpoints of a private pool (CUDA graph trees): its live blocks now, and
 * making its live blocks exactly a checkpoint again: live blocks not in it are
 * freed (freed(ctx, ptr) for each), blocks of it that are not live are
 * allocated again at their addresses (allocated(ctx, ptr) for each). */
typedef struct umpool_block {
  void* ptr;
  uint64_t bytes, requested;
  umpool_stream_t stream;
  int role;
} umpool_block;
typedef void (*umpool_block_visitor)(void* ctx, const umpool_block* block);
typedef void (*umpool_ptr_visitor)(void* ctx, void* ptr);
UMPOOL_API int umpool_pool_live_blocks(int device, uint64_t id_hi, uint64_t id_lo,
                                       umpool_block_visitor visit, void* ctx);
UMPOOL_API int umpool_pool_restore(int device, uint64_t id_hi, uint64_t id_lo,
                                   const umpool_block* blocks, size_t count,
                                   umpool_ptr_visitor freed, umpool_ptr_visitor allocated,
                                   void* ctx);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* UMPOOL_UMPOOL_H_ */
