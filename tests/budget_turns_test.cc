// CPU models of an engine's turns under a KV budget (the paged-KV demo's):
// what the budgeted role holds on the GPU, free pages included, stays within
// the budget and its slack, on the strict (vmm-like) emulation and on host
// memory that populates on touch (managed-like).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/strict_pool.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// A request of the CPU models of the paged-KV turns: its 2 MiB KV blocks
// and the count it retires at.
struct TurnRequest {
  std::vector<void*> blocks;
  int target = 0;
  bool ahead = false;  // fetched ahead during the last turn
};

// A new request of `group`: a target of max_blocks/2+1 .. max_blocks blocks,
// 1-3 short of it already allocated on `stream` (role kv).
void AdmitRequest(Pool& pool, int max_blocks, Stream stream, std::mt19937_64& rng,
                  std::vector<TurnRequest>* group) {
  TurnRequest q;
  q.target = std::uniform_int_distribution<int>(max_blocks / 2 + 1, max_blocks)(rng);
  const int first = q.target - std::uniform_int_distribution<int>(1, 3)(rng);
  for (int b = 0; b < first; ++b) {
    absl::StatusOr<void*> p = pool.Allocate(2 * kMiB, stream, Role::kKv);
    ASSERT_TRUE(p.ok()) << p.status();
    q.blocks.push_back(*p);
  }
  group->push_back(std::move(q));
}

constexpr std::size_t kTurnBlock = 2 * kMiB;
constexpr std::size_t kTurnsBudget = 8 * 8 * kTurnBlock;  // two groups of 8 requests, 8 blocks

// What the KV role held in two-group turns (below), in bytes.
struct TurnPeaks {
  std::size_t resident = 0, on_gpu = 0, populated = 0;
};

// Two groups of requests take turns under a KV budget of kTurnsBudget on the
// strict emulation for `turns` turns, `adjust` applied to the pool's options
// first.
template <class Adjust>
TurnPeaks TwoGroupTurns(Adjust&& adjust, std::uint64_t seed, int turns = 30) {
  constexpr std::size_t kBlock = kTurnBlock;
  constexpr int kPerGroup = 8, kMaxBlocks = 8;
  constexpr std::size_t kBudget = kTurnsBudget;
  TurnPeaks peaks;
  internal::HostBackend* backend = nullptr;
  PoolOptions o = testing::WithKvStaging(kBudget);
  adjust(o);
  std::unique_ptr<Pool> pool = testing::StagingPool(o, 4 * kBudget, /*strict=*/true, &backend);
  if (pool == nullptr) return peaks;
  std::mt19937_64 rng(seed);
  const Stream compute = kDefaultStream;
  const Stream fetch = testing::kSide;
  using Request = TurnRequest;
  auto admit = [&](std::vector<Request>& group) { AdmitRequest(*pool, kMaxBlocks, compute, rng, &group); };
  std::vector<Request> groups[2];
  for (auto& g : groups) {
    for (int i = 0; i < kPerGroup; ++i) admit(g);
  }
  auto take_turns = [&] {  // a lambda: its ASSERTs return from it, not from TwoGroupTurns
    for (int turn = 0; turn < turns; ++turn) {
      std::vector<Request>& running = groups[turn % 2];
      std::vector<const void*> fetched;
      for (const Request& q : running) fetched.insert(fetched.end(), q.blocks.begin(), q.blocks.end());
      ASSERT_TRUE(pool->PrefetchBlocks(fetched.data(), fetched.size(), Location::kDevice, fetch).ok());
      for (std::size_t i = 0; i < running.size(); ++i) {
        Request& q = running[i];
        absl::StatusOr<void*> p = pool->Allocate(kBlock, fetch, Role::kKv);  // growth
        ASSERT_TRUE(p.ok()) << p.status();
        q.blocks.push_back(*p);
        if (static_cast<int>(q.blocks.size()) >= q.target) {  // done: retired, replaced
          for (void* b : q.blocks) ASSERT_TRUE(pool->Deallocate(b, compute).ok());
          running.erase(running.begin() + static_cast<std::ptrdiff_t>(i--));
          admit(running);
          if (::testing::Test::HasFatalFailure()) return;
        }
        const RoleResidency kv = pool->GetResidency(Role::kKv);
        peaks.resident = std::max(peaks.resident, kv.resident_bytes);
        peaks.on_gpu = std::max(peaks.on_gpu, kv.reserved_bytes - std::min(kv.reserved_bytes, kv.host_bytes));
        peaks.populated = std::max(peaks.populated, backend->populated_bytes());
      }
    }
  };
  take_turns();
  std::printf("budget %zu MiB: peaks resident %zu MiB, on the GPU by the pool's count %zu MiB, "
              "populated %zu MiB\n", kBudget / kMiB, peaks.resident / kMiB, peaks.on_gpu / kMiB,
              peaks.populated / kMiB);
  // More than 100 over the 30 turns of the bound's test, as many a turn in shorter runs.
  EXPECT_GT(pool->GetResidency(Role::kKv).budget_evictions, 100u * static_cast<unsigned>(turns) / 30)
      << "the budget was not at work";
  for (auto& g : groups) {
    for (Request& q : g) {
      for (void* b : q.blocks) EXPECT_TRUE(pool->Deallocate(b, compute).ok());
    }
  }
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
  return peaks;
}

