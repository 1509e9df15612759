// The residency tracker (src/pool/residency.h) on its own: the order a
// budget picks its victims in, claims, and the blocks it must not pick.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "src/pool/counters.h"
#include "src/pool/residency.h"

namespace umpool::internal {
namespace {

constexpr std::size_t kBlock = std::size_t{2} << 20;

class ResidencyTest : public ::testing::Test {
 protected:
  static std::array<std::size_t, kNumRoles> Budgets() {
    std::array<std::size_t, kNumRoles> b{};
    b[static_cast<int>(Role::kKv)] = 4 * kBlock;
    return b;
  }
  static void* P(int i) { return reinterpret_cast<void*>(std::uintptr_t{0x100000000} + i * kBlock); }
  // Allocates block i; returns the victims its allocation picked.
  std::vector<void*> Allocate(int i) {
    Victims v;
    residency_.Allocated(Role::kKv, reinterpret_cast<std::uintptr_t>(P(i)), kBlock, &v);
    return v.ptrs;
  }
  AtomicValue host_;
  Residency residency_{Budgets(), &host_};
};

TEST_F(ResidencyTest, TheLeastRecentlyAllocatedOrFetchedGoFirst) {
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Allocate(i).empty());
  EXPECT_EQ(Allocate(4), std::vector<void*>{P(0)});
  Victims v;
  residency_.Moved({BlockInfo{P(1), kBlock, kBlock, nullptr, Role::kKv}}, Location::kDevice,
                   nullptr, &v);  // fetched: the most recent now
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(Allocate(5), std::vector<void*>{P(2)});
  EXPECT_TRUE(residency_.IsEvicted(reinterpret_cast<std::uintptr_t>(P(2))));
}

// A block whose fetch is under way is never a victim: the eviction's copy
// out could be ordered before the fetch's copy in and its drop would take
// the pages the copy in writes to.
TEST_F(ResidencyTest, ABlockBeingFetchedIsNotAVictim) {
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Allocate(i).empty());
  residency_.BeginFetch({P(0)});  // the least recent
  EXPECT_EQ(Allocate(4), std::vector<void*>{P(1)}) << "skipped the one being fetched";
  residency_.BeginFetch({P(0)});  // nested (two threads)
  residency_.EndFetch({P(0)});
  EXPECT_EQ(Allocate(5), std::vector<void*>{P(2)}) << "still under way";
  residency_.EndFetch({P(0)});
  EXPECT_EQ(Allocate(6), std::vector<void*>{P(0)}) << "done: the least recent again";
}

// An engine's eviction claims its resident blocks: no budget picks them
// while they move; a failed eviction puts them back.
TEST_F(ResidencyTest, AnEnginesEvictionClaimsItsBlocks) {
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Allocate(i).empty());
  const Victims claimed = residency_.Claim({P(0), P(1)});
  EXPECT_EQ(claimed.ptrs, (std::vector<void*>{P(0), P(1)}));
  EXPECT_TRUE(residency_.Claim({P(0)}).empty()) << "claimed once";
  EXPECT_TRUE(Allocate(4).empty()) << "the claimed ones count as gone: room for one more";
  residency_.Unclaim(claimed);
  EXPECT_FALSE(residency_.IsEvicted(reinterpret_cast<std::uintptr_t>(P(0))));
}

}  // namespace
}  // namespace umpool::internal
