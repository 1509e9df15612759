// examples/paged_kv/turns.cc: planning a turn under a KV budget (turns.h).
#include "examples/paged_kv/turns.h"

#include <algorithm>

namespace paged_kv {

std::size_t BlocksAfter(int length, int target, int steps) {
  const int end = std::min(length + steps, target);
  return static_cast<std::size_t>((std::max(end, 1) - 1) / kBlockTokens + 1);
}
std::size_t TurnNeed(const Request& q, const Plan& plan) {
  return BlocksAfter(q.length, q.target, plan.group_steps);
}

TurnPlan PlanTurn(std::vector<Request>& reqs, int active, int previous, int next, const Plan& plan,
                  std::vector<void*>* ahead) {
  const std::size_t budget = plan.budget / kBlockBytes;
  std::size_t running = 0;
  // Adds request k's need over the turn to what runs, if the budget holds it.
  auto fits = [&](int k) {
    const std::size_t need = TurnNeed(reqs[k], plan);
    if (running + need > budget) return false;
    running += need;
    return true;
  };
  std::vector<int> in;      // of the group, to fetch
  std::vector<int> on_gpu;  // of the group, kept running last turn
  std::vector<int> stay;    // ran last turn, not of this group
  TurnPlan turn;
  for (int k = 0; k < static_cast<int>(reqs.size()); ++k) {
    Request& q = reqs[k];
    // Ran last turn: on the GPU now.
    const bool ran = previous >= 0 && (q.group == previous || q.kept) && !q.sits_out && !q.waiting;
    q.sits_out = false;
    q.kept = false;
    if (q.group != active) {
      if (ran) stay.push_back(k);
      continue;
    }
    if (q.ahead) {  // fetched during the last turn
      running += TurnNeed(q, plan);
      turn.ahead.push_back(k);
    } else {
      (ran ? on_gpu : in).push_back(k);
    }
    q.ahead = false;
  }
  // Those of the group still on the GPU go first: nothing to fetch; one
  // that no longer fits leaves.
  auto by_need = [&](int x, int y) { return TurnNeed(reqs[x], plan) < TurnNeed(reqs[y], plan); };
  std::stable_sort(on_gpu.begin(), on_gpu.end(), by_need);
  for (int k : on_gpu) {
    if (fits(k)) {
      turn.kept.push_back(k);
      continue;
    }
    reqs[k].sits_out = true;
    ++reqs[k].sat_out;
    turn.leaving.push_back(k);
  }
  std::sort(in.begin(), in.end(), [&](int x, int y) {
    const Request& a = reqs[x];
    const Request& b = reqs[y];
    if (a.sat_out != b.sat_out) return a.sat_out > b.sat_out;
    return TurnNeed(a, plan) < TurnNeed(b, plan);
  });
  for (int k : in) {
    Request& q = reqs[k];
    if (!fits(k)) {
      q.sits_out = true;
      ++q.sat_out;
      continue;
    }
    q.sat_out = 0;
    turn.fetch.push_back(k);
  }
  if (plan.keep_running) std::stable_sort(stay.begin(), stay.end(), by_need);
  for (int k : stay) {
    if (plan.keep_running && fits(k)) {
      reqs[k].kept = true;
      turn.kept.push_back(k);
    } else {
      turn.leaving.push_back(k);
    }
  }
  if (plan.fetch_ahead && next != active && plan.groups > 2) {
    std::size_t room = budget > running ? budget - running : 0;
    for (Request& q : reqs) {
      if (q.group != next || q.waiting || q.kept || q.blocks.size() > room) continue;
      ahead->insert(ahead->end(), q.blocks.begin(), q.blocks.end());
      room -= q.blocks.size();
      q.ahead = true;
    }
  }
  return turn;
}

}  // namespace paged_kv