// What a budgeted role holds on the GPU (here: the pages populated), not
// only its resident live blocks: an engine's requests taking turns in two
// groups under a KV budget that holds one group with its growth, as the
// paged-KV demo runs them. Each turn fetches the incoming group (the budget
// evicts the other), grows every running request by a block, retires those
// done and admits new ones in their place.
TEST(PopulateOnRequestTest, ABudgetBoundsWhatTheRoleHoldsOnTheGpu) {
  const TurnPeaks peaks = TwoGroupTurns([](PoolOptions&) {}, testing::TestSeed(20261201));
  EXPECT_LE(peaks.resident, kTurnsBudget);
  // Free pages past hbm_budget_slack (3%) of the budget go back, down to
  // the budget, at the next budgeted allocation or fetch (before, the free
  // blocks of retired requests stayed populated: 158 MiB for this budget
  // with a lighter load).
  const auto slack =
      static_cast<std::size_t>(PoolOptions{}.policy(Role::kKv).hbm_budget_slack * kTurnsBudget);
  EXPECT_LE(peaks.populated, kTurnsBudget + slack + kTurnBlock);
  EXPECT_LE(peaks.on_gpu, kTurnsBudget + slack + kTurnBlock);
}

// The budget's slack is the role's own setting: the pool-wide room over
// peak live bytes (give_back_slack) leaves it alone, and a slack of 0 gives
// back every free page past the budget at once.
TEST(PopulateOnRequestTest, TheBudgetsSlackIsItsOwn) {
  const std::uint64_t seed = testing::TestSeed(20261204);
  constexpr int kTurns = 10;
  const TurnPeaks defaults = TwoGroupTurns([](PoolOptions&) {}, seed, kTurns);
  const TurnPeaks wide = TwoGroupTurns([](PoolOptions& o) { o.give_back_slack = 0.5; }, seed, kTurns);
  const TurnPeaks none = TwoGroupTurns(
      [](PoolOptions& o) { o.roles[static_cast<int>(Role::kKv)].hbm_budget_slack = 0; }, seed, kTurns);
  const TurnPeaks loose = TwoGroupTurns(
      [](PoolOptions& o) { o.roles[static_cast<int>(Role::kKv)].hbm_budget_slack = 0.25; }, seed, kTurns);
  EXPECT_EQ(wide.on_gpu, defaults.on_gpu) << "give_back_slack moved the budget's room";
  EXPECT_EQ(wide.populated, defaults.populated);
  EXPECT_LE(none.on_gpu, kTurnsBudget + kTurnBlock);
  EXPECT_LE(none.populated, kTurnsBudget + kTurnBlock);
  EXPECT_LE(none.on_gpu, defaults.on_gpu);
  EXPECT_LE(loose.on_gpu, kTurnsBudget + kTurnsBudget / 4 + kTurnBlock);
  EXPECT_GT(loose.on_gpu, defaults.on_gpu) << "a wider budget slack kept no more free pages";
  for (const TurnPeaks& p : {defaults, wide, none, loose}) EXPECT_LE(p.resident, kTurnsBudget);
}


