#include "src/backend/host_backend.h"

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
