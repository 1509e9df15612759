// examples/paged_kv/turns_test.cc: the paged-KV demo's turn planning under a
// KV budget (turns.h), on the CPU. The demo's wrong sums of the sixteenth
// session came from turns that held more than the budget; these tests pin
// the rules PlanTurn keeps: what runs fits with its growth, the longest
// waiting go first, what is fetched ahead fits beside the running group.
#include "examples/paged_kv/turns.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

namespace paged_kv {
namespace {

// A request of `group` with `length` tokens (up to `target`), holding the
// blocks its length needs (fake addresses: the planning only counts them).
Request Make(int id, int group, int length, int target) {
  Request q;
  q.id = id;
  q.group = group;
  q.length = length;
  q.target = target;
  const std::size_t n = BlocksAfter(length, target, 0);
  for (std::size_t b = 0; b < n; ++b) {
    q.blocks.push_back(reinterpret_cast<void*>(std::uintptr_t{0x1000} * (id * 1000 + b + 1)));
  }
  return q;
}

Plan Budget(std::size_t blocks, int groups = 2, int steps = 512) {
  Plan p;
  p.mode = Mode::kBudget;
  p.budget = blocks * kBlockBytes;
  p.groups = groups;
  p.group_steps = steps;
  return p;
}

TEST(TurnsTest, BlocksAfterCountsBlockBoundariesUpToTheTarget) {
  EXPECT_EQ(BlocksAfter(1, 1000, 0), 1u);
  EXPECT_EQ(BlocksAfter(256, 1000, 0), 1u);   // tokens 0..255: one block
  EXPECT_EQ(BlocksAfter(256, 1000, 1), 2u);   // token 256 starts the second
  EXPECT_EQ(BlocksAfter(100, 200, 1000), 1u); // retires at 200: never a second block
  EXPECT_EQ(BlocksAfter(300, 2000, 512), 4u); // up to token 811: blocks 0..3
  EXPECT_EQ(BlocksAfter(0, 10, 0), 1u);       // an empty request still has its first block
}

TEST(TurnsTest, AGroupThatFitsRunsWhollySmallestFirst) {
  std::vector<Request> reqs = {Make(0, 0, 2000, 2400), Make(1, 1, 500, 900), Make(2, 0, 300, 700),
                               Make(3, 0, 1000, 1200)};
  std::vector<void*> ahead;
  const std::vector<int> fetch = PlanTurn(reqs, 0, -1, 1, Budget(1000), &ahead).fetch;
  EXPECT_EQ(fetch, (std::vector<int>{2, 3, 0}));  // needs 3, 5, 10 blocks
  for (const Request& q : reqs) EXPECT_FALSE(q.sits_out) << q.id;
  EXPECT_TRUE(ahead.empty());
}

TEST(TurnsTest, WhatDoesNotFitSitsOutAndGoesFirstNextTime) {
  // Needs over a turn of 512 steps: 3 (id 0), 5 (id 1), 10 (id 2) blocks.
  std::vector<Request> reqs = {Make(0, 0, 300, 700), Make(1, 0, 1000, 1200), Make(2, 0, 2000, 2400)};
  std::vector<void*> ahead;
  std::vector<int> fetch = PlanTurn(reqs, 0, -1, 1, Budget(9), &ahead).fetch;
  EXPECT_EQ(fetch, (std::vector<int>{0, 1}));  // 3 + 5 fit in 9; 10 more would not
  EXPECT_TRUE(reqs[2].sits_out);
  EXPECT_EQ(reqs[2].sat_out, 1);
  // Its group's next turn: the one that sat out goes first and fits; the
  // smallest still fits beside it.
  fetch = PlanTurn(reqs, 0, -1, 1, Budget(13), &ahead).fetch;
  EXPECT_EQ(fetch, (std::vector<int>{2, 0}));
  EXPECT_EQ(reqs[2].sat_out, 0);
  EXPECT_FALSE(reqs[2].sits_out);
  EXPECT_TRUE(reqs[1].sits_out);
  EXPECT_EQ(reqs[1].sat_out, 1);
}

TEST(TurnsTest, RequestsFetchedAheadRunAndCountAgainstTheBudget) {
  std::vector<Request> reqs = {Make(0, 0, 300, 700), Make(1, 0, 1000, 1200), Make(2, 0, 2000, 2400)};
  reqs[2].ahead = true;  // fetched during the last turn: 10 blocks of the 12
  std::vector<void*> ahead;
  const std::vector<int> fetch = PlanTurn(reqs, 0, -1, 1, Budget(12), &ahead).fetch;
  EXPECT_EQ(fetch, (std::vector<int>{}));  // 3 more would make 13
  EXPECT_FALSE(reqs[2].sits_out);
  EXPECT_FALSE(reqs[2].ahead);  // its turn has come
  EXPECT_TRUE(reqs[0].sits_out);
  EXPECT_TRUE(reqs[1].sits_out);
}

TEST(TurnsTest, TheNextGroupIsFetchedAheadOnlyWhereItFits) {
  // Group 0 runs (3 + 5 blocks); group 1 holds 2, 4 and 8 blocks, one of
  // them admitted but not prefilled (waiting: nothing to fetch).
  std::vector<Request> reqs = {Make(0, 0, 300, 700), Make(1, 0, 1000, 1200),
                               Make(2, 1, 400, 500),  Make(3, 1, 1000, 1100),
                               Make(4, 1, 2000, 2100), Make(5, 1, 300, 400)};
  reqs[5].waiting = true;
  Plan plan = Budget(16, /*groups=*/3);
  plan.fetch_ahead = true;
  std::vector<void*> ahead;
  const std::vector<int> fetch = PlanTurn(reqs, 0, 2, 1, plan, &ahead).fetch;
  EXPECT_EQ(fetch, (std::vector<int>{0, 1}));
  // 8 blocks of room: request 2 (2 blocks) and 3 (4) fit, 4 (8) no longer.
  EXPECT_EQ(ahead.size(), 6u);
  EXPECT_TRUE(reqs[2].ahead);
  EXPECT_TRUE(reqs[3].ahead);
  EXPECT_FALSE(reqs[4].ahead);
  EXPECT_FALSE(reqs[5].ahead);
  // With two groups (or without fetch-ahead) nothing is fetched ahead.
  for (Request& q : reqs) q.ahead = false;
  ahead.clear();
  plan.groups = 2;
  (void)PlanTurn(reqs, 0, 1, 1, plan, &ahead);
  EXPECT_TRUE(ahead.empty());
}

TEST(TurnsTest, KeepRunningKeepsWhatFitsBesideTheIncomingGroup) {
  // Group 1 ran last turn (3, 5 and 10 blocks over the next turn); group 0
  // comes in with 4 blocks. Budget 13: 4 + 3 + 5 fit, 10 more would not.
  std::vector<Request> reqs = {Make(0, 1, 300, 700), Make(1, 1, 1000, 1200), Make(2, 1, 2000, 2400),
                               Make(3, 0, 700, 1100)};
  Plan plan = Budget(13);
  plan.keep_running = true;
  std::vector<void*> ahead;
  TurnPlan turn = PlanTurn(reqs, 0, 1, 1, plan, &ahead);
  EXPECT_EQ(turn.fetch, (std::vector<int>{3}));
  EXPECT_EQ(turn.kept, (std::vector<int>{0, 1}));
  EXPECT_EQ(turn.leaving, (std::vector<int>{2}));
  EXPECT_TRUE(reqs[0].kept && reqs[1].kept && !reqs[2].kept);
  // Group 1's turn again: its kept requests are on the GPU (nothing to
  // fetch, 3 + 5), the one that left would need 10 more (sits out), and
  // group 0's request keeps running beside them (8 + 4 <= 13).
  turn = PlanTurn(reqs, 1, 0, 0, plan, &ahead);
  EXPECT_EQ(turn.kept, (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(turn.fetch, (std::vector<int>{}));
  EXPECT_TRUE(reqs[2].sits_out);
  EXPECT_EQ(turn.leaving, (std::vector<int>{}));
  EXPECT_FALSE(reqs[0].kept);  // its group's turn: running, not kept
  EXPECT_TRUE(reqs[3].kept);
  // Without keep_running the whole outgoing group leaves (request 2 sat
  // out: not on the GPU); request 3, of the incoming group and on the GPU,
  // runs without a fetch.
  plan.keep_running = false;
  turn = PlanTurn(reqs, 0, 1, 1, plan, &ahead);
  EXPECT_EQ(turn.kept, (std::vector<int>{3}));
  EXPECT_EQ(turn.leaving, (std::vector<int>{0, 1}));
  EXPECT_EQ(turn.fetch, (std::vector<int>{}));
}

TEST(TurnsTest, RandomTurnsNeverHoldMoreThanTheBudget) {
  const unsigned seed = std::random_device{}();
  std::printf("TurnsTest.RandomTurnsNeverHoldMoreThanTheBudget seed %u\n", seed);
  std::mt19937 rng(seed);
  for (int round = 0; round < 2000; ++round) {
    const int groups = 2 + static_cast<int>(rng() % 3);
    Plan plan = Budget(1 + rng() % 200, groups, 1 + static_cast<int>(rng() % 600));
    plan.fetch_ahead = rng() % 2 == 0;
    plan.keep_running = rng() % 2 == 0;
    const std::size_t budget = plan.budget / kBlockBytes;
    const int active = static_cast<int>(rng() % groups);
    const int previous = rng() % 8 == 0 ? -1 : (active + groups - 1) % groups;
    const int next = (active + 1) % groups;
    std::vector<Request> reqs;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const int length = 16 + static_cast<int>(rng() % 20000);
      reqs.push_back(Make(i, static_cast<int>(rng() % groups), length,
                          length + 64 + static_cast<int>(rng() % 400)));
      Request& q = reqs.back();
      q.sat_out = static_cast<int>(rng() % 3);
      q.waiting = rng() % 10 == 0;
      q.sits_out = !q.waiting && rng() % 5 == 0;        // last turn
      q.kept = plan.keep_running && previous >= 0 && q.group != previous && !q.waiting &&
               !q.sits_out && rng() % 3 == 0;           // last turn
    }
    // Fetched ahead during the last turn, within the budget.
    std::size_t ahead_held = 0;
    for (Request& q : reqs) {
      if (q.group == active && !q.waiting && !q.kept && q.group != previous && rng() % 4 == 0 &&
          ahead_held + TurnNeed(q, plan) <= budget) {
        q.ahead = true;
        ahead_held += TurnNeed(q, plan);
      }
    }
    std::vector<bool> was_ahead, ran;
    std::vector<int> sat_before;
    for (const Request& q : reqs) {
      was_ahead.push_back(q.group == active && q.ahead);
      ran.push_back(previous >= 0 && (q.group == previous || q.kept) && !q.sits_out && !q.waiting);
      sat_before.push_back(q.sat_out);
    }
    std::vector<void*> ahead;
    const TurnPlan turn = PlanTurn(reqs, active, previous, next, plan, &ahead);
    SCOPED_TRACE(testing::Message() << "round " << round);
    std::vector<int> role(reqs.size(), 0);  // 1 fetch, 2 kept, 3 leaving, 4 fetched ahead
    for (int k : turn.fetch) { ASSERT_EQ(role[k], 0); role[k] = 1; }
    for (int k : turn.kept) { ASSERT_EQ(role[k], 0); role[k] = 2; }
    for (int k : turn.leaving) { ASSERT_EQ(role[k], 0); role[k] = 3; }
    for (int k : turn.ahead) { ASSERT_EQ(role[k], 0); role[k] = 4; }
    // Those fetched ahead run, named in the plan (the engine fetches them
    // again, nothing moving, so that no budget takes them as victims).
    for (std::size_t k = 0; k < reqs.size(); ++k) ASSERT_EQ(was_ahead[k], role[k] == 4) << "request " << k;
    std::size_t held = ahead_held;
    for (std::size_t i = 0; i < turn.fetch.size(); ++i) {
      const Request& q = reqs[turn.fetch[i]];
      ASSERT_EQ(q.group, active);
      ASSERT_FALSE(q.sits_out);
      ASSERT_FALSE(ran[q.id]);  // on the GPU already: nothing to fetch
      held += TurnNeed(q, plan);
      if (i > 0) {  // the longest waiting first, then the smallest
        const int a = sat_before[turn.fetch[i - 1]], b = sat_before[q.id];
        ASSERT_TRUE(a > b || (a == b && TurnNeed(reqs[turn.fetch[i - 1]], plan) <= TurnNeed(q, plan)));
      }
    }
    for (int k : turn.kept) {
      ASSERT_TRUE(ran[k]);
      ASSERT_FALSE(reqs[k].sits_out);
      ASSERT_EQ(reqs[k].kept, reqs[k].group != active);
      if (!plan.keep_running) ASSERT_EQ(reqs[k].group, active);
      held += TurnNeed(reqs[k], plan);
    }
    ASSERT_LE(held, budget);
    std::size_t ahead_blocks = 0;
    for (std::size_t k = 0; k < reqs.size(); ++k) {
      const Request& q = reqs[k];
      const bool runs = role[k] == 1 || role[k] == 2 || was_ahead[k];
      if (q.group == active) {
        ASSERT_EQ(runs, !q.sits_out) << "request " << k;  // runs or sits out
        if (q.sits_out) ASSERT_EQ(q.sat_out, sat_before[k] + 1);
      } else {
        ASSERT_FALSE(q.sits_out);
        ASSERT_EQ(q.kept, role[k] == 2);
      }
      // Every request that ran last turn runs on or leaves (to be evicted).
      if (ran[k]) ASSERT_TRUE(role[k] == 2 || role[k] == 3) << "request " << k;
      if (role[k] == 3) ASSERT_TRUE(ran[k] && !runs);
      if (q.ahead) {
        ASSERT_EQ(q.group, next);
        ASSERT_FALSE(q.waiting);
        ASSERT_FALSE(q.kept);
        ahead_blocks += q.blocks.size();
      }
    }
    ASSERT_EQ(ahead.size(), ahead_blocks);
    ASSERT_LE(held + ahead_blocks, budget);
    if (!plan.fetch_ahead || groups <= 2) ASSERT_TRUE(ahead.empty());
  }
}

}  // namespace
}  // namespace paged_kv
