#include "src/backend/host_backend.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

using umpool::testing::HostStream;

TEST(HostBackendTest, EventsCompleteAtOnceByDefault) {
  HostBackend b;
  auto e = b.CreateEvent();
  ASSERT_TRUE(e.ok());
  b.Submit(HostStream(1));
  ASSERT_TRUE(b.RecordEvent(*e, HostStream(1)).ok());
  EXPECT_TRUE(*b.QueryEvent(*e));
  b.DestroyEvent(*e);
}

TEST(HostBackendTest, ManualCompletionIsControlledByTheTest) {
  HostBackend b;
  b.SetManualCompletion(true);
  const Stream s = HostStream(1), t = HostStream(2);
  auto e = b.CreateEvent();
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(*b.QueryEvent(*e));  // never recorded: complete, as in CUDA
  b.Submit(s);
  ASSERT_TRUE(b.RecordEvent(*e, s).ok());
  EXPECT_FALSE(*b.QueryEvent(*e));
  b.Submit(s);  // later work does not delay the event
  // A stream waiting on the event completes only after it.
  ASSERT_TRUE(b.StreamWaitEvent(t, *e).ok());
  const std::uint64_t after = b.Submit(t);
  EXPECT_FALSE(b.IsComplete(t, after));
  b.Complete(t);
  EXPECT_TRUE(b.IsComplete(t, after));
  EXPECT_TRUE(*b.QueryEvent(*e)) << "the waited-on work must complete first";
  EXPECT_FALSE(b.IsComplete(s, 2));
  // Synchronising on an event is modelled as its work finishing.
  b.Submit(s);
  ASSERT_TRUE(b.RecordEvent(*e, s).ok());
  ASSERT_TRUE(b.SynchronizeEvent(*e).ok());
  EXPECT_TRUE(*b.QueryEvent(*e));
  EXPECT_FALSE(b.QueryEvent(reinterpret_cast<Event>(0x1)).ok());
}

// Orderings through waits (IsOrderedAfter), and a chain of streams waiting on
// each other in turn completes in linear time (it once took exponential time).
TEST(HostBackendTest, WaitsOrderLaterWorkAfterEarlierWork) {
  HostBackend b;
  b.SetManualCompletion(true);
  const Stream s = HostStream(1), t = HostStream(2), u = HostStream(3);
  auto e = b.CreateEvent();
  auto f = b.CreateEvent();
  ASSERT_TRUE(e.ok() && f.ok());
  const std::uint64_t work = b.Submit(s);
  EXPECT_FALSE(b.IsOrderedAfter(t, s, work));
  ASSERT_TRUE(b.RecordEvent(*e, s).ok());
  ASSERT_TRUE(b.StreamWaitEvent(t, *e).ok());
  EXPECT_TRUE(b.IsOrderedAfter(t, s, work)) << "t waits for s's work";
  EXPECT_FALSE(b.IsOrderedAfter(u, s, work));
  b.Submit(t);
  ASSERT_TRUE(b.RecordEvent(*f, t).ok());
  ASSERT_TRUE(b.StreamWaitEvent(u, *f).ok());
  EXPECT_TRUE(b.IsOrderedAfter(u, s, work)) << "through t's wait";
  for (int i = 0; i < 200; ++i) {  // s, t, u wait on each other in turn
    const Stream from = HostStream(1 + i % 3), to = HostStream(1 + (i + 1) % 3);
    b.Submit(from);
    ASSERT_TRUE(b.RecordEvent(*e, from).ok());
    ASSERT_TRUE(b.StreamWaitEvent(to, *e).ok());
  }
  b.CompleteAll();
  EXPECT_TRUE(b.IsComplete(s, work));
  b.DestroyEvent(*e);
  b.DestroyEvent(*f);
}

// A discard outside the memory the backend mapped is refused, not applied
// to whatever the process has there.
TEST(HostBackendTest, DiscardOutsideItsMappingsIsAnError) {
  HostBackend b(64u << 20);
  auto p = b.Map(4u << 20);
  ASSERT_TRUE(p.ok());
  std::vector<unsigned char> mine(1u << 20, 7);
  void* ptrs[] = {mine.data()};
  std::size_t sizes[] = {mine.size()};
  absl::Status st = b.Discard(ptrs, sizes, 1, DiscardMode::kDrop, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("outside the memory it mapped"), std::string::npos) << st;
  EXPECT_EQ(mine[12345], 7);
  void* in[] = {*p};
  std::size_t n[] = {4u << 20};
  EXPECT_TRUE(b.Discard(in, n, 1, DiscardMode::kDrop, nullptr).ok());
  ASSERT_TRUE(b.Unmap(*p, 2u << 20).ok());  // a piece goes on its own
  EXPECT_FALSE(b.Discard(in, n, 1, DiscardMode::kDrop, nullptr).ok());
  void* rest[] = {static_cast<char*>(*p) + (2u << 20)};
  std::size_t half[] = {2u << 20};
  EXPECT_TRUE(b.Discard(rest, half, 1, DiscardMode::kDrop, nullptr).ok());
  ASSERT_TRUE(b.Unmap(rest[0], 2u << 20).ok());
}

// As CUDA refuses a copy across two allocations (the staging copies once
// merged adjacent blocks of two segments into one copy).
TEST(HostBackendTest, CopiesPastTheEndOfAMappingOrStagingBufferAreRefused) {
  HostBackend b(64u << 20);
  auto p = b.Map(2u << 20);
  ASSERT_TRUE(p.ok());
  auto staging = b.AllocateStaging(1u << 20);
  ASSERT_TRUE(staging.ok());
  auto* dev = static_cast<unsigned char*>(*p);
  auto* host = static_cast<unsigned char*>(*staging);
  std::memset(host, 5, 1u << 20);
  ASSERT_TRUE(b.Copy(dev + (1u << 20), host, 1u << 20, nullptr).ok());  // ends at the end
  EXPECT_EQ(dev[(2u << 20) - 1], 5);
  absl::Status st = b.Copy(dev + (1u << 20) + 4096, host, 1u << 20, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("runs past the end"), std::string::npos) << st;
  st = b.Copy(dev, host + 4096, 1u << 20, nullptr);  // past the staging buffer's end
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_EQ(dev[0], 0);  // nothing copied
  std::vector<unsigned char> mine(1u << 20, 9);  // the caller's own memory: any range
  EXPECT_TRUE(b.Copy(mine.data(), host, mine.size(), nullptr).ok());
  EXPECT_EQ(mine[777], 5);
  b.FreeStaging(*staging, 1u << 20);
  ASSERT_TRUE(b.Unmap(*p, 2u << 20).ok());
}

TEST(HostBackendTest, MapsRespectCapacityAndInjectedFailures) {
  HostBackend b(8u << 20);
  auto p = b.Map(4u << 20);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(*p) % 256, 0u);
  EXPECT_TRUE(absl::IsResourceExhausted(b.Map(6u << 20).status()));
  b.FailNextMaps(1);
  EXPECT_TRUE(absl::IsResourceExhausted(b.Map(2u << 20).status()));
  auto q = b.Map(2u << 20);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(b.mapped_bytes(), 6u << 20);
  ASSERT_TRUE(b.Unmap(*p, 4u << 20).ok());
  ASSERT_TRUE(b.Unmap(*q, 2u << 20).ok());
  EXPECT_EQ(b.mapped_bytes(), 0u);
}

}  // namespace
}  // namespace umpool::internal
