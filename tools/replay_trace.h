// tools/replay_trace.h: umpool-replay's trace: reading and checking the CSV
// format of docs/trace.md (every free and record names a live id, every
// allocation a fresh one; errors name the line), and the figures the replay
// needs from it (peak live bytes and where, the warm-up mark, streams).
#ifndef UMPOOL_TOOLS_REPLAY_TRACE_H_
#define UMPOOL_TOOLS_REPLAY_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "umpool/types.h"

namespace umpool::replay {

struct Op {
  char kind;  // 'a' allocate, 'f' free, 'r' record-stream, 'm' mark
  std::uint64_t id;
  std::size_t bytes;
  int stream;
  Role role;
  int thread;  // the recording's thread number (0 when the trace has no thread column)
};

// Threads a trace may name (its thread column: 0 .. kMaxThreads - 1).
inline constexpr int kMaxThreads = 64;

struct Trace {
  std::vector<Op> ops;
  std::size_t warmup_end = 0;    // index of the first op after the warm-up mark (0: none)
  std::size_t peak_live_at = 0;  // index of the op after which live bytes peak
  std::int64_t peak_live = 0;
  int streams = 1;
  int threads = 1;
  std::size_t allocations = 0;
};

// Prints "umpool-replay: <why>" and exits with status 2 (bad input).
[[noreturn]] void Fail(const std::string& why);

// Reads and checks the trace at `path`; Fail()s on the first bad line.
Trace Load(const std::string& path);

// `t` run `times` times in a row, as a program that does its whole work again
// in the same process: each run's ids are its own (what one run leaves live
// stays live), and the warm-up mark is the end of the first run (the trace's
// own mark is dropped), so calls after it are what each repetition costs.
// `times` 1 returns `t` as it is (moved, not copied).
Trace Repeat(Trace t, int times);

// `t` with every allocation in the default role, as a PyTorch program's
// tensors are (the generated traces name weights, KV cache and activations).
Trace OneRole(Trace t);

}  // namespace umpool::replay

#endif  // UMPOOL_TOOLS_REPLAY_TRACE_H_
