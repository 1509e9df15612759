// examples/paged_kv/fetcher.h: the demo engine's fetch thread.
//
// At a turn the engine evicts the previous group and brings in what the
// current group still lacks. The pool's calls for that take host time (the
// driver refills dropped pages and queues the copies: about 33 ms of host
// time a turn for a group of 1.5 GiB, measured on an H200 with
// PAGED_KV_PROFILE=1), during which a single-threaded engine launches no
// decode step. The fetcher makes those calls on a thread of its own, request
// by request (smallest first), so the requests already on the GPU keep
// decoding and each of the others joins the running batch as soon as its
// blocks are in (Ready), as an engine's swap-in does.
//
// One turn's work (Start): evict `out` to the host on `evict_stream` (after
// `evict_after`, recorded on the compute stream), then each job's blocks to
// the GPU on `fetch_stream`, each followed by an event, then `ahead` (the
// next group's blocks that fit beside this one) after the eviction; records
// `ahead_done` on `fetch_stream` last. Any failing pool or CUDA call prints
// its error and exits, as the rest of the demo does.
#ifndef UMPOOL_EXAMPLES_PAGED_KV_FETCHER_H_
#define UMPOOL_EXAMPLES_PAGED_KV_FETCHER_H_

#include <cuda_runtime_api.h>

#include <atomic>
#include <thread>
#include <vector>

#include "umpool/umpool.hpp"

namespace paged_kv {

struct TurnWork {
  std::vector<void*> out;                // the previous group's blocks (may be empty)
  std::vector<std::vector<void*>> jobs;  // per request, in fetch order
  std::vector<void*> ahead;              // the next group's blocks fetched ahead
};

class Fetcher {
 public:
  Fetcher(umpool::Pool& pool, cudaStream_t fetch_stream, cudaStream_t evict_stream,
          cudaEvent_t evict_after, cudaEvent_t evicted, cudaEvent_t ahead_done);
  ~Fetcher();  // joins the thread
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Joins the previous turn's thread and starts this one's.
  void Start(TurnWork work);
  // Jobs of the current turn issued and with their blocks in: jobs [0, n)
  // (they complete in order: one stream). Never blocks; queries one event
  // per job at most once it is done.
  int ReadyCount();
  // Blocks until job `i` is issued and its blocks are in.
  void Wait(int i);
  // Its event (for the compute stream to wait on once Ready).
  cudaEvent_t Event(int i) const { return events_[i]; }
  // Joins the thread (every call issued).
  void Join();
  // Host time the thread spent in pool calls, in total.
  double host_ms() const { return host_ms_; }
  // The thread is still making this turn's calls.
  bool busy() const { return busy_.load(std::memory_order_acquire); }

 private:
  void Run(TurnWork work);

  umpool::Pool& pool_;
  cudaStream_t fetch_stream_, evict_stream_;
  cudaEvent_t evict_after_, evicted_, ahead_done_;
  std::vector<cudaEvent_t> events_;
  std::atomic<int> issued_{0};
  std::atomic<bool> busy_{false};
  int ready_ = 0;  // ReadyCount's cursor (the caller's thread)
  double host_ms_ = 0;  // written by the thread, read after Join
  std::thread thread_;
};

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_FETCHER_H_
