// Large spaces on the host backend (events complete only when the test says
// so): 512 B granular best fit, one space per role, which segments move
// between spaces and on what terms, merging with ready neighbours, and the
// thread-cache flush before growing. Each rule is checked through addresses
// and backend map counts, the numbers the memory-efficiency claims rest on.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/pool_core.h"
#include "tests/test_util.h"

namespace umpool {
namespace {

using testing::HostStream;
constexpr std::size_t kMiB = std::size_t{1} << 20;

class LargeSpaceTest : public ::testing::Test {
 protected:
  void SetUp() override { Reset({}); }
  // Activations' large blocks in a space of their own (the rules between
  // roles' spaces; activations_share_kv_space off).
  void Apart() {
    PoolOptions o;
    o.activations_share_kv_space = false;
    Reset(o);
  }
  void Reset(PoolOptions o, std::size_t backend_capacity = 0) {
    pool_.reset();
    pool_ = testing::MakeHostPool(o, &backend_, backend_capacity);
    ASSERT_NE(pool_, nullptr);
    backend_->SetManualCompletion(true);
  }
  std::uint64_t maps() const { return backend_->counters().maps.load(); }
  void* Alloc(std::size_t n, Stream s, Role r = Role::kDefault) {
    auto p = pool_->Allocate(n, s, r);
    EXPECT_TRUE(p.ok()) << n << ": " << p.status();
    return p.ok() ? *p : nullptr;
  }
  void Free(void* p, Stream s) { ASSERT_TRUE(pool_->Deallocate(p, s).ok()); }
  static bool Inside(const void* p, const void* base, std::size_t bytes) {
    const auto a = reinterpret_cast<std::uintptr_t>(p), b = reinterpret_cast<std::uintptr_t>(base);
    return a >= b && a < b + bytes;
  }
  void Check() { internal::PoolCore::Unwrap(*pool_)->CheckInvariants(); }
  internal::HostBackend* backend_ = nullptr;
  std::unique_ptr<Pool> pool_;
  const Stream a_ = HostStream(1);
  const Stream b_ = HostStream(2);
  std::int64_t before_reserved_ = 0;
};

TEST_F(LargeSpaceTest, BlocksAre512ByteGranularAndShareSegments) {
  EXPECT_EQ(pool_->RoundedSize(kMiB + 1), kMiB + 512);
  EXPECT_EQ(pool_->RoundedSize(kMiB + 1, Role::kActivations), kMiB + kMiB / 8)
      << "activations take size classes up to 32 MiB";
  EXPECT_EQ(pool_->RoundedSize(100 * 1024, Role::kKv), 100 * 1024) << "kv: classes up to 64 KiB";
  void* p = Alloc(kMiB + 1, a_);
  void* q = Alloc(3 * kMiB + 7, a_);
  EXPECT_EQ(*pool_->BlockSize(p), kMiB + 512);
  EXPECT_EQ(*pool_->BlockSize(q), 3 * kMiB + 512);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q), reinterpret_cast<std::uintptr_t>(p) + kMiB + 512)
      << "both from the first segment (grown in place), from the front";
  EXPECT_EQ(maps(), 1u);
  void* s = Alloc(2 * kMiB, a_);  // after q: q's block is interior now
  Free(q, a_);
  // A rest below 1 MiB is not split off an interior block: the block keeps it.
  void* r = Alloc(3 * kMiB + 512 - 4096, a_);
  EXPECT_EQ(r, q);
  EXPECT_EQ(*pool_->BlockSize(r), 3 * kMiB + 512);
  EXPECT_EQ(maps(), 1u);
  for (void* x : {p, r, s}) Free(x, a_);
  Check();
}

TEST_F(LargeSpaceTest, AFreeBlockMergesWithTheReadyRestOfItsSegment) {
  void* p = Alloc(4 * kMiB, a_);  // a fresh 20 MiB segment: 4 live, 16 ready
  Free(p, a_);                     // freed on A, next to the ready rest
  void* whole = Alloc(20 * kMiB, a_);
  EXPECT_EQ(whole, p) << "the freed block and the rest are one free block for stream A";
  EXPECT_EQ(maps(), 1u);
  Free(whole, a_);
  Check();
}

