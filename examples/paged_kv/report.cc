// examples/paged_kv/report.cc: the demo's table rows (report.h).
#include "examples/paged_kv/report.h"

#include <algorithm>
#include <cstdio>

namespace paged_kv {

void PrintHeader() {
  std::printf("| mode | mean step | p99 step | tokens decoded | tokens/s | step time per token | "
              "evictions | round trips checked | mismatches | admitted | retired | GPU memory added (peak) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

void PrintRow(const char* name, const Result& r, bool profile, int steps) {
  if (profile) {
    std::fprintf(stderr, "%s: %ld turns; per turn, host %.2f ms in turn starts, %.2f ms in the "
                 "fetch thread, %.2f ms waiting for the first request; %.3f ms per step waiting for the "
                 "GPU\n", name, r.turns, r.turn_host_ms / std::max(1L, r.turns),
                 r.fetch_host_ms / std::max(1L, r.turns), r.first_wait_ms / std::max(1L, r.turns),
                 r.wait_ms / steps);
    std::fprintf(stderr, "  peaks: GPU memory added %.0f MiB (cudaMemGetInfo), KV resident %.0f MiB, "
                 "KV on the GPU %.0f MiB (the pool's figures); blocks read while evicted %ld\n",
                 r.peak_device_added_bytes / 1048576.0, r.peak_kv_resident_bytes / 1048576.0,
                 r.peak_kv_on_gpu_bytes / 1048576.0, r.evicted_reads);
    for (int b = 1; b >= 0; --b) {
      const double k = static_cast<double>(std::max(1L, r.prep_steps[b]));
      std::fprintf(stderr, "  %s: %ld steps, host per step from its start to its launch %.3f ms "
                   "(growth allocations %.3f ms, copy/launch calls %.3f ms)\n",
                   b ? "while the fetch thread ran" : "after", r.prep_steps[b], r.prep_ms[b] / k,
                   r.alloc_ms[b] / k, r.launch_ms[b] / k);
      std::fprintf(stderr, "    %.2f GiB of KV read per step; per GiB, %.3f ms waiting for the GPU, "
                   "%.3f ms of the steps' own GPU time\n", r.read_gib[b] / k,
                   r.read_wait_ms[b] / std::max(1e-9, r.read_gib[b]),
                   r.read_gpu_ms[b] / std::max(1e-9, r.read_gib[b]));
    }
  }
  std::printf("| %s | %.3f ms | %.3f ms | %ld | %.0f | %.1f us | %ld | %ld | %ld | %ld | %ld | %.0f MiB |\n",
              name, r.mean_ms, r.p99_ms, r.tokens, r.tokens_per_s, r.us_per_token, r.evictions,
              r.round_trips_checked, r.mismatches, r.admitted, r.retired,
              r.peak_device_added_bytes / 1048576.0);
}

}  // namespace paged_kv
