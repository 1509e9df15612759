// examples/paged_kv/turns.h: the demo engine's requests and how a turn is
// planned under a KV budget (which requests of the group run, which of the
// next group are fetched ahead).
#ifndef UMPOOL_EXAMPLES_PAGED_KV_TURNS_H_
#define UMPOOL_EXAMPLES_PAGED_KV_TURNS_H_

#include <cstddef>
#include <vector>

#include "examples/paged_kv/kv_layout.h"

namespace paged_kv {

enum class Mode { kResident, kPaused, kBudget, kFaulting };

struct Plan {
  Mode mode = Mode::kResident;
  double pause_fraction = 0;  // kPaused
  int group_steps = 32;       // kBudget, kFaulting: steps per turn
  int groups = 2;             // kBudget, kFaulting: groups taking turns
  bool fetch_ahead = false;   // kBudget: fetch the next group during a turn
  std::size_t budget = 0;     // kBudget: the KV budget
  int context = 1;            // prompts of 16 to 16 + 300 * context tokens
  int piece_blocks = 16;      // kBudget: Fetcher::set_piece_blocks (0: whole jobs)
  // kBudget, kFaulting: requests of the outgoing groups keep running where
  // the budget holds them beside the incoming group (a scheduler preempts
  // only what must leave; the page-faulting run then follows the same plan).
  bool keep_running = false;
  // Every mode: the next step is prepared while the GPU runs the last one
  // (steps.h).
  bool pipelined = false;
  bool timed = false;  // every mode: the steps' GPU time too (PAGED_KV_PROFILE)
};

// Block-table entries a request of `plan` can need (its longest length).
inline int MaxBlocks(const Plan& plan) { return (16 + 300 * plan.context + 464) / kBlockTokens + 1; }

struct Request {
  int id = 0;
  int group = 0;  // kBudget, kFaulting: runs on the group's turns
  int length = 0;  // tokens in the cache
  int target = 0;  // retire at this length
  int paused_until = -1;
  bool fetched = true;
  bool ahead = false;  // kBudget with fetch_ahead: fetched during the last turn
  int job = -1;  // kBudget: its fetch in this turn (Fetcher job), until it joins
  int growth_job = -1;  // kBudget: its job this turn, for Fetcher::TakeGrowth (-1: taken)
  int job_slot = 0;      // ... and its place in that job
  std::vector<void*> growth;  // kBudget: blocks allocated ahead for this turn's growth
  bool sits_out = false;  // kBudget: its group's turn, but the budget holds it not
  bool kept = false;      // Plan::keep_running: not its group's turn, but it keeps running
  int sat_out = 0;  // turns of its group it sat out in a row
  bool waiting = false;  // kBudget: admitted, not prefilled until its group's turn has room
  bool resumed = false;  // paused and fetched back: check its KV at the next step
  float** table = nullptr;  // umpool block: MaxBlocks(plan) block pointers
  std::vector<void*> blocks;
  double expected = 0;  // sum of all its KV floats
};

// KV blocks a request of `length` tokens (up to `target`) holds after
// `steps` more decode steps: its blocks now and one more per block boundary
// it crosses.
std::size_t BlocksAfter(int length, int target, int steps);
// ... during a whole turn of `plan`.
std::size_t TurnNeed(const Request& q, const Plan& plan);

// What a turn does with the requests (indices into the request list).
struct TurnPlan {
  std::vector<int> fetch;    // of the incoming group, in fetch order
  std::vector<int> kept;     // ran last turn, keep running: nothing to fetch (keep_running)
  std::vector<int> ahead;    // of the incoming group, fetched ahead during the last turn: run
  std::vector<int> leaving;  // ran last turn, do not run this one: to evict
};

// At the start of `active`'s turn (`previous`'s turn ends; -1 at the first):
// the requests of the group that run this turn, what the budget holds with
// their growth (the others sit out, those that sat out longest and the
// smallest going first), so the budget never has to choose a running
// request's blocks as its victims. Those fetched ahead run (`ahead`); the others are
// returned in fetch order (a request admitted while the budget had no room
// for it, `waiting`, is prefilled by the caller instead). Replacements for
// requests retiring during the turn join it only if they fit then (see
// `admit`). With keep_running, those that ran last turn and fit beside them
// keep running (the smallest first: `kept`). Then, with fetch-ahead and more
// than two groups, as many of group `next`'s requests as fit beside them are
// marked `ahead` and their blocks returned in `ahead`.
TurnPlan PlanTurn(std::vector<Request>& reqs, int active, int previous, int next, const Plan& plan,
                  std::vector<void*>* ahead);

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_TURNS_H_