// A block freed on a busy stream does not swallow the large ready range next
// to it: other streams keep reusing that range instead of growing the pool.
TEST_F(LargeSpaceTest, AReadyRangeStaysReadyNextToABlockFreedOnABusyStream) {
  const std::size_t size = 8 * kMiB;
  std::int64_t after_first = 0;
  for (int round = 0; round < 4; ++round) {
    void* x = Alloc(size, a_);
    const std::uint64_t work = backend_->Submit(a_);  // A's kernel still runs when x is freed
    Free(x, a_);
    std::vector<void*> ys;
    for (int i = 0; i < 8; ++i) {
      void* y = Alloc(size, b_);
      // x only behind a wait for A's kernel (reuse_pending_blocks).
      EXPECT_TRUE(y != x || backend_->IsOrderedAfter(b_, a_, work))
          << "round " << round << ": reused on B while A was busy";
      ys.push_back(y);
    }
    backend_->CompleteAll();
    for (void* y : ys) Free(y, b_);
    backend_->CompleteAll();
    Check();
    if (round == 0) after_first = pool_->GetStats().reserved_bytes.current;
  }
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, after_first)
      << "B's range stayed B's or ready: no growth after the first round";
}

// By default activations' large blocks come from the KV cache's space: the
// cache grows into the pages a prefill's activations left free, with no new
// mapping, and the shared space's bytes count under KV.
TEST_F(LargeSpaceTest, ActivationsShareTheKvCachesSpace) {
  void* act = Alloc(40 * kMiB, a_, Role::kActivations);
  Free(act, a_);
  const std::uint64_t before = maps();
  before_reserved_ = pool_->GetStats().reserved_bytes.current;
  void* kv = Alloc(24 * kMiB, a_, Role::kKv);
  void* kv2 = Alloc(16 * kMiB, a_, Role::kKv);
  EXPECT_EQ(kv, act) << "the KV cache takes the activation's free pages";
  EXPECT_TRUE(Inside(kv2, act, 40 * kMiB));
  EXPECT_EQ(maps(), before);
  EXPECT_GE(pool_->GetResidency(Role::kKv).reserved_bytes, 40 * kMiB);
  EXPECT_EQ(pool_->GetResidency(Role::kActivations).reserved_bytes, 0u)
      << "no live activations, no slabs";
  // A live activation in the shared space: its bytes are the activations',
  // the rest of the space KV's; the two add up to the space.
  const std::size_t kv_before = pool_->GetResidency(Role::kKv).reserved_bytes;
  void* act2 = Alloc(40 * kMiB, a_, Role::kActivations);
  const RoleResidency a = pool_->GetResidency(Role::kActivations);
  const RoleResidency k = pool_->GetResidency(Role::kKv);
  EXPECT_EQ(a.reserved_bytes, 40 * kMiB);
  EXPECT_EQ(a.allocated_bytes, 40 * kMiB);
  EXPECT_EQ(k.allocated_bytes, 40 * kMiB) << "kv and kv2 keep their role";
  EXPECT_GE(k.reserved_bytes, k.allocated_bytes);
  EXPECT_EQ(a.reserved_bytes + k.reserved_bytes,
            kv_before + (pool_->GetStats().reserved_bytes.current - before_reserved_));
  for (void* p : {kv, kv2, act2}) Free(p, a_);
  EXPECT_EQ(pool_->GetResidency(Role::kActivations).reserved_bytes, 0u);
  Check();
}

