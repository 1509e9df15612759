// examples/paged_kv/report.h: what one run of the demo engine measured, and
// its row of the demo's table.
#ifndef UMPOOL_EXAMPLES_PAGED_KV_REPORT_H_
#define UMPOOL_EXAMPLES_PAGED_KV_REPORT_H_

#include <cstddef>

namespace paged_kv {

struct Result {
  // Where the steps' time went (PAGED_KV_PROFILE=1 prints it): the host in
  // turn starts, the fetch thread in its pool calls, waiting for the GPU.
  double turn_host_ms = 0, fetch_host_ms = 0, wait_ms = 0;
  double first_wait_ms = 0;  // blocked until a turn's first request was in
  double prep_ms[2] = {0, 0};  // step start to launch: [fetch thread idle, busy]
  long prep_steps[2] = {0, 0};
  double alloc_ms[2] = {0, 0}, launch_ms[2] = {0, 0};  // of which: growth allocations, launch calls
  // Waiting for the GPU per GiB of KV the steps read (not pipelined: about
  // the GPU's time per GiB), [fetch thread idle, busy].
  double read_wait_ms[2] = {0, 0}, read_gib[2] = {0, 0};
  double read_gpu_ms[2] = {0, 0};  // the steps' own GPU time (Steps::gpu_ms)
  long turns = 0;
  double mean_ms = 0, p99_ms = 0, us_per_token = 0;
  long tokens = 0;
  long evictions = 0, round_trips_checked = 0, mismatches = 0, admitted = 0, retired = 0;
  std::size_t peak_kv_bytes = 0;
  // GPU memory in use (cudaMemGetInfo: the whole device) at its highest
  // during the run, less what was in use when it started, sampled every 16
  // steps. What the run's pool holds on the vmm backend; on managed memory
  // dropped pages stay counted until the driver reuses them.
  std::size_t peak_device_added_bytes = 0;
  // The pool's own figures for KV at their highest (same samples):
  // RoleResidency::resident_bytes (what the budget counts) and what the
  // role holds on the GPU by the pool's count (reserved_bytes less
  // host_bytes: populated, not evicted; free blocks included).
  std::size_t peak_kv_resident_bytes = 0, peak_kv_on_gpu_bytes = 0;
  // PAGED_KV_CHECK_RESIDENT=1: blocks a step read that the pool had evicted
  // (Pool::BlockLocation kHost) — an engine bug: the budget took a running
  // request's block.
  long evicted_reads = 0;
  double tokens_per_s = 0;
};

// Prints the table's header (stdout).
void PrintHeader();
// Prints `r`'s row (stdout) and, with `profile` (PAGED_KV_PROFILE=1), where
// its `steps` steps' time went (stderr).
void PrintRow(const char* name, const Result& r, bool profile, int steps);

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_REPORT_H_
