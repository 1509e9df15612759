// examples/paged_kv/engine.cc: the demo engine's run (engine.h).
#include "examples/paged_kv/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "examples/paged_kv/die.h"
#include "examples/paged_kv/fetcher.h"
#include "examples/paged_kv/kv_kernels.h"
#include "examples/paged_kv/steps.h"

namespace paged_kv {
namespace {

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}


}  // namespace

Result Run(umpool::Pool& pool, umpool::Pool& table_pool, int steps, int n_requests,
           const Plan& plan, unsigned seed, cudaStream_t compute, cudaStream_t side,
           cudaStream_t evict) {
  const double pause_fraction = plan.pause_fraction;
  const bool turns = plan.mode == Mode::kBudget || plan.mode == Mode::kFaulting;
  std::mt19937 rng(seed);
  cudaEvent_t fetched, evicted, ahead_done, ahead_evicted, turn_started;
  CHECK_CUDA(cudaEventCreateWithFlags(&ahead_evicted, cudaEventDisableTiming));
  CHECK_CUDA(cudaEventCreateWithFlags(&fetched, cudaEventDisableTiming));
  CHECK_CUDA(cudaEventCreateWithFlags(&turn_started, cudaEventDisableTiming));
  CHECK_CUDA(cudaEventCreateWithFlags(&ahead_done, cudaEventDisableTiming));
  CHECK_CUDA(cudaEventCreateWithFlags(&evicted, cudaEventDisableTiming));
  // The decode steps: launched, checked, one ahead of the GPU if pipelined.
  paged_kv::Steps decode(pool, n_requests, plan.pipelined, plan.timed, compute);
  std::vector<Request> reqs;
  int next_id = 0;
  Result res;
  int active = 0;  // the group whose turn it is
  paged_kv::Fetcher fetcher(pool, side, evict, turn_started, ahead_evicted, ahead_done);
  fetcher.set_piece_blocks(plan.piece_blocks);
  fetcher.set_growth_after_jobs(std::getenv("PAGED_KV_GROWTH_AFTER_JOBS") != nullptr);
  // Writes request q's prompt into newly allocated blocks.
  auto prefill = [&](Request& q) {
    // The table's block may be a retired request's that a launched step reads.
    decode.Drain();
    for (int b = 0; b * kBlockTokens < q.length; ++b) {
      q.blocks.push_back(Check(pool.Allocate(kBlockBytes, compute, umpool::Role::kKv)));
      q.table[b] = static_cast<float*>(q.blocks.back());
    }
    CHECK_CUDA(cudaStreamSynchronize(compute));  // the table is written by the CPU above
    CHECK_CUDA(paged_kv::LaunchPrefill(q.table, q.id, q.length, compute));
    q.waiting = false;
  };
  // kBudget: blocks the budget has left now beside the running group (with
  // its growth until the turn ends, `left` steps) and the next group's
  // blocks fetched ahead.
  // Whether request q decodes in this turn (its group's, or kept running;
  // not sitting out or waiting); without turns, every request.
  auto in_turn = [&](const Request& q) {
    return (!turns || q.group == active || q.kept) && !q.sits_out && !q.waiting;
  };
  auto budget_left = [&](int left) {
    std::size_t held = 0;
    for (const Request& q : reqs) {
      if (q.ahead) held += q.blocks.size();
      if (in_turn(q)) held += BlocksAfter(q.length, q.target, left);
    }
    const std::size_t budget = plan.budget / kBlockBytes;
    return budget > held ? budget - held : 0;
  };
  auto admit = [&](int step) {
    Request q;
    q.id = next_id++;
    q.group = step == 0 ? q.id % plan.groups : active;  // later admissions join the running group
    q.length = 16 + static_cast<int>(rng() % (300 * plan.context));
    q.target = q.length + 64 + static_cast<int>(rng() % 400);
    q.table = static_cast<float**>(Check(table_pool.Allocate(MaxBlocks(plan) * sizeof(void*), compute)));
    for (int t = 0; t < q.length; ++t) q.expected += TokenSum(q.id, t);
    if ((plan.mode == Mode::kBudget || plan.keep_running) && step > 0) {
      // With a budget, only if it fits beside the running group; else it
      // waits for the next group's turn (prefilled then, if it fits).
      const int left = plan.group_steps - step % plan.group_steps;
      if (BlocksAfter(q.length, q.target, left) > budget_left(left)) {
        q.group = (active + 1) % plan.groups;
        q.waiting = true;
      }
    }
    if (!q.waiting) prefill(q);
    ++res.admitted;
    reqs.push_back(std::move(q));
  };
  auto device_used = [] {
    std::size_t free = 0, total = 0;
    CHECK_CUDA(cudaMemGetInfo(&free, &total));
    return total - free;
  };
  const std::size_t used_at_start = device_used();
  // PAGED_KV_CHECK_RESIDENT=1: before each step, every block it reads is
  // asked where the pool keeps it (a lock per block: slower steps).
  const bool check_resident = std::getenv("PAGED_KV_CHECK_RESIDENT") != nullptr;
  std::vector<int> ran_ahead;  // check_resident: ids of this turn's requests fetched ahead
  for (int step = 0; step < steps; ++step) {
    if (step % 16 == 0) {
      const std::size_t used = device_used();
      if (used > used_at_start) res.peak_device_added_bytes = std::max(res.peak_device_added_bytes, used - used_at_start);
      const umpool::RoleResidency kv = pool.GetResidency(umpool::Role::kKv);
      res.peak_kv_resident_bytes = std::max(res.peak_kv_resident_bytes, kv.resident_bytes);
      res.peak_kv_on_gpu_bytes = std::max(res.peak_kv_on_gpu_bytes, kv.reserved_bytes - std::min(kv.reserved_bytes, kv.host_bytes));
    }
    while (static_cast<int>(reqs.size()) < n_requests) admit(step);
    std::size_t kv_blocks = 0;
    for (const Request& q : reqs) kv_blocks += q.blocks.size();
    res.peak_kv_bytes = std::max(res.peak_kv_bytes, kv_blocks * kBlockBytes);
    // Pause some running requests: evict their KV to host memory.
    for (Request& q : reqs) {
      if (q.paused_until < step && std::uniform_real_distribution<>(0, 1)(rng) < pause_fraction) {
        q.paused_until = step + 2;
        q.fetched = false;
        q.resumed = true;
        Check(pool.PrefetchBlocks(q.blocks.data(), q.blocks.size(), umpool::Location::kHost, compute));
        ++res.evictions;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    decode.Begin();
    const bool turn_starts = turns && step % plan.group_steps == 0;
    if (turn_starts) {
      ++res.turns;
      fetcher.Join();  // the last turn's calls are all issued (ahead_done recorded)
      // Growth blocks the last turn did not use go back (a request that
      // joined late decoded fewer steps).
      std::vector<void*> unused = fetcher.TakeUnclaimed();
      for (Request& q : reqs) {
        unused.insert(unused.end(), q.growth.begin(), q.growth.end());
        q.growth.clear();
        q.growth_job = -1;
      }
      for (void* b : unused) Check(pool.Deallocate(b));
      // A new turn: the next group runs from now on; the previous one is out.
      const int turn = step / plan.group_steps;
      active = turn % plan.groups;
      const int previous = step > 0 ? (turn + plan.groups - 1) % plan.groups : -1;
      for (Request& q : reqs) {
        q.job = -1;  // the last turn's jobs are done with
        // Evicted since it last ran: its first step checks the round trip.
        if (q.group == active && step > 0 && !q.kept) q.resumed = true;
      }
      paged_kv::TurnWork work;
      work.growth_bytes = kBlockBytes;
      // Which requests run this turn (with a budget: what it holds), which
      // keep running, which leave. Whole groups take turns otherwise.
      const bool planned = plan.mode == Mode::kBudget || plan.keep_running;
      paged_kv::TurnPlan tp;
      if (planned) {
        tp = PlanTurn(reqs, active, previous, (turn + 1) % plan.groups, plan, &work.ahead);
      } else {
        for (int k = 0; k < static_cast<int>(reqs.size()); ++k) {
          if (reqs[k].group == previous) tp.leaving.push_back(k);
        }
      }
      std::vector<void*> out;
      for (int k : tp.leaving) out.insert(out.end(), reqs[k].blocks.begin(), reqs[k].blocks.end());
      if (check_resident) {  // for the report of evicted reads below
        ran_ahead.clear();
        for (int k : tp.ahead) ran_ahead.push_back(reqs[k].id);
      }
      if (plan.mode == Mode::kBudget && (!tp.kept.empty() || !tp.ahead.empty())) {
        // Fetched again (nothing moves) before any allocation picks the
        // budget's victims: those must be the requests that left. The ones
        // fetched ahead too: fetched early in the last turn, they are older
        // than the blocks the last turn's admissions allocated, so the
        // prefill of a waiting request below (before the fetch thread
        // evicts the group that left) took them as the budget's victims
        // and this turn's steps read them evicted (H200, three groups: on
        // vmm memory an illegal address at the first step of the second
        // turn, every run; PAGED_KV_CHECK_RESIDENT=1 named the blocks).
        std::vector<void*> keep;
        for (int k : tp.kept) keep.insert(keep.end(), reqs[k].blocks.begin(), reqs[k].blocks.end());
        for (int k : tp.ahead) keep.insert(keep.end(), reqs[k].blocks.begin(), reqs[k].blocks.end());
        Check(pool.PrefetchBlocks(keep.data(), keep.size(), umpool::Location::kDevice, compute));
      }
      res.evictions += static_cast<long>(out.size());
      // The fetch thread evicts the previous group after the last step that
      // read it (an engine's eviction: the host does not wait for it). With a
      // budget it then brings in the rest of this group, request by request
      // (each joins the running batch once its blocks are in), and, fetching
      // ahead, as much of the next group as fits. Served by page faults, it
      // only evicts. Without fetch-ahead the budget picks its victims itself.
      if (plan.mode == Mode::kFaulting || plan.fetch_ahead) work.out = std::move(out);
      CHECK_CUDA(cudaEventRecord(turn_started, compute));
      // What was fetched ahead must be in before this group's steps.
      if (plan.mode == Mode::kBudget) CHECK_CUDA(cudaStreamWaitEvent(compute, ahead_done, 0));
      for (int k : tp.fetch) {
        // At step 0 too: admissions past the budget evicted some.
        if (reqs[k].waiting) {
          prefill(reqs[k]);
          continue;
        }
        if (plan.mode == Mode::kBudget) {
          // Small requests share a job: one batched call for 64 MiB or more.
          if (work.jobs.empty() || work.jobs.back().size() >= 32) {
            work.jobs.emplace_back();
            work.growth.emplace_back();
          }
          Request& q = reqs[k];
          q.job = static_cast<int>(work.jobs.size()) - 1;
          q.growth_job = q.job;
          q.job_slot = static_cast<int>(work.growth.back().size());
          work.jobs.back().insert(work.jobs.back().end(), q.blocks.begin(), q.blocks.end());
          // The blocks it grows into this turn: taken by the fetch thread too.
          work.growth.back().push_back(static_cast<int>(TurnNeed(q, plan) - q.blocks.size()));
        }
      }
      fetcher.Start(std::move(work));
    }
    if (plan.mode == Mode::kPaused) {
      // The KV fetched ahead during the previous step must be back before
      // this step's kernel reads it (usually it already is).
      CHECK_CUDA(cudaStreamWaitEvent(compute, fetched, 0));
      // Fetch ahead, on the side stream, the requests resuming next step;
      // their eviction (on the compute stream) must come first.
      CHECK_CUDA(cudaEventRecord(evicted, compute));
      CHECK_CUDA(cudaStreamWaitEvent(side, evicted, 0));
      for (Request& q : reqs) {
        if (!q.fetched && q.paused_until == step) {
          Check(pool.PrefetchBlocks(q.blocks.data(), q.blocks.size(), umpool::Location::kDevice, side));
          q.fetched = true;
        }
      }
      CHECK_CUDA(cudaEventRecord(fetched, side));
    }
    // None of the running group is in yet: wait for its first request.
    if (turns) {
      int first = -1;
      for (const Request& q : reqs) {
        if (!in_turn(q)) continue;
        if (q.job < 0) { first = -1; break; }  // one is in already
        first = first < 0 ? q.job : std::min(first, q.job);
      }
      if (first >= 0) {
        const auto w0 = std::chrono::steady_clock::now();
        fetcher.Wait(first);
        res.first_wait_ms += Ms(w0, std::chrono::steady_clock::now());
      }
    }
    // Grow block tables where the next token starts a new block.
    float*** tables = decode.tables();
    int* ids = decode.ids();
    int* lengths = decode.lengths();
    int n = 0;
    double alloc_ms = 0;  // this step's growth allocations (PAGED_KV_PROFILE)
    std::vector<int> running;
    const int jobs_in = turns ? fetcher.ReadyCount() : 0;
    for (int k = 0; k < static_cast<int>(reqs.size()); ++k) {
      Request& q = reqs[k];
      if (q.paused_until >= step || !in_turn(q)) continue;
      if (q.job >= 0) {  // being fetched: joins once its blocks are in
        if (q.job >= jobs_in) continue;
        CHECK_CUDA(cudaStreamWaitEvent(compute, fetcher.Event(q.job), 0));
        q.job = -1;
      }
      if (q.length % kBlockTokens == 0) {
        const auto a0 = std::chrono::steady_clock::now();
        if (q.growth_job >= 0 && q.growth.empty()) {  // allocated by the fetch thread yet?
          q.growth = fetcher.TakeGrowth(q.growth_job, q.job_slot);
          if (!q.growth.empty()) q.growth_job = -1;
        }
        if (!q.growth.empty()) {  // allocated by the fetch thread
          q.blocks.push_back(q.growth.back());
          q.growth.pop_back();
        } else {
          q.blocks.push_back(Check(pool.Allocate(kBlockBytes, compute, umpool::Role::kKv)));
        }
        alloc_ms += Ms(a0, std::chrono::steady_clock::now());
        q.table[q.length / kBlockTokens] = static_cast<float*>(q.blocks.back());
      }
      tables[n] = q.table;
      ids[n] = q.id;
      lengths[n] = q.length;
      running.push_back(k);
      ++n;
    }
    int max_blocks = 0;
    for (int k : running) max_blocks = std::max(max_blocks, reqs[k].length / kBlockTokens + 1);
    if (check_resident && plan.mode == Mode::kBudget) {  // what the step reads must be on the GPU
      for (int k : running) {
        const Request& q = reqs[k];
        for (std::size_t i = 0; i < q.blocks.size(); ++i) {
          if (Check(pool.BlockLocation(q.blocks[i])) == umpool::Location::kDevice) continue;
          if (++res.evicted_reads <= 5) {  // the first few, to tell which plan put it there
            std::printf("evicted read: step %d (turn step %d), request %d of group %d (active %d), "
                        "block %zu of %zu, fetched ahead %d, kept %d\n",
                        step, step % plan.group_steps, q.id, q.group, active, i, q.blocks.size(),
                        std::count(ran_ahead.begin(), ran_ahead.end(), q.id) > 0 ? 1 : 0, q.kept ? 1 : 0);
          }
        }
      }
    }
    // The step appends a token to each: what its sum must then be, and what
    // it reads (every token, the new one included).
    std::vector<paged_kv::Steps::Expect> expect;
    double read_gib = 0;
    for (int k : running) {
      Request& q = reqs[k];
      q.expected += TokenSum(q.id, q.length);
      ++q.length;
      expect.push_back({q.expected, q.resumed});  // resumed: its round trip is checked
      q.resumed = false;
      read_gib += q.length * (kBlockBytes / kBlockTokens) / 1073741824.0;
    }
    const auto t_cuda = std::chrono::steady_clock::now();
    decode.Launch(max_blocks, std::move(expect));
    const auto t_launched = std::chrono::steady_clock::now();
    fetcher.Launched();
    if (turn_starts) res.turn_host_ms += Ms(t0, t_launched);
    // The host's share of a step, while the fetch thread makes its calls
    // and after (PAGED_KV_PROFILE).
    const int busy = turns && fetcher.busy() ? 1 : 0;
    res.prep_ms[busy] += Ms(t0, t_launched);
    res.alloc_ms[busy] += alloc_ms;
    res.launch_ms[busy] += Ms(t_cuda, t_launched);
    ++res.prep_steps[busy];
    const double waited = decode.wait_ms(), gpu = decode.gpu_ms();
    decode.Settle();
    res.read_wait_ms[busy] += decode.wait_ms() - waited;
    res.read_gpu_ms[busy] += decode.gpu_ms() - gpu;
    res.read_gib[busy] += read_gib;
    // Retire finished requests; their KV is freed (and discarded).
    for (auto it = reqs.begin(); it != reqs.end();) {
      if (it->length >= it->target && it->paused_until < step && it->job < 0 &&
          (!turns || it->group == active || it->kept)) {
        for (void* b : it->blocks) Check(pool.Deallocate(b, compute));
        // Its growth blocks go too, those it never took from the fetch thread
        // included (before, they stayed allocated and resident until the
        // turn's end, which the plan's budget_left no longer counted).
        if (it->growth_job >= 0) {
          std::vector<void*> untaken = fetcher.TakeGrowth(it->growth_job, it->job_slot);
          it->growth.insert(it->growth.end(), untaken.begin(), untaken.end());
        }
        for (void* b : it->growth) Check(pool.Deallocate(b));
        Check(table_pool.Deallocate(it->table, compute));
        ++res.retired;
        it = reqs.erase(it);
      } else {
        ++it;
      }
    }
  }
  fetcher.Join();
  decode.Drain();
  res.fetch_host_ms = fetcher.host_ms();
  CHECK_CUDA(cudaDeviceSynchronize());
  for (void* b : fetcher.TakeUnclaimed()) Check(pool.Deallocate(b));
  for (Request& q : reqs) {
    for (void* b : q.blocks) Check(pool.Deallocate(b, compute));
    for (void* b : q.growth) Check(pool.Deallocate(b));
    Check(table_pool.Deallocate(q.table, compute));
  }
  res.wait_ms = decode.wait_ms();
  res.tokens = decode.tokens();
  res.mismatches = decode.mismatches();
  res.round_trips_checked = decode.round_trips();
  std::vector<double> step_ms = decode.step_ms();
  std::sort(step_ms.begin(), step_ms.end());
  double total = 0;
  for (double x : step_ms) total += x;
  res.mean_ms = total / static_cast<double>(step_ms.size());
  res.us_per_token = total * 1e3 / static_cast<double>(std::max<long>(1, res.tokens));
  res.p99_ms = step_ms[static_cast<std::size_t>(0.99 * (step_ms.size() - 1))];
  res.tokens_per_s = static_cast<double>(res.tokens) / (total / 1e3);
  cudaEventDestroy(fetched);
  cudaEventDestroy(evicted);
  cudaEventDestroy(ahead_done);
  cudaEventDestroy(ahead_evicted);
  cudaEventDestroy(turn_started);
  return res;
}

}  // namespace paged_kv
