// A large heap (src/pool/large_heap.h) on its own, over made-up addresses
// (it keeps the books; the populate and drop callbacks stand in for the
// backend): the cases a pool's timing reaches only now and then.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/fence.h"
#include "src/pool/large_heap.h"
#include "src/pool/segment.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Growing a segment in place over a bare tail (pages given back, refilled
// for the growth) that sits after a larger block freed on another stream:
// the grown block is the caller's. Before 2b1e048 the refilled tail and the
// growth were merged on into that block, taking its stream's terms
// (model_test's concurrent phase hit it now and then: "a grown segment's
// tail is not the caller's").
TEST(LargeHeapTest, GrowingOverABareTailKeepsTheGrowthForTheCaller) {
  HostBackend backend;
  Fencer fencer{backend};
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2);
  const std::uintptr_t base = std::uintptr_t{1} << 40;  // never touched
  // Before the heap, which reads its segments as it goes.
  Segment seg(base, 1024 * kMiB, Role::kDefault, reinterpret_cast<void*>(base), 1024 * kMiB);
  seg.populated = 68 * kMiB;
  LargeHeap heap(512, kMiB, /*holds_slabs=*/false);
  // A: 64 MiB live on s1; the 4 MiB after it, the segment's free tail.
  LargeHeap::Taken a = heap.AddSegmentAndTake(&seg, 64 * kMiB, s1, 64 * kMiB);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(a.ptr), base);
  // The tail's pages given back: a bare block, which merges with no other.
  absl::StatusOr<std::size_t> dropped = heap.Depopulate(
      s1, /*own_stream=*/false, 4 * kMiB, /*keep_tails=*/false, LargeHeap::PageRange{},
      [](const std::vector<LargeHeap::PageRange>&) { return absl::OkStatus(); });
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  ASSERT_EQ(*dropped, 4 * kMiB);
  // A freed on s1, its work not done: reusable on s1 only.
  backend.SetManualCompletion(true);
  backend.Submit(s1);
  ASSERT_TRUE(heap.Free(base, s1, fencer).ok());
  // 8 MiB on s2: A is not reusable there; the tail is refilled and grown.
  std::vector<std::pair<std::uintptr_t, std::size_t>> populated;
  LargeHeap::Taken b = heap.ExtendAndTake(
      8 * kMiB, s2, 8 * kMiB, /*step=*/2 * kMiB, fencer,
      [&](Segment*, std::uintptr_t addr, std::size_t n) {
        populated.emplace_back(addr, n);
        return absl::OkStatus();
      },
      nullptr);
  ASSERT_NE(b.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.ptr), base + 64 * kMiB) << "the old tail's address";
  EXPECT_EQ(b.bytes, 8 * kMiB);
  ASSERT_EQ(populated.size(), 1u);
  EXPECT_EQ(populated[0].first, base + 64 * kMiB) << "the bare tail refilled with the growth";
  EXPECT_EQ(populated[0].second, 8 * kMiB);
  EXPECT_EQ(seg.populated, 72 * kMiB);
  backend.CompleteAll();
  ASSERT_TRUE(heap.Free(reinterpret_cast<std::uintptr_t>(b.ptr), s2, fencer).ok());
  heap.CheckInvariants();
}

