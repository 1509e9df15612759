// src/pool/counters.h: the pool-wide counters behind umpool::Stats.
//
// One atomic per row of umpool/stats_table.h (a value has a current and a
// peak), so a new statistic is a table row and its update. Tiers update them
// with relaxed atomics. The hot path does not touch them: thread caches count
// allocations, frees and hits and publish byte deltas in batches
// (pool_core.cc); GetStats adds those in (pool_stats.cc).
#ifndef UMPOOL_SRC_POOL_COUNTERS_H_
#define UMPOOL_SRC_POOL_COUNTERS_H_

#include <atomic>
#include <cstdint>

#include "umpool/stats_table.h"

namespace umpool::internal {

struct AtomicValue {
  std::atomic<std::int64_t> current{0};
  std::atomic<std::int64_t> peak{0};

  // Adds `delta` and raises the peak if the sum passes it. Returns the sum.
  std::int64_t Add(std::int64_t delta) {
    const std::int64_t now = current.fetch_add(delta, std::memory_order_relaxed) + delta;
    std::int64_t p = peak.load(std::memory_order_relaxed);
    while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
    }
    return now;
  }
  void ResetPeak() { peak.store(current.load(std::memory_order_relaxed), std::memory_order_relaxed); }
};

struct PoolCounters {
#define UMPOOL_COUNTER_VALUE_(name, key, doc) AtomicValue name;
#define UMPOOL_COUNTER_COUNT_(name, key, doc) std::atomic<std::uint64_t> name{0};
#define UMPOOL_COUNTER_GAUGE_(name, key, doc) std::atomic<std::int64_t> name{0};
  UMPOOL_STAT_VALUES(UMPOOL_COUNTER_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_COUNTER_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_COUNTER_GAUGE_)
#undef UMPOOL_COUNTER_VALUE_
#undef UMPOOL_COUNTER_COUNT_
#undef UMPOOL_COUNTER_GAUGE_

  void Bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_COUNTERS_H_
