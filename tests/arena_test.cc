// The segment tier (src/pool/arena.h) on its own, over a host backend: growth
// chunks and the cap, the order of tries before mapping (the free-memory
// source is asked first), segments moving between spaces, release.
#include <memory>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/arena.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

using testing::HostStream;

class CountingSource final : public FreeMemorySource {
 public:
  std::size_t ReclaimEmptySlabs(int, bool, absl::Status*, std::size_t, std::size_t) override {
    ++reclaims;
    return 0;
  }
  bool FlushCaches(bool others) override {
    ++(others ? drains : flushes);
    return false;
  }
  int reclaims = 0, flushes = 0, drains = 0;
};

class ArenaTest : public ::testing::Test {
 protected:
  // `device_memory`: roles with RolePolicy::device_memory map from device_memory_.
  void Make(std::size_t cap, bool device_memory = false) {
    arena_ = std::make_unique<Arena>(options_, backend_, device_memory ? &device_memory_ : nullptr,
                                     pagemap_, fencer_, counters_, cap, cap);
    arena_->set_free_memory_source(&source_);
  }
  absl::Status Free(void* p, Stream s) {
    LargeHeap* space = Arena::LargeSpaceOf(pagemap_.Lookup(p));
    if (space == nullptr) return absl::InternalError("not a large block");
    return space->Free(reinterpret_cast<std::uintptr_t>(p), s, fencer_).status();
  }
  std::uint64_t maps() const { return backend_.counters().maps.load(); }

  PoolOptions options_;
  HostBackend backend_;
  HostBackend device_memory_;
  PageMap pagemap_;
  Fencer fencer_{backend_};
  PoolCounters counters_;
  CountingSource source_;
  std::unique_ptr<Arena> arena_;
  const Stream a_ = HostStream(1);
};

// A device's pool and its private pools share a cap on populated bytes and a
// map limit: a reserve takes at most a quarter of the mapping room left
// under the shared limit, so the second pool's reserve is smaller than the
// first's; reserves cost nothing under the shared cap.
TEST_F(ArenaTest, ReservesLeaveRoomUnderACapSharedWithOtherPools) {
  const std::size_t cap = std::size_t{1} << 30;
  options_.shared_capacity = std::make_shared<SharedCapacity>(cap);
  Make(cap);
  PageMap pagemap2;
  Fencer fencer2{backend_};
  PoolCounters counters2;
  Arena other(options_, backend_, nullptr, pagemap2, fencer2, counters2, cap, cap);
  other.set_free_memory_source(&source_);
  auto a = arena_->TakeLarge(Role::kDefault, 2 << 20, a_, 2 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  const std::size_t first = static_cast<std::size_t>(counters_.mapped_bytes.current.load());
  EXPECT_EQ(first, (2 << 20) + cap / 4);
  auto b = other.TakeLarge(Role::kDefault, 2 << 20, a_, 2 << 20);
  ASSERT_TRUE(b.ok()) << b.status();
  const std::size_t second = static_cast<std::size_t>(counters2.mapped_bytes.current.load());
  EXPECT_GT(second, std::size_t{2} << 20) << "the second pool still gets a reserve";
  EXPECT_LE(second, (2 << 20) + (cap - first) / 4) << "a quarter of the shared room left";
  EXPECT_EQ(options_.shared_capacity->mapped(), first + second);
  EXPECT_EQ(options_.shared_capacity->reserved(), std::size_t{4} << 20) << "populated bytes only";
  EXPECT_EQ(options_.shared_capacity->map_limit(), cap);
  ASSERT_TRUE(Free(a->ptr, a_).ok());
  LargeHeap* space = Arena::LargeSpaceOf(pagemap2.Lookup(b->ptr));
  ASSERT_NE(space, nullptr);
  ASSERT_TRUE(space->Free(reinterpret_cast<std::uintptr_t>(b->ptr), a_, fencer2).ok());
}

TEST_F(ArenaTest, ASpaceGrowsInPlaceIntoItsReserveAndTheSourceIsAskedFirst) {
  Make(std::size_t{1} << 30);
  auto r1 = arena_->TakeLarge(Role::kDefault, 2 << 20, a_, 2 << 20);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_TRUE(r1->grew);
  EXPECT_EQ(source_.reclaims, 1) << "empty slabs are asked for before mapping";
  EXPECT_EQ(source_.flushes, 1) << "the caller's cache too";
  EXPECT_EQ(source_.drains, 1) << "and, about to grow, quiet threads' caches";
  EXPECT_EQ(counters_.reserved_bytes.current.load(), 2 << 20) << "only what it needs is populated";
  EXPECT_EQ(counters_.mapped_bytes.current.load(), (2 << 20) + (256 << 20))
      << "a reserve of a quarter of what the map limit had left";
  auto r2 = arena_->TakeLarge(Role::kDefault, 3 << 20, a_, 3 << 20);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->grew);
  EXPECT_EQ(r2->ptr, static_cast<char*>(r1->ptr) + (2 << 20)) << "grown in place, contiguous";
  EXPECT_EQ(r2->bytes, std::size_t{3} << 20) << "the rest ends the populated part: split off";
  EXPECT_EQ(maps(), 1u);
  EXPECT_EQ(counters_.grown_in_place.load(), 1u);
  EXPECT_EQ(counters_.reserved_bytes.current.load(), 6 << 20);
  arena_->CheckInvariants();
  ASSERT_TRUE(Free(r1->ptr, a_).ok());
  ASSERT_TRUE(Free(r2->ptr, a_).ok());
  // One free block now: a request spanning both old blocks fits without growing.
  auto r3 = arena_->TakeLarge(Role::kDefault, 6 << 20, a_, 6 << 20);
  ASSERT_TRUE(r3.ok());
  EXPECT_FALSE(r3->grew);
  EXPECT_EQ(r3->ptr, r1->ptr);
  ASSERT_TRUE(Free(r3->ptr, a_).ok());
  arena_->CheckInvariants();
}