// The joins' stage: one 100 MiB segment, wholly populated (no reserve, so
// nothing can grow), three streams. The segment outlives the heap.
class LargeHeapJoinTest : public ::testing::Test {
 protected:
  LargeHeapJoinTest() { seg.populated = 100 * kMiB; }
  HostBackend backend;
  Fencer fencer{backend};
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2),
               s3 = testing::HostStream(3);
  const std::uintptr_t base = std::uintptr_t{1} << 40;  // never touched
  Segment seg{base, 100 * kMiB, Role::kDefault, reinterpret_cast<void*>(base), 100 * kMiB};
  LargeHeap heap{512, kMiB, /*holds_slabs=*/false};
  // Takes blocks of the given MiB, each on its stream, from the segment's start in order;
  // returns their addresses.
  std::vector<std::uintptr_t> Lay(std::vector<std::pair<std::size_t, Stream>> blocks) {
    absl::Status events;
    std::vector<std::uintptr_t> at;
    for (auto [mib, s] : blocks) {
      LargeHeap::Taken t = at.empty() ? heap.AddSegmentAndTake(&seg, mib * kMiB, s, mib * kMiB)
                                      : heap.Take(mib * kMiB, s, mib * kMiB, fencer, &events);
      at.push_back(reinterpret_cast<std::uintptr_t>(t.ptr));
    }
    EXPECT_TRUE(events.ok()) << events;
    return at;
  }
  // Frees each of `taken` on `stream`.
  void FreeAll(std::initializer_list<LargeHeap::Taken> taken, Stream stream) {
    for (const LargeHeap::Taken& t : taken) {
      ASSERT_TRUE(heap.Free(reinterpret_cast<std::uintptr_t>(t.ptr), stream, fencer).ok());
    }
  }
};

// A request no single free block serves, beside neighbours that are each
// reusable on its stream: a block freed on that stream and a larger ready
// one, which the merge rules keep apart (a ready block joins a stream's
// only when no larger). They are joined for the request instead of the
// space growing; what it leaves of the ready block stays ready. Found in a
// steady trace's replay (blocks seed 2): a 28 MiB slab grew the big-slab
// space beside 18 + 26 + 24 MiB of such neighbours.
TEST_F(LargeHeapJoinTest, ARequestJoinsNeighboursUsableOnItsStream) {
  absl::Status events;
  LargeHeap::Taken a = heap.AddSegmentAndTake(&seg, 18 * kMiB, s1, 18 * kMiB);
  LargeHeap::Taken b = heap.Take(26 * kMiB, s1, 26 * kMiB, fencer, &events);
  LargeHeap::Taken d = heap.Take(56 * kMiB, s1, 56 * kMiB, fencer, &events);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(a.ptr), base);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(b.ptr), base + 18 * kMiB);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(d.ptr), base + 44 * kMiB);
  // A freed on s1 (its work not done); B freed on s2, whose work completed.
  backend.SetManualCompletion(true);
  backend.Submit(s1);
  ASSERT_TRUE(heap.Free(base, s1, fencer).ok());
  ASSERT_TRUE(heap.Free(base + 18 * kMiB, s2, fencer).ok());
  heap.ReleaseStream(s2);
  heap.CheckInvariants();
  LargeHeap::Taken c = heap.Take(28 * kMiB, s1, 28 * kMiB, fencer, &events);
  ASSERT_NE(c.ptr, nullptr) << "18 MiB freed on s1 and 26 MiB ready, side by side";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(c.ptr), base);
  EXPECT_EQ(c.bytes, 28 * kMiB);
  EXPECT_FALSE(c.cross_stream);
  EXPECT_NE(c.seq, 0u) << "it holds memory freed on s1: s1's terms";
  // The 16 MiB left of the ready block: reusable on any stream at once.
  LargeHeap::Taken e = heap.Take(16 * kMiB, s3, 16 * kMiB, fencer, &events);
  ASSERT_NE(e.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(e.ptr), base + 28 * kMiB);
  EXPECT_TRUE(e.cross_stream) << "from the ready group";
  heap.CheckInvariants();
  EXPECT_TRUE(events.ok()) << events;
  backend.CompleteAll();
  ASSERT_NO_FATAL_FAILURE(FreeAll({c, e, d}, s1));
  heap.CheckInvariants();
}

