// The pool conformance suite, part 4: the pressure callback, on every
// backend. Instantiated in pool_test.cc.
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Three 20 MiB KV blocks: most of a 64 MiB cap.
std::vector<void*> ThreeKvBlocks(Pool& pool) {
  std::vector<void*> held;
  for (int i = 0; i < 3; ++i) {
    auto p = pool.Allocate(20 * kMiB, kDefaultStream, Role::kKv);
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) held.push_back(*p);
  }
  return held;
}

TEST_P(PoolTest, PressureCallbackFreesMemoryAndThePoolRetries) {
  PoolOptions o;
  o.capacity_bytes = 64 * kMiB;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  std::vector<void*> held = ThreeKvBlocks(*pool);
  ASSERT_EQ(held.size(), 3u);
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(20 * kMiB, s, Role::kKv).status()));

  // An engine evicts a paused request: the callback frees a block.
  int calls = 0;
  std::size_t asked = 0;
  Role asked_role = Role::kDefault;
  pool->SetPressureCallback([&](std::size_t bytes, Role role) {
    ++calls;
    asked = bytes;
    asked_role = role;
    if (held.empty()) return false;
    EXPECT_TRUE(pool->Deallocate(held.back(), s).ok());
    held.pop_back();
    return true;
  });
  auto p = pool->Allocate(20 * kMiB, s, Role::kKv);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(calls, 1);
  EXPECT_GE(asked, 20 * kMiB);
  EXPECT_EQ(asked_role, Role::kKv);
  held.push_back(*p);

  // Nothing to free: the allocation fails as before.
  pool->SetPressureCallback([&](std::size_t, Role) { return false; });
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s).status()));
  // A callback that claims to free but does not: asked a bounded number of
  // times, then the allocation fails.
  int claims = 0;
  pool->SetPressureCallback([&](std::size_t, Role) {
    ++claims;
    return true;
  });
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s).status()));
  EXPECT_EQ(claims, Pool::kPressureRetries);

  // A callback that throws: a clear error, the pool keeps working.
  pool->SetPressureCallback([](std::size_t, Role) -> bool { throw std::runtime_error("boom"); });
  absl::StatusOr<void*> thrown = pool->Allocate(40 * kMiB, s);
  EXPECT_TRUE(absl::IsResourceExhausted(thrown.status())) << thrown.status();
  EXPECT_NE(thrown.status().message().find("the pressure callback threw: boom"), std::string::npos)
      << thrown.status();

  // Its own allocations that run short do not call it again.
  calls = 0;
  pool->SetPressureCallback([&](std::size_t, Role) {
    ++calls;
    EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s).status()));
    return false;
  });
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s).status()));
  EXPECT_EQ(calls, 1);

  // Never during a graph capture.
  calls = 0;
  pool->BeginCapture();
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s).status()));
  ASSERT_TRUE(pool->EndCapture().ok());
  EXPECT_EQ(calls, 0);

  pool->SetPressureCallback(nullptr);
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s).status()));
  EXPECT_EQ(calls, 0);
  for (void* q : held) ASSERT_TRUE(pool->Deallocate(q, s).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// Evicted live blocks hold no GPU memory, so the cap leaves them out: a
// callback that evicts (a paused request's KV) makes room without freeing,
// and is asked again until the request fits.
TEST_P(PoolTest, PressureCallbackThatEvictsMakesRoomUnderTheCap) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "device memory cannot be evicted";
  PoolOptions o;
  o.capacity_bytes = 64 * kMiB;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  std::vector<void*> held = ThreeKvBlocks(*pool);
  ASSERT_EQ(held.size(), 3u);
  EXPECT_TRUE(absl::IsResourceExhausted(pool->Allocate(40 * kMiB, s, Role::kKv).status()));
  std::vector<std::size_t> asked;
  std::size_t next = 0;
  pool->SetPressureCallback([&](std::size_t bytes, Role) {
    asked.push_back(bytes);
    if (next == held.size()) return false;
    // One block per call: the pool must ask again while it is short.
    EXPECT_TRUE(pool->Evict(held[next++], s).ok());
    return true;
  });
  auto p = pool->Allocate(40 * kMiB, s, Role::kKv);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(next, 2u) << "two 20 MiB blocks evicted for a 40 MiB block";
  ASSERT_GE(asked.size(), 2u);
  EXPECT_GE(asked[0], 40 * kMiB);
  Stats st = pool->GetStats();
  EXPECT_EQ(st.host_bytes.current, std::int64_t{40} * kMiB);
  EXPECT_GT(st.reserved_bytes.current, std::int64_t{64} * kMiB) << "reserved counts evicted blocks";
  EXPECT_LE(st.reserved_bytes.current - st.host_bytes.current, std::int64_t{64} * kMiB);
  EXPECT_EQ(pool->GetResidency(Role::kKv).host_bytes, 40 * kMiB);
  // The evicted blocks are intact and still theirs: freeing them counts them
  // against the cap again.
  for (void* q : held) ASSERT_TRUE(pool->Deallocate(q, s).ok());
  ASSERT_TRUE(pool->Deallocate(*p, s).ok());
  EXPECT_EQ(pool->GetStats().host_bytes.current, 0);
  pool->SetPressureCallback(nullptr);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST_P(PoolTest, PressureCallbackIsToldOnceWhenReservedPassesTheWatermark) {
  PoolOptions o;
  o.capacity_bytes = 64 * kMiB;
  o.pressure_watermark_bytes = 24 * kMiB;
  auto pool = Make(o);
  ASSERT_NE(pool, nullptr);
  const Stream s = kDefaultStream;
  std::vector<std::size_t> told;
  std::vector<std::int64_t> reserved_then;
  std::vector<Role> roles;
  pool->SetPressureCallback([&](std::size_t bytes, Role role) -> bool {
    told.push_back(bytes);
    roles.push_back(role);
    reserved_then.push_back(pool->GetStats().reserved_bytes.current);
    throw std::runtime_error("ignored: the allocation has succeeded");
  });
  std::vector<void*> held;
  auto fill = [&] {
    while (pool->GetStats().reserved_bytes.current < std::int64_t{48} * kMiB) {
      auto p = pool->Allocate(6 * kMiB, s, Role::kKv);
      ASSERT_TRUE(p.ok()) << p.status();
      held.push_back(*p);
    }
  };
  fill();
  ASSERT_EQ(told.size(), 1u) << "once per crossing";
  EXPECT_EQ(roles[0], Role::kKv);
  EXPECT_EQ(told[0] + 24 * kMiB, static_cast<std::size_t>(reserved_then[0]));
  // Below the watermark again (freed and trimmed), then past it: told again.
  for (void* p : held) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  held.clear();
  ASSERT_TRUE(pool->Trim().ok());
  ASSERT_LE(pool->GetStats().reserved_bytes.current, std::int64_t{24} * kMiB);
  fill();
  EXPECT_EQ(told.size(), 2u);
  // Never during a graph capture.
  for (void* p : held) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  held.clear();
  ASSERT_TRUE(pool->Trim().ok());
  pool->BeginCapture();
  fill();
  ASSERT_TRUE(pool->EndCapture().ok());
  EXPECT_EQ(told.size(), 2u);
  for (void* p : held) ASSERT_TRUE(pool->Deallocate(p, s).ok());
  pool->SetPressureCallback(nullptr);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

TEST(PoolOptionsTest, WatermarkAboveTheCapIsRefused) {
  PoolOptions o;
  o.backend = BackendKind::kHost;
  o.capacity_bytes = 64 * kMiB;
  o.pressure_watermark_bytes = 65 * kMiB;
  absl::Status st = o.Validate();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("pressure_watermark_bytes"), std::string::npos) << st;
}

}  // namespace
}  // namespace umpool
