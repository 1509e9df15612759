// umpool/stats.h: what a Pool reports about itself.
//
// The fields come from umpool/stats_table.h, the one list of statistics,
// where each one's meaning is written.
#ifndef UMPOOL_STATS_H_
#define UMPOOL_STATS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "umpool/stats_table.h"

namespace umpool {

struct StatValue {
  std::int64_t current = 0;
  std::int64_t peak = 0;
};

// One row per size class that has slabs now.
struct ClassStats {
  int size_class = 0;
  std::size_t block_bytes = 0;
  std::size_t slab_bytes = 0;
  std::int64_t slabs = 0;            // slabs of this class held now (all roles)
  std::int64_t blocks_per_slab = 0;
};

// A snapshot of a pool's counters (Pool::GetStats). Counters are relaxed
// atomics: a snapshot taken while other threads allocate is approximate. The
// allocated and requested peaks are exact when PoolOptions::stats_publish_bytes
// is 0, otherwise they may read low by up to (threads x stats_publish_bytes).
struct Stats {
#define UMPOOL_STATS_VALUE_(name, key, doc) StatValue name;
#define UMPOOL_STATS_COUNT_(name, key, doc) std::uint64_t name = 0;
#define UMPOOL_STATS_GAUGE_(name, key, doc) std::int64_t name = 0;
  UMPOOL_STAT_VALUES(UMPOOL_STATS_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_STATS_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_STATS_GAUGE_)
#undef UMPOOL_STATS_VALUE_
#undef UMPOOL_STATS_COUNT_
#undef UMPOOL_STATS_GAUGE_

  std::vector<ClassStats> classes;  // classes with slabs now

  // Adds `other`'s values, counts and gauges to these (currents, peaks and
  // counts summed; per-class rows appended): a device's main pool plus its
  // private graph pools.
  void Add(const Stats& other);
  // Multi-line human-readable summary, every statistic by name (used in
  // error messages and umpool_stats_text).
  std::string ToString() const;
  // One-line summary: "allocated 1.2 GiB (peak 2.0 GiB), reserved ...".
  std::string Summary() const;
};

}  // namespace umpool

#endif  // UMPOOL_STATS_H_