TEST_F(LargeSpaceTest, EachRoleHasItsOwnLargeSpace) {
  Apart();
  void* act = Alloc(40 * kMiB, a_, Role::kActivations);
  backend_->CompleteAll();
  Free(act, a_);
  // A KV buffer does not settle in the free activation segment (twice its
  // size or more): it would pin it, and the next large activation would map.
  void* kv = Alloc(2 * kMiB, a_, Role::kKv);
  EXPECT_FALSE(Inside(kv, act, 40 * kMiB));
  EXPECT_EQ(maps(), 2u);
  void* act2 = Alloc(40 * kMiB, a_, Role::kActivations);
  EXPECT_EQ(act2, act) << "the activation segment stayed whole";
  EXPECT_EQ(maps(), 2u);
  Free(act2, a_);
  Free(kv, a_);
  Check();
}

TEST_F(LargeSpaceTest, KvAndWeightsKeepTheirFreeSegments) {
  void* kv = Alloc(2 * kMiB, a_, Role::kKv);  // the kv space's first 20 MiB segment
  void* w = Alloc(12 * kMiB, a_, Role::kWeights);
  backend_->CompleteAll();
  Free(kv, a_);
  Free(w, a_);
  const std::uint64_t before = maps();
  void* act = Alloc(12 * kMiB, a_, Role::kDefault);  // would fit either freed segment
  EXPECT_FALSE(Inside(act, kv, 20 * kMiB));
  EXPECT_FALSE(Inside(act, w, 12 * kMiB));
  EXPECT_EQ(maps(), before + 1);
  void* kv2 = Alloc(2 * kMiB, a_, Role::kKv);
  EXPECT_EQ(kv2, kv) << "a drained KV space refills without a backend call";
  for (void* x : {act, kv2}) Free(x, a_);
  Check();
}

// Segments of plain device memory (no reserve: they move; one with a reserve
// stays with its space, arena_test).
TEST_F(LargeSpaceTest, AWhollyFreeSegmentMovesOnTheTermsItWasFreedOn) {
  PoolOptions o;
  o.activations_share_kv_space = false;
  for (Role r : {Role::kActivations, Role::kDefault}) {
    o.roles[static_cast<int>(r)].device_memory = true;
  }
  Reset(o);
  auto mapped = [&] { return pool_->GetStats().backend_allocations; };
  void* act = Alloc(40 * kMiB, a_, Role::kActivations);
  backend_->Submit(a_);  // A still uses it
  Free(act, a_);
  // Stream B may not take memory A still uses: a segment of its own.
  void* other = Alloc(30 * kMiB, b_, Role::kDefault);
  EXPECT_FALSE(Inside(other, act, 40 * kMiB));
  EXPECT_EQ(mapped(), 2u);
  // Stream A may: stream order makes it safe. The segment moves to the
  // default space and stays A's until a fence on A says otherwise.
  void* mine = Alloc(30 * kMiB, a_, Role::kDefault);
  EXPECT_EQ(mine, act);
  EXPECT_EQ(mapped(), 2u);
  EXPECT_EQ(pool_->GetStats().segments_moved, 1u);
  Free(mine, a_);
  Free(other, b_);
  Check();
}

TEST_F(LargeSpaceTest, ThreadCacheIsFlushedBeforeTheBackendIsAsked) {
  // A 2 MiB cap: one slab. Its blocks, all freed, sit in this thread's cache,
  // so the slab is not empty until the cache is flushed.
  PoolOptions o;
  o.capacity_bytes = 2 * kMiB;
  Reset(o);
  std::vector<void*> blocks;
  for (int i = 0; i < 32; ++i) blocks.push_back(Alloc(64 * 1024, a_));
  for (void* p : blocks) Free(p, a_);
  void* big = Alloc(2 * kMiB, a_, Role::kActivations);  // needs the whole slab's range
  EXPECT_NE(big, nullptr);
  EXPECT_EQ(maps(), 1u);
  EXPECT_EQ(pool_->GetStats().alloc_retries, 0u) << "served before the out-of-memory path";
  Free(big, a_);
  Check();
}