// A search fences the other streams' free groups before it picks (docs/arena-streams.md,
// "Fences at every search"): a block freed on a side stream serves the main stream's best fit
// once the side stream is past it, and never before. Until then, a side stream's blocks stayed
// its own until a search found nothing: the main stream split its own larger blocks around them
// (one-role serving traces: 1.0122 of peak live against 1.0088 with the fences).
TEST_F(LargeHeapJoinTest, ASearchTakesAnotherStreamsTightestBlockOnceThatStreamIsPast) {
  absl::Status events;
  // Y 4 MiB on s2, a 4 MiB separator, 40 MiB, another separator (on s1); the rest (48 MiB) free.
  const std::vector<std::uintptr_t> at = Lay({{4, s2}, {4, s1}, {40, s1}, {4, s1}});
  ASSERT_EQ(at, (std::vector<std::uintptr_t>{base, base + 4 * kMiB, base + 8 * kMiB,
                                             base + 48 * kMiB}));
  // Y freed on s2 while s2's work runs; the 40 MiB freed on s1.
  backend.SetManualCompletion(true);
  backend.Submit(s2);
  ASSERT_TRUE(heap.Free(base, s2, fencer).ok());
  ASSERT_TRUE(heap.Free(base + 8 * kMiB, s1, fencer).ok());
  // s2 still busy: Y is fenced but not reusable on s1; the 40 MiB serves.
  LargeHeap::Taken early = heap.Take(4 * kMiB, s1, 4 * kMiB, fencer, &events);
  ASSERT_NE(early.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(early.ptr), base + 8 * kMiB)
      << "Y went to s1 while s2's work ran";
  heap.CheckInvariants();
  // s2 past Y: the next search on s1 takes it, the tightest fit.
  backend.CompleteAll();
  LargeHeap::Taken late = heap.Take(4 * kMiB, s1, 4 * kMiB, fencer, &events);
  ASSERT_NE(late.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(late.ptr), base) << "Y, adopted by s1";
  // And the other way: s3's search fences s1's 36 MiB rest (s1 idle) and takes it whole
  // rather than splitting the larger free tail.
  LargeHeap::Taken rest = heap.Take(36 * kMiB, s3, 36 * kMiB, fencer, &events);
  ASSERT_NE(rest.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(rest.ptr), base + 12 * kMiB);
  EXPECT_TRUE(events.ok()) << events;
  heap.CheckInvariants();
  ASSERT_NO_FATAL_FAILURE(FreeAll({late, early}, s1));
  ASSERT_NO_FATAL_FAILURE(FreeAll({rest}, s3));
  heap.CheckInvariants();
}

// The other way round: a search on s2 fences s1's free blocks while s1's work runs; s1 still
// reuses them at once (its own work runs in order). Without that they sat pending, unseen by s1,
// until the GPU caught up with s1's queued work.
TEST_F(LargeHeapJoinTest, BlocksAnotherStreamFencedStayTheirStreamsToReuseAtOnce) {
  absl::Status events;
  LargeHeap::Taken x = heap.AddSegmentAndTake(&seg, 8 * kMiB, s1, 8 * kMiB);
  LargeHeap::Taken sep = heap.Take(4 * kMiB, s1, 4 * kMiB, fencer, &events);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(x.ptr), base);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(sep.ptr), base + 8 * kMiB);
  backend.SetManualCompletion(true);
  backend.Submit(s1);  // s1's work runs on
  ASSERT_TRUE(heap.Free(base, s1, fencer).ok());
  // s2's search fences s1's group (not passed: X stays out of s2's reach) and takes the tail.
  LargeHeap::Taken other = heap.Take(16 * kMiB, s2, 16 * kMiB, fencer, &events);
  ASSERT_NE(other.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(other.ptr), base + 12 * kMiB);
  heap.CheckInvariants();
  // s1 takes X back at once, its fence still outstanding.
  LargeHeap::Taken again = heap.Take(8 * kMiB, s1, 8 * kMiB, fencer, &events);
  ASSERT_NE(again.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(again.ptr), base) << "X, s1's own block";
  EXPECT_FALSE(again.cross_stream);
  EXPECT_TRUE(events.ok()) << events;
  heap.CheckInvariants();
  backend.CompleteAll();
  ASSERT_NO_FATAL_FAILURE(FreeAll({again, sep}, s1));
  ASSERT_NO_FATAL_FAILURE(FreeAll({other}, s2));
  heap.CheckInvariants();
}

