// tools/replay_report.h: umpool-replay's results: one allocator's figures
// over a trace, printed as a Markdown table or written as JSON.
#ifndef UMPOOL_TOOLS_REPLAY_REPORT_H_
#define UMPOOL_TOOLS_REPLAY_REPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/replay_trace.h"

namespace umpool::replay {

// What a pressure-mode replay adds to its result.
struct PressureFigures {
  long long evictions = 0;          // blocks the callback evicted
  long long evicted_bytes = 0;
  long long callbacks = 0;          // times the pool asked it
  long long peak_on_gpu_bytes = 0;  // peak of reserved minus evicted live bytes
  long long cap_bytes = 0;
};

struct Result {
  std::string name;
  std::int64_t peak_live = 0;
  long long peak_reserved = -1;
  long long peak_mapped = -1;
  long long backend_calls = -1, backend_calls_after_warmup = -1;
  double hit_rate = -1;
  double alloc_mean_ns = 0, alloc_p99_ns = 0, free_mean_ns = 0, free_p99_ns = 0;
  double seconds = 0;
  std::size_t records_skipped = 0;
  std::string roles_at_peak_live;  // RoleFigures() at the op after which live bytes peak
  long long ooms = 0;
  std::string first_oom;
  bool pressure_mode = false;
  PressureFigures pressure;
  double ratio() const {
    return peak_reserved < 0 || peak_live == 0 ? -1 : static_cast<double>(peak_reserved) / peak_live;
  }
};

// The table umpool-replay prints (tools read its columns by position).
void PrintTable(const std::vector<Result>& rs);
// The results as JSON (with the machine's context), to `path`; Fail()s if it
// cannot be written.
void WriteJson(const std::string& path, const std::string& trace, const Trace& t,
               const std::vector<Result>& rs);

}  // namespace umpool::replay

#endif  // UMPOOL_TOOLS_REPLAY_REPORT_H_