TEST_F(LargeSpaceTest, GrowthNearTheCapMapsWhatFitsNotAWholeChunk) {
  // A 40 MiB cap with 30 MiB in use: a 2 MiB request must not fail because
  // the space's usual 20 MiB growth chunk would exceed the cap.
  PoolOptions o;
  o.capacity_bytes = 40 * kMiB;
  Reset(o);
  void* big = Alloc(30 * kMiB, a_);
  void* small = Alloc(2 * kMiB, a_);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(pool_->GetStats().ooms, 0u);
  EXPECT_EQ(pool_->GetStats().alloc_retries, 0u);
  EXPECT_LE(pool_->GetStats().reserved_bytes.current, static_cast<std::int64_t>(40 * kMiB));
  Free(small, a_);
  Free(big, a_);
  Check();
}

// The block freed last is parked whole for its stream's next request of its
// size (large_heap.h): same address, no search. Everything else still sees
// it as free memory on its stream's terms.
TEST_F(LargeSpaceTest, TheLastFreedBlockIsParkedForItsStreamOnly) {
  const std::uint64_t work = backend_->Submit(a_);  // runs throughout: nothing freed on A is ready
  void* p = Alloc(8 * kMiB, a_);
  void* q = Alloc(8 * kMiB, a_);  // p's upper neighbour: p cannot merge upwards
  Free(p, a_);
  Check();
  EXPECT_EQ(Alloc(8 * kMiB, a_), p) << "the parked block comes back on its stream";
  Free(p, a_);
  EXPECT_EQ(pool_->Deallocate(p, a_).code(), absl::StatusCode::kFailedPrecondition)
      << "a parked block is free: freeing it again is a double free";
  EXPECT_FALSE(pool_->RecordStream(p, b_).ok()) << "nor can a stream be recorded on it";
  // A request that the parked block does not fit alone files it first: q,
  // freed on A next to p, parks and files p; the two serve 16 MiB in place.
  Free(q, a_);
  const std::uint64_t maps_before = maps();
  void* pq = Alloc(16 * kMiB, a_);
  EXPECT_EQ(pq, p) << "p and q merged once q left the parking spot";
  EXPECT_EQ(maps(), maps_before);
  Check();
  Free(pq, a_);
  // Stream B may not have it while A's work is unfinished.
  void* r = Alloc(16 * kMiB, b_);
  EXPECT_TRUE(r != pq || backend_->IsOrderedAfter(b_, a_, work))
      << "another stream reused a block freed on A before A's fence";
  Check();
  backend_->CompleteAll();
  Free(r, b_);
  // Trim files the parked block and releases what is wholly free.
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, 0);
  Check();
}

// In a space that takes its tail last (the KV cache's), a parked block with
// free room below it usable on its stream is not handed back from the middle
// of that room: the search carves the room from its front (a drained KV
// space's first block of the next cycle went where the last one freed lay,
// and later cycles placed differently from the first). A best-fit space (the
// default role's) keeps the plain fast path: the parked block comes back.
TEST_F(LargeSpaceTest, AParkedBlockAboveFreeRoomIsNotTakenFromItsMiddle) {
  for (const Role role : {Role::kKv, Role::kDefault}) {
    SCOPED_TRACE(role == Role::kKv ? "kv" : "default");
    Reset(PoolOptions{});
    void* p = Alloc(8 * kMiB, a_, role);
    void* q = Alloc(8 * kMiB, a_, role);
    void* sep = Alloc(2 * kMiB, a_, role);
    Free(p, a_);
    Free(q, a_);  // parks q, files p: free on A below q
    const std::uint64_t before = maps();
    void* r = Alloc(8 * kMiB, a_, role);
    if (role == Role::kKv) {
      EXPECT_EQ(r, p) << "the room p and q make, from its front";
    } else {
      EXPECT_EQ(r, q) << "the parked block, by the fast path";
    }
    EXPECT_EQ(maps(), before);
    Free(r, a_);  // parked, nothing free below it (kv): the fast path serves it
    EXPECT_EQ(Alloc(8 * kMiB, a_, role), r);
    for (void* x : {r, sep}) Free(x, a_);  // the other of p and q is free
    Check();
  }
}

}  // namespace