// A slab range's search (TakeSlabRange: default-role slabs carved from the large space) reuses
// its stream's own blocks that another stream's search fenced, at once, as Take's does. Before,
// it looked at its own stream group and the ready one only, so it carved the large free tail
// while its own block sat pending (or the arena made the stream wait on its own fence for it:
// an ordered reuse). Another stream's free block stays out of it, that stream past it or not.
TEST_F(LargeHeapJoinTest, ASlabRangeSearchReusesItsOwnFencedBlocks) {
  absl::Status events;
  // X 8 MiB, a 4 MiB separator, Y 4 MiB (on s2), another separator; the rest (80 MiB) free, ready.
  const std::vector<std::uintptr_t> at = Lay({{8, s1}, {4, s1}, {4, s2}, {4, s1}});
  ASSERT_EQ(at[3], base + 16 * kMiB);
  // X freed on s1 while s1's work runs; a search on s3 fences s1's group (not passed).
  backend.SetManualCompletion(true);
  backend.Submit(s1);
  ASSERT_TRUE(heap.Free(at[0], s1, fencer).ok());
  LargeHeap::Taken t3 = heap.Take(16 * kMiB, s3, 16 * kMiB, fencer, &events);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(t3.ptr), base + 20 * kMiB) << "the free tail";
  // s1's slab range comes from X, its own block, at once.
  LargeHeap::Taken x = heap.TakeSlabRange(2 * kMiB, s1, fencer);
  ASSERT_NE(x.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(x.ptr), base) << "X, fenced by s3's search";
  EXPECT_FALSE(x.cross_stream);
  heap.CheckInvariants();
  // Y freed on s2, s2 past it: s1's next slab range comes from X's rest, not from Y.
  backend.CompleteAll();
  ASSERT_TRUE(heap.Free(at[2], s2, fencer).ok());
  LargeHeap::Taken y = heap.TakeSlabRange(4 * kMiB, s1, fencer);
  ASSERT_NE(y.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(y.ptr), base + 2 * kMiB) << "X's rest";
  EXPECT_TRUE(events.ok()) << events;
  heap.CheckInvariants();
  for (const LargeHeap::Taken& t : {x, y}) heap.GiveBack(reinterpret_cast<std::uintptr_t>(t.ptr), {});
  ASSERT_NO_FATAL_FAILURE(FreeAll({t3}, s3));
  heap.CheckInvariants();
}

