// Statistics: PoolCore::GetStats and the Stats formatting, from the one table
// (umpool/stats_table.h).
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/pool/pool_core.h"
#include "umpool/stats.h"

namespace umpool {
namespace {

std::string Bytes(std::int64_t b) {
  const double v = static_cast<double>(b);
  if (b >= (std::int64_t{1} << 30)) return absl::StrFormat("%.2f GiB", v / (1 << 30));
  if (b >= (std::int64_t{1} << 20)) return absl::StrFormat("%.2f MiB", v / (1 << 20));
  if (b >= (std::int64_t{1} << 10)) return absl::StrFormat("%.2f KiB", v / (1 << 10));
  return absl::StrCat(b, " B");
}

}  // namespace

std::string Stats::Summary() const {
  return absl::StrCat("allocated ", Bytes(allocated_bytes.current), " (peak ",
                      Bytes(allocated_bytes.peak), "), reserved ", Bytes(reserved_bytes.current),
                      " (peak ", Bytes(reserved_bytes.peak), ") of cap ", Bytes(capacity_bytes),
                      ", ", slabs, " slabs, ", large_segments, " segments, ", allocations,
                      " allocations, ", ooms, " OOMs");
}

std::string Stats::ToString() const {
  std::string s = absl::StrCat("umpool stats: ", Summary(), "\n");
#define UMPOOL_FORMAT_VALUE_(name, key, doc)                                                \
  absl::StrAppend(&s, "  " #name " ", Bytes(name.current), " (peak ", Bytes(name.peak), ")\n");
#define UMPOOL_FORMAT_COUNT_(name, key, doc) absl::StrAppend(&s, "  " #name " ", name, "\n");
  UMPOOL_STAT_VALUES(UMPOOL_FORMAT_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_FORMAT_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_FORMAT_COUNT_)
#undef UMPOOL_FORMAT_VALUE_
#undef UMPOOL_FORMAT_COUNT_
  for (const ClassStats& c : classes) {
    absl::StrAppend(&s, absl::StrFormat("  class %3d: %10zu B blocks, %4" PRId64
                                        " slab(s) of %9zu B, %5" PRId64 " blocks/slab\n",
                                        c.size_class, c.block_bytes, c.slabs, c.slab_bytes,
                                        c.blocks_per_slab));
  }
  return s;
}

void Stats::Add(const Stats& o) {
#define UMPOOL_ADD_VALUE_(name, key, doc) \
  name.current += o.name.current;         \
  name.peak += o.name.peak;
#define UMPOOL_ADD_COUNT_(name, key, doc) name += o.name;
  UMPOOL_STAT_VALUES(UMPOOL_ADD_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_ADD_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_ADD_COUNT_)
#undef UMPOOL_ADD_VALUE_
#undef UMPOOL_ADD_COUNT_
  classes.insert(classes.end(), o.classes.begin(), o.classes.end());
}

namespace internal {

Stats PoolCore::GetStats() const {
  Stats s;
#define UMPOOL_LOAD_VALUE_(name, key, doc) \
  s.name = {counters_.name.current.load(), counters_.name.peak.load()};
#define UMPOOL_LOAD_COUNT_(name, key, doc) s.name = counters_.name.load();
  UMPOOL_STAT_VALUES(UMPOOL_LOAD_VALUE_)
  UMPOOL_STAT_COUNTS(UMPOOL_LOAD_COUNT_)
  UMPOOL_STAT_GAUGES(UMPOOL_LOAD_COUNT_)
#undef UMPOOL_LOAD_VALUE_
#undef UMPOOL_LOAD_COUNT_
  // The hot path's counts live in the thread caches until published.
  caches_.AddTo(&s);
  s.allocated_bytes.peak = std::max(s.allocated_bytes.peak, s.allocated_bytes.current);
  s.requested_bytes.peak = std::max(s.requested_bytes.peak, s.requested_bytes.current);
  s.events_recorded = fencer_.events_recorded();
  s.classes = slabs_.Classes();
  return s;
}

void PoolCore::ResetPeaks() {
  const Stats now = GetStats();
  counters_.allocated_bytes.peak.store(now.allocated_bytes.current);
  counters_.requested_bytes.peak.store(now.requested_bytes.current);
  counters_.reserved_bytes.ResetPeak();
  counters_.mapped_bytes.ResetPeak();
  counters_.large_reserved_bytes.ResetPeak();
}

}  // namespace internal
}  // namespace umpool