// The KV cache's space (RolePolicy::tail_last, on for kv by default) takes a
// segment's free tail only when no other free block holds the request: a
// 4 MiB block goes to a 6 MiB hole rather than the 5 MiB tail that best fit
// alone picks. The tail is what the first cycle of a steady workload grew;
// taking it last, later cycles place blocks where the first did.
TEST_F(LargeSpaceTest, TheKvSpaceTakesItsFreeTailLast) {
  for (const bool tail_last : {true, false}) {
    SCOPED_TRACE(tail_last ? "tail_last" : "best fit");
    PoolOptions o;
    o.roles[static_cast<int>(Role::kKv)].tail_last = tail_last;
    Reset(o);
    EXPECT_EQ(DefaultRolePolicy(Role::kKv).tail_last, true);
    // Each growth populates what the request lacks (2 MiB multiples).
    void* p = Alloc(8 * kMiB, a_, Role::kKv);
    void* hole = Alloc(6 * kMiB, a_, Role::kKv);
    void* sep = Alloc(kMiB, a_, Role::kKv);  // 16 MiB populated, a 1 MiB tail
    void* t = Alloc(5 * kMiB, a_, Role::kKv);  // grown to 20: the tail 0
    Free(t, a_);
    Free(hole, a_);  // files t's 5 MiB: the free tail
    const std::uint64_t before = maps();
    const std::int64_t reserved = pool_->GetStats().reserved_bytes.current;
    void* x = Alloc(4 * kMiB, a_, Role::kKv);
    EXPECT_EQ(x, tail_last ? hole : t);
    EXPECT_EQ(maps(), before);
    EXPECT_EQ(pool_->GetStats().reserved_bytes.current, reserved) << "nothing grew";
    // What the hole cannot hold takes the tail, still without growing.
    void* y = Alloc(5 * kMiB, a_, Role::kKv);
    EXPECT_EQ(y, tail_last ? t : hole) << "best fit: the 6 MiB hole; tail last: the tail";
    EXPECT_EQ(pool_->GetStats().reserved_bytes.current, reserved);
    for (void* z : {p, sep, x, y}) Free(z, a_);
    Check();
  }
}

// Slabs of many blocks (up to 8 MiB) and big slabs of one block (8-32 MiB
// activations) come from separate slab spaces: the hole a freed big slab
// leaves is there for the next big slab, not split by a small class's 2 MiB
// slab first (found on steady traces: a 22 MiB activation of a later cycle
// grew the space beside 20 MiB of free room cut in two).
TEST_F(LargeSpaceTest, ASmallClassSlabDoesNotSplitABigSlabsHole) {
  PoolOptions o;
  o.give_back_free_pages = false;  // the hole's pages stay populated
  Reset(o);
  void* big1 = Alloc(22 * kMiB, a_, Role::kActivations);  // a class of one block per slab
  void* big2 = Alloc(22 * kMiB, a_, Role::kActivations);
  backend_->CompleteAll();
  Free(big1, a_);
  backend_->CompleteAll();
  // A miss of the activations' large space gives the empty slab back to its
  // slab space: a 22 MiB hole.
  void* large = Alloc(96 * kMiB, a_, Role::kActivations);
  std::vector<void*> small;  // new slabs of a small class (256 KiB blocks)
  for (int i = 0; i < 24; ++i) small.push_back(Alloc(256 * 1024, a_, Role::kActivations));
  for (void* p : small) EXPECT_FALSE(Inside(p, big1, 22 * kMiB)) << "a small slab in the big hole";
  const Stats before = pool_->GetStats();
  void* big3 = Alloc(22 * kMiB, a_, Role::kActivations);
  EXPECT_EQ(big3, big1) << "the hole served the next big slab";
  EXPECT_EQ(pool_->GetStats().grown_in_place, before.grown_in_place);
  EXPECT_EQ(pool_->GetStats().backend_allocations, before.backend_allocations);
  EXPECT_EQ(pool_->GetStats().bare_refills, before.bare_refills);
  for (void* p : small) Free(p, a_);
  for (void* p : {big2, big3, large}) Free(p, a_);
  Check();
}