// Blocks adopted by a stream (a group whose fences completed, LargeHeap::Adopt) merge with that
// stream's free neighbours; those between live neighbours move in as they are, in one step (the
// whole group at once when the stream's own group is smaller). Either way each is the stream's.
TEST_F(LargeHeapJoinTest, AdoptedBlocksMergeWithTheAdoptersNeighbours) {
  absl::Status events;
  // Live L 4 MiB, A 4, L, B 4, C 4 (on s2), L, D 6, L, E 2 (on s3), L; the rest free.
  const std::vector<std::uintptr_t> at = Lay(
      {{4, s1}, {4, s1}, {4, s1}, {4, s1}, {4, s2}, {4, s1}, {6, s1}, {4, s1}, {2, s3}, {4, s1}});
  ASSERT_EQ(at[9], base + 36 * kMiB);
  const std::uintptr_t a = at[1], b = at[3], c = at[4], d = at[6], e = at[8];
  // A, B and D freed on s1, C on s2, E on s3 (every stream idle: fences complete at once).
  for (std::uintptr_t p : {a, b, d}) ASSERT_TRUE(heap.Free(p, s1, fencer).ok());
  ASSERT_TRUE(heap.Free(c, s2, fencer).ok());
  ASSERT_TRUE(heap.Free(e, s3, fencer).ok());
  // s2's search adopts s1's group: B merges with C (8 MiB, the best fit), A and D move in whole.
  LargeHeap::Taken bc = heap.Take(8 * kMiB, s2, 8 * kMiB, fencer, &events);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(bc.ptr), b) << "B and C merged";
  heap.CheckInvariants();
  // s3's search adopts s2's group (A, D) into its own smaller one (E) whole; each is s3's now.
  LargeHeap::Taken e2 = heap.Take(2 * kMiB, s3, 2 * kMiB, fencer, &events);
  LargeHeap::Taken d2 = heap.Take(6 * kMiB, s3, 6 * kMiB, fencer, &events);
  LargeHeap::Taken a2 = heap.Take(4 * kMiB, s3, 4 * kMiB, fencer, &events);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(e2.ptr), e);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(d2.ptr), d);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a2.ptr), a);
  for (const LargeHeap::Taken& t : {e2, d2, a2}) {
    EXPECT_FALSE(t.cross_stream) << "an adopted block is the adopter's own";
    EXPECT_NE(t.seq, 0u);
  }
  EXPECT_TRUE(events.ok()) << events;
  heap.CheckInvariants();
}

// The same join when what the request leaves comes from a block freed on
// the stream: that rest stays the stream's (its work may not have run), so
// another stream cannot take it before a fence says so.
TEST_F(LargeHeapJoinTest, WhatAJoinLeavesOfAStreamsBlockStaysThatStreams) {
  absl::Status events;
  // A 18, B 26, C 24, D 32 MiB, all live on s1.
  std::vector<std::uintptr_t> at;
  at.push_back(reinterpret_cast<std::uintptr_t>(heap.AddSegmentAndTake(&seg, 18 * kMiB, s1, 18 * kMiB).ptr));
  for (std::size_t mib : {26, 24, 32}) {
    at.push_back(reinterpret_cast<std::uintptr_t>(heap.Take(mib * kMiB, s1, mib * kMiB, fencer, &events).ptr));
  }
  ASSERT_EQ(at[3], base + 68 * kMiB);
  // A and C freed on s1, their work not run; B freed on s2 and done: ready,
  // and larger than C, so apart from both.
  backend.SetManualCompletion(true);
  backend.Submit(s1);
  ASSERT_TRUE(heap.Free(at[0], s1, fencer).ok());
  ASSERT_TRUE(heap.Free(at[2], s1, fencer).ok());
  ASSERT_TRUE(heap.Free(at[1], s2, fencer).ok());
  heap.ReleaseStream(s2);
  // 46 MiB on s1: B and C together (50 MiB) are the fewest bytes that hold it.
  LargeHeap::Taken c = heap.Take(46 * kMiB, s1, 46 * kMiB, fencer, &events);
  ASSERT_NE(c.ptr, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(c.ptr), base + 18 * kMiB);
  EXPECT_NE(c.seq, 0u);
  // Its 4 MiB rest is C's, freed on s1: not s3's while s1's work is queued.
  LargeHeap::Taken e = heap.Take(4 * kMiB, s3, 4 * kMiB, fencer, &events);
  EXPECT_EQ(e.ptr, nullptr) << "s3 got memory s1's queued work may still use";
  heap.CheckInvariants();
  // Once s1's work has run, the fence s3's search recorded lets s3 have it.
  backend.CompleteAll();
  LargeHeap::Taken f = heap.Take(4 * kMiB, s3, 4 * kMiB, fencer, &events);
  ASSERT_NE(f.ptr, nullptr);
  EXPECT_TRUE(events.ok()) << events;
  ASSERT_NO_FATAL_FAILURE(FreeAll({c, f}, s1));
  ASSERT_TRUE(heap.Free(at[3], s1, fencer).ok());
  heap.CheckInvariants();
}