TEST_F(ArenaTest, TheCapIsNeverPassedAndAtTheMapLimitReservesAreCut) {
  Make(std::size_t{32} << 20);
  auto big = arena_->TakeLarge(Role::kDefault, 24 << 20, a_, 24 << 20);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(counters_.mapped_bytes.current.load(), 32 << 20) << "24 MiB and a reserve of 8";
  auto small = arena_->TakeLarge(Role::kWeights, 4 << 20, a_, 4 << 20);
  ASSERT_TRUE(small.ok()) << "nothing more can be mapped, but the reserve can be cut";
  EXPECT_EQ(counters_.reserves_cut.load(), 1u);
  EXPECT_EQ(maps(), 1u);
  EXPECT_EQ(counters_.reserved_bytes.current.load(), 28 << 20);
  EXPECT_EQ(counters_.mapped_bytes.current.load(), 32 << 20);
  arena_->CheckInvariants();
  auto over = arena_->TakeLarge(Role::kWeights, 8 << 20, a_, 8 << 20);
  EXPECT_TRUE(absl::IsResourceExhausted(over.status())) << over.status();
  EXPECT_EQ(counters_.reserved_bytes.current.load(), 28 << 20) << "a failed claim is released";
  // The cut piece goes back to the backend only with the rest of its mapping.
  ASSERT_TRUE(Free(small->ptr, a_).ok());
  ASSERT_TRUE(arena_->ReleaseFree().ok());
  EXPECT_EQ(backend_.counters().unmaps.load(), 0u);
  EXPECT_EQ(counters_.reserved_bytes.current.load(), 28 << 20) << "its pages are still held";
  arena_->CheckInvariants();
  auto again = arena_->TakeLarge(Role::kWeights, 4 << 20, a_, 4 << 20);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ptr, small->ptr) << "the piece stayed with its space";
  EXPECT_FALSE(again->grew);
  bool above = false;
  ASSERT_TRUE(arena_->SetCapacity(64 << 20, &above).ok());
  EXPECT_FALSE(above);
  EXPECT_TRUE(arena_->TakeLarge(Role::kWeights, 8 << 20, a_, 8 << 20).ok());
  arena_->CheckInvariants();
  ASSERT_TRUE(Free(again->ptr, a_).ok());
  ASSERT_TRUE(Free(big->ptr, a_).ok());
}

