// The pool conformance suite, part 3: Sleep and Wake on every backend.
// Instantiated in pool_test.cc. On the managed backend the offloaded weights
// really leave the GPU and come back; their contents are checked.
#include <vector>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using ::umpool::testing::CheckPattern;
using ::umpool::testing::FillPattern;

SleepOptions OffloadWeightsDiscardKv() {
  SleepOptions o;
  o.roles[static_cast<int>(Role::kWeights)] = SleepAction::kOffload;
  o.roles[static_cast<int>(Role::kKv)] = SleepAction::kDiscard;
  return o;
}

TEST_P(PoolTest, SleepMovesChosenRolesAndWakeBringsThemBackAtTheSameAddresses) {
  PoolOptions o;
  o.capacity_bytes = std::size_t{1} << 30;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = stream_for_discard();
  const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
  std::vector<void*> weights, kv, acts;
  for (int i = 0; i < 4; ++i) {
    auto w = pool->Allocate(std::size_t{8} << 20, s, Role::kWeights);
    auto k = pool->Allocate(std::size_t{4} << 20, s, Role::kKv);
    auto a = pool->Allocate(std::size_t{1} << 20, s, Role::kActivations);
    ASSERT_TRUE(w.ok() && k.ok() && a.ok());
    FillPattern(kind(), *w, std::size_t{8} << 20, 100 + i);
    FillPattern(kind(), *a, std::size_t{1} << 20, 200 + i);
    weights.push_back(*w);
    kv.push_back(*k);
    acts.push_back(*a);
  }
  auto spare = pool->Allocate(std::size_t{16} << 20, s, Role::kKv);  // freed: cached
  ASSERT_TRUE(spare.ok());
  ASSERT_TRUE(pool->Deallocate(*spare, s).ok());
  const std::vector<BlockInfo> before = pool->LiveBlocks();
  const std::uint64_t prefetches = bc.prefetch_ops.load();
  const std::uint64_t discards = bc.discard_ops.load();
  const std::int64_t reserved = pool->GetStats().reserved_bytes.current;
  const std::int64_t allocated = pool->GetStats().allocated_bytes.current;

  ASSERT_TRUE(pool->Sleep(OffloadWeightsDiscardKv(), s).ok());
  SleepState st = pool->GetSleepState();
  EXPECT_TRUE(st.asleep);
  EXPECT_EQ(st.blocks, 8u);
  EXPECT_EQ(st.offloaded_bytes, 4 * (std::size_t{8} << 20));
  EXPECT_GE(st.discarded_bytes, 4 * (std::size_t{2} << 20));  // whole pages of 4 MiB blocks
  EXPECT_LE(st.discarded_bytes, 4 * (std::size_t{4} << 20));
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + 1) << "one batched offload";
  if (kind() == BackendKind::kManaged || kind() == BackendKind::kHost) {
    EXPECT_EQ(bc.discard_ops.load(), discards + 1) << "one batched discard";
  }
  EXPECT_LE(pool->GetStats().reserved_bytes.current, reserved)
      << "free cached memory went back to the backend first";
  EXPECT_EQ(pool->GetStats().allocated_bytes.current, allocated) << "live blocks stay live";

  // Sleep again: nothing moves.
  ASSERT_TRUE(pool->Sleep(OffloadWeightsDiscardKv(), s).ok());
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + 1);
  // A block freed while asleep is skipped by Wake.
  ASSERT_TRUE(pool->Deallocate(kv[3], s).ok());

  ASSERT_TRUE(pool->Wake(s).ok());
  EXPECT_FALSE(pool->GetSleepState().asleep);
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + 2) << "one batched fetch";
  ASSERT_TRUE(pool->Wake(s).ok()) << "wake of a pool that is awake is a no-op";
  EXPECT_EQ(bc.prefetch_ops.load(), prefetches + 2);

  // Same addresses; weights and activations intact; KV writable again.
  std::vector<BlockInfo> after = pool->LiveBlocks();
  EXPECT_EQ(after.size(), before.size() - 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(CheckPattern(kind(), weights[i], std::size_t{8} << 20, 100 + i)) << i;
    EXPECT_TRUE(CheckPattern(kind(), acts[i], std::size_t{1} << 20, 200 + i)) << i;
  }
  for (int i = 0; i < 3; ++i) {
    FillPattern(kind(), kv[i], std::size_t{4} << 20, 300 + i);
    EXPECT_TRUE(CheckPattern(kind(), kv[i], std::size_t{4} << 20, 300 + i));
  }
  for (void* p : weights) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool->Deallocate(kv[i], s).ok());
  for (void* p : acts) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST_P(PoolTest, SleepRefusesGraphCapturesAndDeviceMemoryRoles) {
  PoolOptions o;
  o.capacity_bytes = std::size_t{1} << 30;
  if (kind() != BackendKind::kDevice) o.roles[static_cast<int>(Role::kActivations)].device_memory = true;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = stream_for_discard();
  pool->BeginCapture();
  EXPECT_TRUE(absl::IsFailedPrecondition(pool->Sleep(OffloadWeightsDiscardKv(), s)));
  EXPECT_TRUE(absl::IsFailedPrecondition(pool->Wake(s)));
  ASSERT_TRUE(pool->EndCapture().ok());
  if (kind() != BackendKind::kDevice) {
    SleepOptions bad;
    bad.roles[static_cast<int>(Role::kActivations)] = SleepAction::kOffload;
    absl::Status st = pool->Sleep(bad, s);
    EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
    EXPECT_NE(st.message().find("activations"), std::string::npos) << st;
    EXPECT_FALSE(pool->GetSleepState().asleep);
  }
  ASSERT_TRUE(pool->Sleep(SleepOptions{}, s).ok()) << "keeping everything is a valid sleep";
  EXPECT_TRUE(pool->GetSleepState().asleep);
  ASSERT_TRUE(pool->Wake(s).ok());
}

}  // namespace
}  // namespace umpool