// What a split leaves of a free block is as old as the block: its pages were
// freed when the block's were. The rest's record may be a recycled one (a
// block absorbed by a merge); until 2026-12-02 it kept that block's free
// time, so pages given back "oldest first" were chosen by a stale clock.
TEST_F(LargeHeapJoinTest, ARestKeepsItsBlocksFreeTime) {
  absl::Status events;
  // A 10 MiB, X 2 (stays live: A never merges with B), B and C 10 each, D
  // the other 68, all live on s1.
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(
      heap.AddSegmentAndTake(&seg, 10 * kMiB, s1, 10 * kMiB).ptr);
  std::vector<std::uintptr_t> xbcd;
  for (std::size_t mib : {2, 10, 10, 68}) {
    xbcd.push_back(reinterpret_cast<std::uintptr_t>(
        heap.Take(mib * kMiB, s1, mib * kMiB, fencer, &events).ptr));
  }
  ASSERT_EQ(xbcd[3], base + 32 * kMiB);
  // A freed first (the oldest), then B and C, which merge: C's record goes
  // to the heap's spares, with C's (newer) free time in it.
  for (std::uintptr_t p : {a, xbcd[1], xbcd[2]}) ASSERT_TRUE(heap.Free(p, s1, fencer).ok());
  // 4 MiB from A (the best fit): its 6 MiB rest takes a spare record.
  LargeHeap::Taken t = heap.Take(4 * kMiB, s1, 4 * kMiB, fencer, &events);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(t.ptr), base);
  // One page to give back: the oldest free pages are A's rest's.
  std::vector<LargeHeap::PageRange> dropped;
  absl::StatusOr<std::size_t> n = heap.Depopulate(
      s1, /*own_stream=*/true, 2 * kMiB, /*keep_tails=*/false, LargeHeap::PageRange{},
      [&](const std::vector<LargeHeap::PageRange>& r) {
        dropped = r;
        return absl::OkStatus();
      });
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_GE(dropped[0].addr, base + 4 * kMiB);
  EXPECT_LE(dropped[0].addr + dropped[0].bytes, base + 10 * kMiB)
      << "pages of B and C (freed later) given back before A's";
  EXPECT_TRUE(events.ok()) << events;
  heap.CheckInvariants();
}

// A first-fit space (LargeHeap::Fit::kFirst: the big-slab space) takes the
// lowest-addressed run of blocks usable on the stream, one block or
// several, where best fit takes the tightest block: after the same frees,
// the same request lands at the same low address, so a repeating step places
// its slabs where the step before did (a steady trace's second cycle grew
// the big-slab space in 5 of 30 replays with best fit; docs/arena.md, "First
// fit for big slabs").
TEST(LargeHeapFitTest, FirstFitTakesTheLowestRunWhereBestFitTakesTheTightestBlock) {
  HostBackend backend;
  Fencer fencer{backend};
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2);
  const std::uintptr_t base = std::uintptr_t{1} << 40;  // never touched
  absl::Status events;
  for (LargeHeap::Fit fit : {LargeHeap::Fit::kBest, LargeHeap::Fit::kFirst}) {
    SCOPED_TRACE(fit == LargeHeap::Fit::kFirst ? "first fit" : "best fit");
    Segment seg(base, 100 * kMiB, Role::kDefault, reinterpret_cast<void*>(base), 100 * kMiB);
    seg.populated = 100 * kMiB;
    LargeHeap heap(2 * kMiB, 2 * kMiB, /*holds_slabs=*/true, fit);
    // A 8, B 14, X 4, C 12, Y 4, D 58 MiB, all live on s1.
    std::vector<std::uintptr_t> at{reinterpret_cast<std::uintptr_t>(
        heap.AddSegmentAndTake(&seg, 8 * kMiB, s1, 0).ptr)};
    for (std::size_t mib : {14, 4, 12, 4, 58}) {
      at.push_back(reinterpret_cast<std::uintptr_t>(
          heap.Take(mib * kMiB, s1, 0, fencer, &events).ptr));
    }
    ASSERT_EQ(at[5], base + 42 * kMiB);
    // A given back on s1 (its work queued), B on s2 and done (ready, larger
    // than A: they stay apart), C ready.
    backend.SetManualCompletion(true);
    backend.Submit(s1);
    heap.GiveBack(at[0], ReuseTerms{true, s1, fencer.Stamp(), {}});
    heap.GiveBack(at[1], ReuseTerms{});
    heap.GiveBack(at[3], ReuseTerms{});
    heap.CheckInvariants();
    // 10 MiB on s1: C alone is the tightest; A + B is the lowest run.
    LargeHeap::Taken t = heap.Take(10 * kMiB, s1, 0, fencer, &events);
    ASSERT_NE(t.ptr, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.ptr),
              fit == LargeHeap::Fit::kFirst ? base : base + 26 * kMiB);
    EXPECT_EQ(t.bytes, 10 * kMiB);
    // s2 may not have A's memory (s1's work may still use it): first fit
    // on s2 goes to B's ready part or C, whichever is lowest and free.
    LargeHeap::Taken u = heap.Take(2 * kMiB, s2, 0, fencer, &events);
    ASSERT_NE(u.ptr, nullptr);
    EXPECT_GE(reinterpret_cast<std::uintptr_t>(u.ptr), base + 8 * kMiB)
        << "s2 got memory s1's queued work may still use";
    heap.CheckInvariants();
    EXPECT_TRUE(events.ok()) << events;
    backend.CompleteAll();
    backend.SetManualCompletion(false);
  }
}