// The paged-KV demo's three-group turns: the engine evicts the group that
// left (PrefetchBlocks to the host: copies queued, pages dropped later) and
// fetches the next group ahead where the budget has room beside the running
// one, fetching again (nothing moves) what it fetched ahead before the turn's
// allocations. What the role holds on the GPU stays near the budget.
// `strict`: the host emulation of vmm memory (pages populated by request,
// its populated pages counted); else memory that populates on touch, as
// managed memory does (the pool's own count: populated less evicted).
void EngineTurnsUnderABudget(bool strict) {
  constexpr std::size_t kBlock = 2 * kMiB;
  constexpr int kPerGroup = 6, kMaxBlocks = 8;
  constexpr std::size_t kBudget = 2 * kPerGroup * kMaxBlocks * kBlock * 3 / 4;
  internal::HostBackend* backend = nullptr;
  std::unique_ptr<Pool> pool = testing::KvBudgetPool(kBudget, 4 * kBudget, strict, &backend);
  ASSERT_NE(pool, nullptr);
  std::mt19937_64 rng(testing::TestSeed(20261202));
  const Stream compute = kDefaultStream, fetch = testing::kSide;
  const Stream evict = reinterpret_cast<Stream>(std::uintptr_t{0x3});
  using Request = TurnRequest;
  auto admit = [&](std::vector<Request>& group) { AdmitRequest(*pool, kMaxBlocks, compute, rng, &group); };
  auto move = [&](const std::vector<void*>& blocks, Location where, Stream s) {
    if (blocks.empty()) return;
    std::vector<const void*> v(blocks.begin(), blocks.end());
    ASSERT_TRUE(pool->PrefetchBlocks(v.data(), v.size(), where, s).ok());
  };
  std::vector<Request> groups[3];
  for (auto& g : groups) {
    for (int i = 0; i < kPerGroup; ++i) admit(g);
  }
  std::size_t peak_populated = 0, peak_resident = 0;
  auto sample = [&] {
    const RoleResidency kv = pool->GetResidency(Role::kKv);
    peak_resident = std::max(peak_resident, kv.resident_bytes);
    peak_populated = std::max(peak_populated, strict ? backend->populated_bytes()
                                                     : kv.reserved_bytes - std::min(kv.reserved_bytes, kv.host_bytes));
  };
  for (int turn = 0; turn < 30; ++turn) {
    std::vector<Request>& running = groups[turn % 3];
    std::vector<Request>& next = groups[(turn + 1) % 3];
    std::vector<void*> again, in, out;
    for (const Request& q : groups[(turn + 2) % 3]) out.insert(out.end(), q.blocks.begin(), q.blocks.end());
    for (Request& q : running) {
      (q.ahead ? again : in).insert(q.ahead ? again.end() : in.end(), q.blocks.begin(), q.blocks.end());
      q.ahead = false;
    }
    move(again, Location::kDevice, compute);  // nothing moves: the most recent now
    move(out, Location::kHost, evict);
    move(in, Location::kDevice, fetch);
    sample();
    // The next group ahead, as far as the budget holds it beside this one
    // (each running request at its target).
    std::size_t held = 0;
    for (const Request& q : running) held += static_cast<std::size_t>(q.target) * kBlock;
    std::vector<void*> ahead;
    for (Request& q : next) {
      const std::size_t need = static_cast<std::size_t>(q.target) * kBlock;
      if (held + need > kBudget) continue;
      held += need;
      q.ahead = true;
      ahead.insert(ahead.end(), q.blocks.begin(), q.blocks.end());
    }
    move(ahead, Location::kDevice, fetch);
    sample();
    for (std::size_t i = 0; i < running.size(); ++i) {
      Request& q = running[i];
      while (static_cast<int>(q.blocks.size()) < q.target) {  // growth
        absl::StatusOr<void*> p = pool->Allocate(kBlock, compute, Role::kKv);
        ASSERT_TRUE(p.ok()) << p.status();
        q.blocks.push_back(*p);
            sample();
      }
      if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) {  // retired, replaced next turn
        for (void* b : q.blocks) ASSERT_TRUE(pool->Deallocate(b, compute).ok());
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(i--));
      }
    }
    while (static_cast<int>(next.size()) < kPerGroup) {
      admit(next);
      if (::testing::Test::HasFatalFailure()) return;
        sample();
    }
  }
  std::printf("budget %zu MiB (%s): peaks resident %zu MiB, on the GPU %zu MiB\n", kBudget / kMiB,
              strict ? "vmm-like" : "populated on touch", peak_resident / kMiB, peak_populated / kMiB);
  EXPECT_LE(peak_resident, kBudget);
  const auto slack =
      static_cast<std::size_t>(PoolOptions{}.policy(Role::kKv).hbm_budget_slack * kBudget);
  // Before, the blocks freed on the compute stream stayed populated while
  // the engine fetched on its side stream: 160 MiB (strict).
  EXPECT_LE(peak_populated, kBudget + slack + kBlock);
  const RoleResidency kv = pool->GetResidency(Role::kKv);
  EXPECT_GT(kv.evictions, 200u) << "the engine evicted little";
  EXPECT_GT(kv.budget_evictions, 0u) << "the budget was not at work";
  for (auto& g : groups) {
    for (Request& q : g) {
      for (void* b : q.blocks) ASSERT_TRUE(pool->Deallocate(b, compute).ok());
    }
  }
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST(PopulateOnRequestTest, ABudgetBoundsWhatTheRoleHoldsWithEngineEvictions) {
  EngineTurnsUnderABudget(/*strict=*/true);
}

TEST(PopulateOnRequestTest, ABudgetBoundsWhatTheRoleHoldsWithEngineEvictionsOnTouchPopulatedMemory) {
  EngineTurnsUnderABudget(/*strict=*/false);
}

}  // namespace
}  // namespace umpool
