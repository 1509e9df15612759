// tools/replay_report.cc: umpool-replay's table and JSON.
#include "tools/replay_report.h"

#include <cinttypes>
#include <cstdio>

#include "bench/allocators.h"

namespace umpool::replay {
namespace {

std::string Num(long long v) { return v < 0 ? "n/a" : std::to_string(v); }

}  // namespace

void PrintTable(const std::vector<Result>& rs) {
  // Peak mapped (reserved plus the reserves not yet populated) comes last, so
  // that tools reading the columns by position (tools/replay-ab) keep working.
  std::printf("| allocator | peak live (MiB) | peak reserved (MiB) | reserved/live | backend calls | after warm-up | hit rate | alloc mean / p99 (ns) | free mean / p99 (ns) | replay (s) | peak mapped (MiB) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  auto mib = [](long long v, char* out, std::size_t n) {
    if (v >= 0) std::snprintf(out, n, "%.1f", v / 1048576.0);
  };
  for (const Result& r : rs) {
    char ratio[32] = "n/a", hit[32] = "n/a", reserved[32] = "n/a", mapped[32] = "n/a";
    if (r.ratio() >= 0) std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio());
    if (r.hit_rate >= 0) std::snprintf(hit, sizeof hit, "%.2f%%", 100 * r.hit_rate);
    mib(r.peak_reserved, reserved, sizeof reserved);
    mib(r.peak_mapped, mapped, sizeof mapped);
    std::printf("| %s | %.1f | %s | %s | %s | %s | %s | %.0f / %.0f | %.0f / %.0f | %.2f | %s |\n",
                r.name.c_str(), r.peak_live / 1048576.0, reserved, ratio, Num(r.backend_calls).c_str(),
                Num(r.backend_calls_after_warmup).c_str(), hit, r.alloc_mean_ns, r.alloc_p99_ns,
                r.free_mean_ns, r.free_p99_ns, r.seconds, mapped);
  }
}

void WriteJson(const std::string& path, const std::string& trace, const Trace& t,
               const std::vector<Result>& rs) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) Fail("cannot write " + path);
  std::fprintf(f, "{\"trace\":\"%s\",\"ops\":%zu,\"allocations\":%zu,\"streams\":%d,\"context\":{",
               trace.c_str(), t.ops.size(), t.allocations, t.streams);
  bool first = true;
  for (const auto& [k, v] : umpool::bench::MachineContext()) {
    std::fprintf(f, "%s\"%s\":\"%s\"", first ? "" : ",", k.c_str(), v.c_str());
    first = false;
  }
  std::fprintf(f, "},\"results\":[");
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const Result& r = rs[i];
    std::fprintf(f,
                 "%s\n{\"allocator\":\"%s\",\"peak_live_bytes\":%" PRId64 ",\"peak_reserved_bytes\":%lld,"
                 "\"peak_mapped_bytes\":%lld,\"ratio\":%.4f,\"backend_calls\":%lld,\"backend_calls_after_warmup\":%lld,"
                 "\"hit_rate\":%.6f,\"alloc_mean_ns\":%.1f,\"alloc_p99_ns\":%.1f,\"free_mean_ns\":%.1f,"
                 "\"free_p99_ns\":%.1f,\"seconds\":%.3f,\"records_skipped\":%zu%s%s",
                 i == 0 ? "" : ",", r.name.c_str(), r.peak_live, r.peak_reserved, r.peak_mapped, r.ratio(),
                 r.backend_calls, r.backend_calls_after_warmup, r.hit_rate, r.alloc_mean_ns,
                 r.alloc_p99_ns, r.free_mean_ns, r.free_p99_ns, r.seconds, r.records_skipped,
                 r.roles_at_peak_live.empty() ? "" : ",\"roles_at_peak_live\":",
                 r.roles_at_peak_live.c_str());
    if (r.pressure_mode) {
      std::string oom;  // the first failure's message, JSON-escaped
      for (char c : r.first_oom) {
        if (c == '"' || c == '\\') oom += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) oom += c;
      }
      std::fprintf(f,
                   ",\"pressure\":{\"cap_bytes\":%lld,\"ooms\":%lld,\"first_oom\":\"%s\",\"callbacks\":%lld,"
                   "\"evictions\":%lld,\"evicted_bytes\":%lld,\"peak_on_gpu_bytes\":%lld}",
                   r.pressure.cap_bytes, r.ooms, oom.c_str(), r.pressure.callbacks, r.pressure.evictions,
                   r.pressure.evicted_bytes, r.pressure.peak_on_gpu_bytes);
    }
    std::fprintf(f, "}");
  }
  std::fprintf(f, "\n]}\n");
  std::fclose(f);
}

}  // namespace umpool::replay