// First fit asks the other streams' fences when their free blocks lie below
// the run it found: a block another stream freed a moment ago would push each
// slab of a step above where the step before put it (per-layer seed 22's
// second cycle grew the big-slab space so; docs/arena.md). Still queued, the
// block is passed over and nothing waits.
TEST(LargeHeapFitTest, FirstFitFencesOtherStreamsBlocksBelowTheRunItFound) {
  const Stream s1 = testing::HostStream(1), s2 = testing::HostStream(2);
  const std::uintptr_t base = std::uintptr_t{1} << 40;  // never touched
  for (bool s2_done : {true, false}) {
    SCOPED_TRACE(s2_done ? "s2's work done" : "s2's work queued");
    HostBackend backend;
    Fencer fencer{backend};
    absl::Status events;
    Segment seg(base, 100 * kMiB, Role::kDefault, reinterpret_cast<void*>(base), 100 * kMiB);
    seg.populated = 100 * kMiB;
    LargeHeap heap(2 * kMiB, 2 * kMiB, /*holds_slabs=*/true, LargeHeap::Fit::kFirst);
    // A 20, B 30, C 50 MiB, live on s1.
    const auto a = reinterpret_cast<std::uintptr_t>(heap.AddSegmentAndTake(&seg, 20 * kMiB, s1, 0).ptr);
    const auto b = reinterpret_cast<std::uintptr_t>(heap.Take(30 * kMiB, s1, 0, fencer, &events).ptr);
    ASSERT_NE(heap.Take(50 * kMiB, s1, 0, fencer, &events).ptr, nullptr);
    backend.SetManualCompletion(!s2_done);
    backend.Submit(s2);
    heap.GiveBack(a, ReuseTerms{true, s2, fencer.Stamp(), {}});
    heap.GiveBack(b, ReuseTerms{true, s1, fencer.Stamp(), {}});
    heap.CheckInvariants();
    LargeHeap::Taken t = heap.Take(30 * kMiB, s1, 0, fencer, &events);
    ASSERT_NE(t.ptr, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.ptr), s2_done ? a : b);
    heap.CheckInvariants();
    EXPECT_TRUE(events.ok()) << events;
    backend.CompleteAll();
    backend.SetManualCompletion(false);
  }
}

}  // namespace
}  // namespace umpool::internal
