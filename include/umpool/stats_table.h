/* umpool/stats_table.h: every statistic of a pool, once (C and C++).
 *
 * The C++ struct umpool::Stats, the C struct umpool_stats, Stats::ToString,
 * the C ABI's copy, umpool_stats_fields() (which the Python package builds
 * its ctypes structure and umpool.memory_stats() from) and PyTorch's
 * torch.cuda.memory_stats() keys under the umpool allocator all come from
 * these three lists. A new statistic is one row here and its update.
 *
 * Columns: name, PyTorch memory_stats key ("" when PyTorch has none: the
 * Python dict then says "umpool.<name>"), meaning.
 *   VALUES: bytes with a current and a peak value.
 *   COUNTS: monotonic event counts since the pool was created.
 *   GAUGES: how many of something the pool holds now. */
#ifndef UMPOOL_STATS_TABLE_H_
#define UMPOOL_STATS_TABLE_H_

#define UMPOOL_STAT_VALUES(X)                                                          \
  X(allocated_bytes, "allocated_bytes.all",                                            \
    "bytes of blocks handed out and not yet freed (rounded block sizes)")              \
  X(requested_bytes, "requested_bytes.all",                                            \
    "bytes the callers asked for, for the same blocks (before rounding)")              \
  X(reserved_bytes, "reserved_bytes.all",                                             \
    "bytes of GPU memory held: the populated part of every segment")                   \
  X(mapped_bytes, "", "bytes mapped from the backend: reserved bytes and the reserves not yet touched") \
  X(bare_bytes, "", "free pages inside segments given back to the backend before the pool populated " \
    "more (mapped, not reserved; refilled when reused)")                               \
  X(large_reserved_bytes, "reserved_bytes.large_pool",                                 \
    "the part of reserved_bytes not carved into slabs: large blocks and free space")   \
  X(host_bytes, "", "live large blocks the pool evicted to host memory and has not fetched back: " \
    "part of reserved_bytes, not counted against the cap (they hold no GPU memory)")

#define UMPOOL_STAT_COUNTS(X)                                                          \
  X(allocations, "allocation.all.allocated", "successful allocations of more than 0 bytes") \
  X(frees, "allocation.all.freed", "successful frees of a block")                      \
  X(cache_hits, "", "allocations served without a backend call")                       \
  X(backend_allocations, "num_device_alloc", "segments mapped (backend calls)")        \
  X(backend_frees, "num_device_free", "segments returned to the backend")              \
  X(advise_calls, "", "advice operations (one per segment)")                           \
  X(prefetch_calls, "", "prefetch operations issued")                                  \
  X(alloc_retries, "num_alloc_retries", "allocations that released cached memory and retried") \
  X(ooms, "num_ooms", "allocations that failed for lack of memory")                    \
  X(cross_stream_reuses, "", "blocks handed to another stream after a fence")          \
  X(ordered_reuses, "", "blocks served from free memory whose fences had not completed, once the " \
    "requesting stream waited for them on the device instead of the pool growing (large blocks and " \
    "slab ranges: one per request; size-class blocks: one per block)") \
  X(events_recorded, "", "events recorded for stream fences")                          \
  X(fence_errors, "", "event record, query or stream-wait failures (the blocks concerned stayed put)") \
  X(trims, "", "Trim calls")                                                           \
  X(discard_calls, "", "batched discard calls issued (discard on free)")               \
  X(discarded_blocks, "", "freed blocks those calls covered")                          \
  X(discard_bytes, "", "bytes those calls covered")                                    \
  X(slabs_reclaimed, "", "empty slabs given back to their segment's free space")      \
  X(segments_moved, "", "wholly free segments moved to another space (no backend call)") \
  X(grown_in_place, "", "segments grown into their reserve (pages populated: a prefetch call)") \
  X(reserves_cut, "", "segments cut from another segment's reserve when no new mapping fit") \
  X(page_drops, "", "calls that gave free pages back before populating more (one per space)") \
  X(bare_refills, "", "ranges of given-back pages populated again to be reused")  \
  X(streams_released, "", "ReleaseStream calls")                                      \
  X(caches_drained, "", "idle threads' caches emptied into the central bins by another thread " \
    "(before the pool grows, and in Trim)")

#define UMPOOL_STAT_GAUGES(X)                                                          \
  X(slabs, "", "slabs held now (carved from segments)")                                \
  X(large_segments, "segment.all.current", "segments held now (backend allocations)")  \
  X(capacity_bytes, "", "the pool's cap on reserved bytes less host_bytes (GPU memory held)")

#endif /* UMPOOL_STATS_TABLE_H_ */
