// examples/paged_kv/steps.h: the demo engine's decode steps, launched and
// checked, one step ahead of the GPU when pipelined.
//
// A step's host work (admissions, a turn's start, growth allocations, its
// arguments) does not need the step before it to have finished: its inputs
// are the host's own state (a request's length advances when its step is
// launched), and the GPU's results, the KV sums, are only checked. Pipelined,
// the engine launches step s and only then waits for step s-1 and checks its
// sums, so the GPU has the next step queued while the host prepares it (an
// engine's asynchronous scheduling). Not pipelined, each step is waited for
// right after its launch and the GPU idles while the host prepares the next.
// Writing memory a launched step may read from the host (a new request's
// block table, in a block the pool may hand back from a retired request)
// comes after Drain.
//
// Step time (Result's step_ms): from the later of the step's Begin and the
// previous step's completion to its own completion, so the steps' times add
// up to the wall time while any step was launched or being prepared, whether
// pipelined or not (host work before Begin with nothing in flight, the
// admissions' prefill, is left out either way).
//
// Per slot (two): pinned host arguments and sums and an event; the device's
// argument and sum buffers (umpool blocks) are single, the steps running in
// order on one stream. Not thread-safe: the decode loop's thread only. Any
// failing pool or CUDA call prints its error and exits, as the demo does.
#ifndef UMPOOL_EXAMPLES_PAGED_KV_STEPS_H_
#define UMPOOL_EXAMPLES_PAGED_KV_STEPS_H_

#include <cuda_runtime_api.h>

#include <chrono>
#include <vector>

#include "umpool/umpool.hpp"

namespace paged_kv {

class Steps {
 public:
  // What the sum a step reads for one request must be.
  struct Expect {
    double sum = 0;
    bool round_trip = false;  // its first step after an evict/fetch round trip
  };
  // `timed`: each step's GPU time is measured too (timing events around its
  // copies and kernel; gpu_ms).
  Steps(umpool::Pool& pool, int max_requests, bool pipelined, bool timed, cudaStream_t stream);
  ~Steps();  // drains; frees its buffers
  Steps(const Steps&) = delete;
  Steps& operator=(const Steps&) = delete;

  // The next step starts being prepared (its host work that counts).
  void Begin();
  // The next step's arguments (pinned host memory, max_requests entries
  // each), written before Launch.
  float*** tables() const { return tables_[slot_]; }
  int* ids() const { return ids_[slot_]; }
  int* lengths() const { return lengths_[slot_]; }
  // Launches the step over the first expect.size() arguments (none: no
  // kernel, only a completion to wait for) on the stream, `max_blocks`
  // covering the longest. Settle comes before the next step's arguments.
  void Launch(int max_blocks, std::vector<Expect> expect);
  // Completes launched steps (waits for them, checks their sums) until, when
  // pipelined, one is left in flight, or none otherwise.
  void Settle();
  // Completes every launched step.
  void Drain();

  long mismatches() const { return mismatches_; }
  long round_trips() const { return round_trips_; }
  long tokens() const { return tokens_; }
  double wait_ms() const { return wait_ms_; }  // host time blocked on a step
  // GPU time of the steps (timed), from their first copy to their last: the
  // stream's work queued before a step (waits on other streams, a budget's
  // copies out) is left out, unlike in wait_ms.
  double gpu_ms() const { return gpu_ms_; }
  const std::vector<double>& step_ms() const { return step_ms_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct InFlight {
    int slot = 0;
    Clock::time_point begun;
    std::vector<Expect> expect;
  };
  void Complete();  // the oldest launched step

  umpool::Pool& pool_;
  const bool pipelined_;
  const bool timed_;
  cudaStream_t stream_;
  const int max_requests_;
  void* dev_args_ = nullptr;
  double* dev_sums_ = nullptr;
  float*** tables_[2] = {};
  int* ids_[2] = {};
  int* lengths_[2] = {};
  double* sums_[2] = {};  // pinned
  cudaEvent_t done_[2] = {};
  cudaEvent_t start_[2] = {};  // timed only
  std::size_t args_bytes_ = 0;
  int slot_ = 0;
  Clock::time_point begun_;
  Clock::time_point last_done_;
  std::vector<InFlight> in_flight_;  // oldest first, at most two
  long mismatches_ = 0, round_trips_ = 0, tokens_ = 0;
  double wait_ms_ = 0, gpu_ms_ = 0;
  std::vector<double> step_ms_;
};

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_STEPS_H_