// A big class out of slabs first gives the empty slabs of smaller big
// classes back (its slab then goes as low as the free room allows); bigger
// classes keep theirs. Found on steady traces: an 8 MiB slab left empty at
// the big-slab space's start while 32 MiB slabs went above it, and the
// third found no room (blocks seed 9, the second cycle).
TEST_F(LargeSpaceTest, ABigClassOutOfSlabsTakesTheRoomOfSmallerEmptySlabs) {
  PoolOptions o;
  o.give_back_free_pages = false;
  Reset(o);
  // One-block slabs, each grown at the space's end: A 8, F 16, C 20, G 24,
  // H 30 MiB.
  void* a = Alloc(8 * kMiB, a_, Role::kActivations);
  void* f = Alloc(16 * kMiB, a_, Role::kActivations);
  void* c = Alloc(20 * kMiB, a_, Role::kActivations);
  void* g = Alloc(24 * kMiB, a_, Role::kActivations);
  void* h = Alloc(30 * kMiB, a_, Role::kActivations);
  ASSERT_EQ(static_cast<char*>(f), static_cast<char*>(a) + 8 * kMiB);
  ASSERT_EQ(static_cast<char*>(h), static_cast<char*>(g) + 24 * kMiB);
  // F, G and H freed; a 32 MiB slab gives their empty slabs back to the
  // space (A is live) and takes the front of G and H's 54 MiB. Then it and
  // A are freed: empty slabs, in their bins.
  for (void* p : {f, g, h}) Free(p, a_);
  backend_->CompleteAll();
  void* x = Alloc(32 * kMiB, a_, Role::kActivations);
  ASSERT_EQ(x, g);
  Free(x, a_);
  Free(a, a_);
  backend_->CompleteAll();
  // 20 MiB: the lowest room is A's empty slab and F (24 MiB), not the 22
  // MiB x left of G and H.
  const Stats before = pool_->GetStats();
  void* y = Alloc(20 * kMiB, a_, Role::kActivations);
  EXPECT_EQ(y, a) << "placed above a smaller class's empty slab";
  EXPECT_EQ(pool_->GetStats().grown_in_place, before.grown_in_place);
  // The 32 MiB class kept its slab: the same block again, no slab made.
  const Stats mid = pool_->GetStats();
  void* x2 = Alloc(32 * kMiB, a_, Role::kActivations);
  EXPECT_EQ(x2, x);
  EXPECT_EQ(pool_->GetStats().slabs, mid.slabs);
  for (void* p : {c, y, x2}) Free(p, a_);
  Check();
}

// A block freed with another stream recorded on it waits for fences; once
// they have completed, best fit sees it before anything else is split
// (stream_lists.h, TakeReusable's poll_first): the exact 32 MiB hole is
// taken, not the front of the 48 MiB block freed on the stream meanwhile.
TEST_F(LargeSpaceTest, CompletedPendingBlocksAreSeenByBestFit) {
  void* x = Alloc(32 * kMiB, a_);
  void* sep1 = Alloc(2 * kMiB, a_);
  void* z = Alloc(48 * kMiB, a_);
  void* sep2 = Alloc(2 * kMiB, a_);
  ASSERT_TRUE(pool_->RecordStream(x, b_).ok());
  Free(x, a_);  // pending: B's work and A's
  Free(z, a_);  // A's own group: reusable on A at once
  backend_->CompleteAll();
  const std::uint64_t before = maps();
  void* y = Alloc(32 * kMiB, a_);
  EXPECT_EQ(y, x) << "the completed pending block is the best fit";
  void* w = Alloc(48 * kMiB, a_);
  EXPECT_EQ(w, z) << "so the 48 MiB block is still whole";
  EXPECT_EQ(maps(), before);
  for (void* p : {y, sep1, w, sep2}) Free(p, a_);
  Check();
}

}  // namespace umpool