// Plain device memory has no reserve: its wholly free chunks move.
TEST_F(ArenaTest, AWhollyFreeSegmentMovesToAnotherSpaceInsteadOfMapping) {
  options_.activations_share_kv_space = false;  // the two roles' own spaces
  for (Role r : {Role::kActivations, Role::kKv}) {
    options_.roles[static_cast<int>(r)].device_memory = true;
  }
  Make(std::size_t{1} << 30, /*device_memory=*/true);
  auto device_maps = [&] { return device_memory_.counters().maps.load(); };
  auto act = arena_->TakeLarge(Role::kActivations, 40 << 20, a_, 40 << 20);
  ASSERT_TRUE(act.ok());
  ASSERT_TRUE(Free(act->ptr, a_).ok());
  const std::uint64_t before = device_maps();
  auto kv = arena_->TakeLarge(Role::kKv, 40 << 20, a_, 40 << 20);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->ptr, act->ptr) << "the activation segment, freed on the caller's stream";
  EXPECT_EQ(device_maps(), before);
  EXPECT_EQ(counters_.segments_moved.load(), 1u);
  ASSERT_TRUE(Free(kv->ptr, a_).ok());
  // KV keeps its segments (a drained KV cache fills again): activations map anew.
  auto act2 = arena_->TakeLarge(Role::kActivations, 40 << 20, a_, 40 << 20);
  ASSERT_TRUE(act2.ok());
  EXPECT_EQ(device_maps(), before + 1);
  arena_->CheckInvariants();
  ASSERT_TRUE(Free(act2->ptr, a_).ok());
}

// A segment with a reserve is its space's room to grow: another space grows
// into its own reserve rather than take it. Before, the space it left mapped
// a new segment at its next growth, which the other space could take in turn:
// host replays of the per-layer serving traces with activations.slab_max:4MiB
// and events 100 ops late mapped 86 segments and read 1.04-1.08 of peak live.
TEST_F(ArenaTest, ASegmentWithAReserveStaysWithItsSpace) {
  options_.activations_share_kv_space = false;
  Make(std::size_t{1} << 30);
  auto kv0 = arena_->TakeLarge(Role::kKv, 2 << 20, a_, 2 << 20);  // KV's own segment
  auto act = arena_->TakeLarge(Role::kActivations, 40 << 20, a_, 40 << 20);
  ASSERT_TRUE(kv0.ok() && act.ok());
  ASSERT_TRUE(Free(act->ptr, a_).ok());
  const std::uint64_t before = maps();
  auto kv = arena_->TakeLarge(Role::kKv, 40 << 20, a_, 40 << 20);
  ASSERT_TRUE(kv.ok());
  EXPECT_NE(kv->ptr, act->ptr);
  EXPECT_EQ(counters_.segments_moved.load(), 0u);
  auto act2 = arena_->TakeLarge(Role::kActivations, 40 << 20, a_, 40 << 20);
  ASSERT_TRUE(act2.ok());
  EXPECT_EQ(act2->ptr, act->ptr) << "its own segment (its pages refilled if given back)";
  EXPECT_EQ(maps(), before) << "no space mapped a new segment";
  arena_->CheckInvariants();
  for (void* p : {kv0->ptr, kv->ptr, act2->ptr}) ASSERT_TRUE(Free(p, a_).ok());
}

TEST_F(ArenaTest, ReleaseFreeUnmapsWhollyFreeSegmentsOnly) {
  Make(std::size_t{1} << 30);
  auto keep = arena_->TakeLarge(Role::kActivations, 2 << 20, a_, 2 << 20);
  auto drop = arena_->TakeLarge(Role::kDefault, 64 << 20, a_, 64 << 20);
  ASSERT_TRUE(keep.ok() && drop.ok());
  ASSERT_TRUE(Free(drop->ptr, a_).ok());
  ASSERT_TRUE(arena_->ReleaseFree().ok());
  EXPECT_EQ(backend_.counters().unmaps.load(), 1u) << "the segment with a live block stays";
  EXPECT_EQ(counters_.reserved_bytes.current.load(), 2 << 20);
  EXPECT_EQ(pagemap_.Lookup(drop->ptr), nullptr);
  arena_->CheckInvariants();
  ASSERT_TRUE(Free(keep->ptr, a_).ok());
}

}  // namespace
}  // namespace umpool::internal
