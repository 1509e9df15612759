// umpool/stats.h: what a Pool reports about itself.
#ifndef UMPOOL_STATS_H_
#define UMPOOL_STATS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace umpool {

struct StatValue {
  std::int64_t current = 0;
  std::int64_t peak = 0;
};

// One row per size class that has ever had a slab.
struct ClassStats {
  int size_class = 0;
  std::size_t block_bytes = 0;
  std::size_t slab_bytes = 0;
  std::int64_t slabs = 0;            // slabs of this class held now (all roles)
  std::int64_t blocks_per_slab = 0;
};

struct Stats {
  // Bytes of blocks handed out and not yet freed (rounded block sizes).
  // `peak` is exact when PoolOptions::stats_publish_bytes is 0, otherwise it
  // may read low by up to (threads x stats_publish_bytes).
  StatValue allocated_bytes;
  // Bytes the user asked for, for the same blocks (before rounding).
  StatValue requested_bytes;
  // Bytes held from the backend (every segment). Exact.
  StatValue reserved_bytes;
  // The part of reserved_bytes not carved into slabs: large blocks and free
  // segment space.
  StatValue large_reserved_bytes;

  std::uint64_t allocations = 0;       // successful Allocate calls with bytes > 0
  std::uint64_t frees = 0;             // successful Deallocate calls of a block
  std::uint64_t cache_hits = 0;        // allocations served without a backend call
  std::uint64_t backend_allocations = 0;  // segments mapped (backend calls)
  std::uint64_t backend_frees = 0;        // segments returned to the backend
  std::uint64_t advise_calls = 0;      // advice operations (one per segment)
  std::uint64_t prefetch_calls = 0;    // prefetch operations issued
  std::uint64_t alloc_retries = 0;     // allocations that released cache and retried
  std::uint64_t ooms = 0;              // allocations that failed for lack of memory
  std::uint64_t cross_stream_reuses = 0;  // blocks moved to another stream after an event
  std::uint64_t events_recorded = 0;
  std::uint64_t trims = 0;
  std::uint64_t discard_calls = 0;     // batched discard calls issued (role policy)
  std::uint64_t discarded_blocks = 0;  // freed blocks those calls covered
  std::uint64_t discard_bytes = 0;

  std::int64_t slabs = 0;              // slabs held now (carved from segments)
  std::int64_t large_segments = 0;     // segments held now (backend allocations)
  std::uint64_t slabs_reclaimed = 0;   // empty slabs given back to their segment's free space
  std::uint64_t segments_moved = 0;    // wholly free segments moved to another space (no backend call)
  std::size_t capacity_bytes = 0;      // the pool's cap
  std::vector<ClassStats> classes;     // classes with slabs now

  // Multi-line human-readable summary (used in error messages).
  std::string ToString() const;
  // One-line summary: "allocated 1.2 GiB (peak 2.0 GiB), reserved ...".
  std::string Summary() const;
};

}  // namespace umpool

#endif  // UMPOOL_STATS_H_
