// examples/paged_kv/fetcher.h: the demo engine's fetch thread.
//
// At a turn the engine evicts the previous group and brings in what the
// current group still lacks. The pool's calls for that take host time (the
// driver refills dropped pages and queues the copies: about 33 ms of host
// time a turn for a group of 1.5 GiB, measured on an H200 with
// PAGED_KV_PROFILE=1), during which a single-threaded engine launches no
// decode step. The fetcher makes those calls on a thread of its own, a few
// requests at a time (smallest first), so the requests already on the GPU
// keep decoding and each of the others joins the running batch as soon as
// its blocks are in (Ready), as an engine's swap-in does.
//
// One turn's work (Start), in order:
//   1. `out` evicted to the host on `evict_stream`, after `evict_after`
//      (recorded on the compute stream);
//   2. each job's blocks to the GPU on `fetch_stream`, each job followed by
//      an event (Ready / Event);
//   3. the blocks the requests will grow into during the turn, allocated on
//      `fetch_stream` (the budget's evictions for them run here, not in the
//      decode loop; after every job, so that no request joins later for
//      them), followed by an event (TakeGrowth);
//   4. `ahead` (the next group's blocks that fit beside this one), after the
//      eviction; `ahead_done` is recorded on `fetch_stream` last.
// Any failing pool or CUDA call prints its error and exits, as the rest of
// the demo does.
#ifndef UMPOOL_EXAMPLES_PAGED_KV_FETCHER_H_
#define UMPOOL_EXAMPLES_PAGED_KV_FETCHER_H_

#include <cuda_runtime_api.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "umpool/umpool.hpp"

namespace paged_kv {

struct TurnWork {
  std::vector<void*> out;                // the previous group's blocks (may be empty)
  std::vector<std::vector<void*>> jobs;  // a few requests' blocks each, in fetch order
  std::vector<std::vector<int>> growth;  // per job, per request: blocks it grows into
  std::size_t growth_bytes = 0;          // of one growth block (role kv)
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
  // The growth blocks of job `i`'s `k`th request, taken by the caller (freed
  // with Pool::Deallocate; they are the fetch stream's): allocated with the
  // job, before its event (Event(i), which the caller waited on to join the
  // request); none before the job is issued. Never blocks.
  std::vector<void*> TakeGrowth(int i, int k);
  // After Join: the growth blocks nobody took (their requests never joined).
  std::vector<void*> TakeUnclaimed();
  // Pacing (0, the default: off): the thread issues a job's blocks
  // `blocks` at a time, each piece right after the decode loop launched a
  // step (Launched) or 0.5 ms after the last piece, so that its driver calls
  // run while the loop waits for the GPU rather than delay the loop's launch.
  void set_piece_blocks(int blocks) { piece_blocks_ = blocks; }
  // The order before the nineteenth session, for an A/B: every job's growth
  // allocated after the last job (a request that joined earlier and needed
  // a block allocated it itself, past the budget's plan).
  void set_growth_after_jobs(bool on) { growth_after_jobs_ = on; }
  // The decode loop launched a step (any thread; never blocks).
  void Launched() { launched_.fetch_add(1, std::memory_order_release); }
  // Joins the thread (every call issued).
  void Join();
  // Host time the thread spent in pool calls, in total.
  double host_ms() const { return host_ms_; }
  // The thread is still making this turn's calls.
  bool busy() const { return busy_.load(std::memory_order_acquire); }

 private:
  void Run(TurnWork work);
  void Pace();  // the thread, before each piece
  // `n` growth blocks of `bytes` (role kv) on the fetch stream.
  std::vector<void*> AllocateGrowth(int n, std::size_t bytes);
  // `blocks` (if any) moved to `where` on `stream`, after `after`.
  void MoveAfter(const std::vector<void*>& blocks, umpool::Location where, cudaStream_t stream,
                 cudaEvent_t after, const char* what);

  umpool::Pool& pool_;
  cudaStream_t fetch_stream_, evict_stream_;
  cudaEvent_t evict_after_, evicted_, ahead_done_;
  std::vector<cudaEvent_t> events_;
  std::vector<std::vector<std::vector<void*>>> growth_;  // [job][request]: written before issued_ passes the job
  std::atomic<int> issued_{0};
  std::atomic<bool> busy_{false};
  std::atomic<long> launched_{0};
  int piece_blocks_ = 0;
  bool growth_after_jobs_ = false;
  std::mutex late_mu_;  // growth_ with growth_after_jobs_
  long paced_at_ = -1;  // the thread's: launched_ when it issued its last piece (-1: none yet)
  int ready_ = 0;  // ReadyCount's cursor (the caller's thread)
  double host_ms_ = 0;  // written by the thread, read after Join
  std::thread thread_;
};

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_FETCHER_H_
