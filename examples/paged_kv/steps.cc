// examples/paged_kv/steps.cc: the demo engine's decode steps (steps.h).
#include "examples/paged_kv/steps.h"

#include <algorithm>
#include <utility>

#include "examples/paged_kv/die.h"
#include "examples/paged_kv/kv_kernels.h"

namespace paged_kv {
namespace {

void CheckCuda(cudaError_t e, const char* what) { paged_kv::CheckCuda(e, "steps", what); }

template <typename T>
T CheckPool(absl::StatusOr<T> v, const char* what) {
  paged_kv::CheckPool(v.status(), "steps", what);
  return *std::move(v);
}

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

Steps::Steps(umpool::Pool& pool, int max_requests, bool pipelined, bool timed, cudaStream_t stream)
    : pool_(pool), pipelined_(pipelined), timed_(timed), stream_(stream), max_requests_(max_requests) {
  // Per step: every request's block table, id and length, in one block the
  // kernel reads (copied in from pinned memory, as engines do: the CPU never
  // touches the GPU's pages), and the sums copied back.
  args_bytes_ = static_cast<std::size_t>(max_requests) * (sizeof(void*) + 2 * sizeof(int));
  dev_args_ = CheckPool(pool_.Allocate(args_bytes_, stream_), "allocating the step arguments");
  dev_sums_ = static_cast<double*>(
      CheckPool(pool_.Allocate(max_requests * sizeof(double), stream_), "allocating the sums"));
  for (int s = 0; s < 2; ++s) {
    void* args = nullptr;
    CheckCuda(cudaMallocHost(&args, args_bytes_), "cudaMallocHost");
    tables_[s] = static_cast<float***>(args);
    ids_[s] = reinterpret_cast<int*>(tables_[s] + max_requests);
    lengths_[s] = ids_[s] + max_requests;
    CheckCuda(cudaMallocHost(reinterpret_cast<void**>(&sums_[s]), max_requests * sizeof(double)),
              "cudaMallocHost");
    CheckCuda(cudaEventCreateWithFlags(&done_[s], timed_ ? cudaEventDefault : cudaEventDisableTiming),
              "cudaEventCreate");
    if (timed_) CheckCuda(cudaEventCreate(&start_[s]), "cudaEventCreate");
  }
}

Steps::~Steps() {
  Drain();
  paged_kv::CheckPool(pool_.Deallocate(dev_args_, stream_), "steps", "freeing the step arguments");
  paged_kv::CheckPool(pool_.Deallocate(dev_sums_, stream_), "steps", "freeing the sums");
  for (int s = 0; s < 2; ++s) {
    cudaFreeHost(tables_[s]);
    cudaFreeHost(sums_[s]);
    cudaEventDestroy(done_[s]);
    if (timed_) cudaEventDestroy(start_[s]);
  }
}

void Steps::Begin() { begun_ = Clock::now(); }

void Steps::Launch(int max_blocks, std::vector<Expect> expect) {
  const int n = static_cast<int>(expect.size());
  if (timed_) CheckCuda(cudaEventRecord(start_[slot_], stream_), "cudaEventRecord");
  if (n > 0) {  // (a group whose every request sits out runs no step)
    auto* dev_tables = static_cast<float***>(dev_args_);
    auto* dev_ids = reinterpret_cast<int*>(dev_tables + max_requests_);
    auto* dev_lengths = dev_ids + max_requests_;
    CheckCuda(cudaMemcpyAsync(dev_args_, tables_[slot_], args_bytes_, cudaMemcpyHostToDevice, stream_),
              "copying the step arguments in");
    CheckCuda(LaunchDecodeStep(dev_tables, dev_ids, dev_lengths, n, max_blocks, true, dev_sums_, stream_),
              "launching a decode step");
    CheckCuda(cudaMemcpyAsync(sums_[slot_], dev_sums_, n * sizeof(double), cudaMemcpyDeviceToHost, stream_),
              "copying the sums back");
  }
  CheckCuda(cudaEventRecord(done_[slot_], stream_), "cudaEventRecord");
  in_flight_.push_back(InFlight{slot_, begun_, std::move(expect)});
  slot_ ^= 1;
}

void Steps::Settle() {
  while (in_flight_.size() > (pipelined_ ? 1u : 0u)) Complete();
}

void Steps::Drain() {
  while (!in_flight_.empty()) Complete();
}

void Steps::Complete() {
  InFlight f = std::move(in_flight_.front());
  in_flight_.erase(in_flight_.begin());
  const Clock::time_point w0 = Clock::now();
  CheckCuda(cudaEventSynchronize(done_[f.slot]), "waiting for a decode step");
  const Clock::time_point done = Clock::now();
  wait_ms_ += Ms(w0, done);
  if (timed_) {
    float ms = 0;
    CheckCuda(cudaEventElapsedTime(&ms, start_[f.slot], done_[f.slot]), "cudaEventElapsedTime");
    gpu_ms_ += ms;
  }
  step_ms_.push_back(Ms(std::max(f.begun, last_done_), done));
  last_done_ = done;
  for (std::size_t j = 0; j < f.expect.size(); ++j) {
    if (sums_[f.slot][j] != f.expect[j].sum) ++mismatches_;
    if (f.expect[j].round_trip) ++round_trips_;
  }
  tokens_ += static_cast<long>(f.expect.size());
}

}  // namespace paged_kv
