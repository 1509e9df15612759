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

std::vector<int> PlanTurn(std::vector<Request>& reqs, int active, int next, const Plan& plan,
                          std::vector<void*>* ahead) {
  const std::size_t budget = plan.budget / kBlockBytes;
  std::size_t running = 0;
  std::vector<int> in;
  for (int k = 0; k < static_cast<int>(reqs.size()); ++k) {
    Request& q = reqs[k];
    q.sits_out = false;
    if (q.group != active) continue;
    if (q.ahead) {
      running += TurnNeed(q, plan);
    } else {
      in.push_back(k);
    }
    q.ahead = false;
  }
  std::sort(in.begin(), in.end(), [&](int x, int y) {
    const Request& a = reqs[x];
    const Request& b = reqs[y];
    if (a.sat_out != b.sat_out) return a.sat_out > b.sat_out;
    return TurnNeed(a, plan) < TurnNeed(b, plan);
  });
  std::vector<int> fetch;
  for (int k : in) {
    Request& q = reqs[k];
    const std::size_t need = TurnNeed(q, plan);
    if (running + need > budget) {
      q.sits_out = true;
      ++q.sat_out;
      continue;
    }
    running += need;
    q.sat_out = 0;
    fetch.push_back(k);
  }
  if (plan.fetch_ahead && next != active && plan.groups > 2) {
    std::size_t room = budget > running ? budget - running : 0;
    for (Request& q : reqs) {
      if (q.group != next || q.waiting || q.blocks.size() > room) continue;
      ahead->insert(ahead->end(), q.blocks.begin(), q.blocks.end());
      room -= q.blocks.size();
      q.ahead = true;
    }
  }
  return fetch;
}

}  // namespace paged_kv
