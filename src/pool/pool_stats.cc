// PoolCore statistics, and the Stats formatting.
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
                      " (peak ", Bytes(reserved_bytes.peak), ") of cap ",
                      Bytes(static_cast<std::int64_t>(capacity_bytes)), ", ", slabs, " slabs, ",
                      large_segments, " large segments, ", allocations, " allocations, ", ooms,
                      " OOMs");
}

std::string Stats::ToString() const {
  std::string s = absl::StrCat("umpool stats: ", Summary(), "\n");
  absl::StrAppend(&s, "  frees ", frees, ", cache hits ", cache_hits, ", backend allocations ",
                  backend_allocations, ", backend frees ", backend_frees, "\n");
  absl::StrAppend(&s, "  advise ops ", advise_calls, ", prefetch ops ", prefetch_calls,
                  ", retries ", alloc_retries, ", cross-stream reuses ", cross_stream_reuses,
                  ", events recorded ", events_recorded, ", trims ", trims, ", discards ",
                  discard_calls, " calls for ", discarded_blocks, " blocks (", Bytes(static_cast<std::int64_t>(discard_bytes)), ")\n");
  absl::StrAppend(&s, "  large reserved ", Bytes(large_reserved_bytes.current), " (peak ",
                  Bytes(large_reserved_bytes.peak), "), slabs reclaimed ", slabs_reclaimed,
                  ", segments moved ", segments_moved, "\n");
  for (const ClassStats& c : classes) {
    absl::StrAppend(&s, absl::StrFormat("  class %3d: %10zu B blocks, %4" PRId64
                                        " slab(s) of %9zu B, %5" PRId64 " blocks/slab\n",
                                        c.size_class, c.block_bytes, c.slabs, c.slab_bytes,
                                        c.blocks_per_slab));
  }
  return s;
}

namespace internal {

Stats PoolCore::GetStats() const {
  Stats s;
  std::int64_t unpublished = 0;
  std::uint64_t allocs = counters_.allocations.load(), frees = counters_.frees.load(),
                hits = counters_.cache_hits.load();
  {
    MutexLock lock(&caches_mu_);
    for (const ThreadCache* tc : caches_) {
      unpublished += tc->unpublished_view.Get();
      allocs += static_cast<std::uint64_t>(tc->allocations.Get());
      frees += static_cast<std::uint64_t>(tc->frees.Get());
      hits += static_cast<std::uint64_t>(tc->cache_hits.Get());
    }
  }
  s.allocated_bytes.current = counters_.allocated.load() + unpublished;
  s.allocated_bytes.peak = std::max(counters_.allocated_peak.load(), s.allocated_bytes.current);
  s.reserved_bytes = {counters_.reserved.load(), counters_.reserved_peak.load()};
  s.large_reserved_bytes = {counters_.large_reserved.load(), counters_.large_reserved_peak.load()};
  s.allocations = allocs;
  s.frees = frees;
  s.cache_hits = hits;
  s.backend_allocations = counters_.backend_allocations.load();
  s.backend_frees = counters_.backend_frees.load();
  s.advise_calls = counters_.advise_calls.load();
  s.prefetch_calls = counters_.prefetch_calls.load();
  s.alloc_retries = counters_.alloc_retries.load();
  s.ooms = counters_.ooms.load();
  s.cross_stream_reuses = counters_.cross_stream_reuses.load();
  s.events_recorded = fencer_.events_recorded();
  s.trims = counters_.trims.load();
  s.discard_calls = counters_.discard_calls.load();
  s.discard_bytes = counters_.discard_bytes.load();
  s.discarded_blocks = counters_.discarded_blocks.load();
  s.slabs = counters_.slabs.load();
  s.large_segments = counters_.large_segments.load();
  s.slabs_reclaimed = counters_.slabs_reclaimed.load();
  s.segments_moved = counters_.segments_moved.load();
  s.capacity_bytes = capacity_view_.load(std::memory_order_relaxed);
  for (int c = 0; c < kNumClasses; ++c) {
    std::int64_t n = 0;
    for (const auto& heap : heap_store_) n += heap->bins[c].slabs();
    if (n == 0) continue;
    const SizeClassInfo& info = kSizeClasses[c];
    s.classes.push_back(ClassStats{c, info.size, info.slab_bytes, n, info.blocks});
  }
  return s;
}

void PoolCore::ResetPeaks() {
  const Stats now = GetStats();
  counters_.allocated_peak.store(now.allocated_bytes.current);
  counters_.reserved_peak.store(counters_.reserved.load());
  counters_.large_reserved_peak.store(counters_.large_reserved.load());
}

}  // namespace internal
}  // namespace umpool
