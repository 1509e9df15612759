// A ThreadCache on its own, over a fake CentralCache: what it keeps, what it
// hands down and when, and the streams it claims; and ThreadCaches' drain when
// the central cache fails.
#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <new>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/heavy_fence.h"
#include "src/pool/counters.h"
#include "src/pool/size_class.h"
#include "src/pool/thread_cache.h"
#include "src/pool/thread_caches.h"
#include "tests/test_util.h"

namespace umpool::internal {
namespace {

using testing::HostStream;

class FakeCentral final : public CentralCache {
 public:
  void Return(Stream stream, Role role, int cls, void* const* blocks, int n) override {
    auto& v = returned[{stream, role, cls}];
    v.insert(v.end(), blocks, blocks + n);
  }
  void StreamClaimed(Stream stream) override { claimed.push_back(stream); }
  std::size_t Returned(Stream s, Role r, int cls) { return returned[{s, r, cls}].size(); }
  std::map<std::tuple<Stream, Role, int>, std::vector<void*>> returned;
  std::vector<Stream> claimed;
};

void* Block(int i) { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(0x1000 * (i + 1))); }

constexpr int kClasses = 16;
const int k4K = SizeClassIndex(4096);

TEST(ThreadCacheTest, PopsWhatItPushedOnTheSameStreamOnly) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  const Stream a = HostStream(1), b = HostStream(2);
  EXPECT_EQ(tc.Pop(a, Role::kDefault, k4K), nullptr);
  tc.Push(a, Role::kDefault, k4K, Block(0), 1 << 30);
  EXPECT_EQ(tc.cached_bytes.Get(), 4096);
  EXPECT_EQ(tc.Pop(b, Role::kDefault, k4K), nullptr) << "a block freed on A stays A's";
  EXPECT_EQ(tc.Pop(a, Role::kKv, k4K), nullptr) << "bins are per role";
  EXPECT_EQ(tc.Pop(a, Role::kDefault, k4K), Block(0));
  EXPECT_EQ(tc.cached_bytes.Get(), 0);
  EXPECT_EQ(central.claimed, (std::vector<Stream>{a, b})) << "each stream claimed once";
}

TEST(ThreadCacheTest, AFullBinHandsItsOlderHalfDown) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  const Stream a = HostStream(1);
  const std::uint32_t cap = ThreadCache::CapacityFor(4096);
  for (std::uint32_t i = 0; i <= cap; ++i) tc.Push(a, Role::kDefault, k4K, Block(i), 1 << 30);
  const auto& down = central.returned[{a, Role::kDefault, k4K}];
  ASSERT_EQ(down.size(), cap / 2);
  EXPECT_EQ(down.front(), Block(0)) << "the oldest go down, the hot ones stay";
  EXPECT_EQ(tc.Pop(a, Role::kDefault, k4K), Block(cap));
}

TEST(ThreadCacheTest, TheByteCapFlushesTheBinThatPassesIt) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  const Stream a = HostStream(1);
  tc.Push(a, Role::kDefault, k4K, Block(0), 8192);
  tc.Push(a, Role::kDefault, k4K, Block(1), 8192);
  EXPECT_TRUE(central.returned.empty());
  tc.Push(a, Role::kDefault, k4K, Block(2), 8192);  // 12 KiB > 8 KiB
  EXPECT_EQ(central.Returned(a, Role::kDefault, k4K), 3u);
  EXPECT_EQ(tc.cached_bytes.Get(), 0);
}

TEST(ThreadCacheTest, TheLeastRecentlyUsedStreamSlotIsFlushedWhenAFifthStreamComes) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  for (int s = 1; s <= ThreadCache::kStreamSlots; ++s) {
    tc.Push(HostStream(s), Role::kDefault, k4K, Block(s), 1 << 30);
  }
  EXPECT_TRUE(central.returned.empty());
  tc.Push(HostStream(9), Role::kDefault, k4K, Block(9), 1 << 30);
  ASSERT_EQ(central.returned.size(), 1u);
  EXPECT_EQ(central.returned.begin()->first, std::make_tuple(HostStream(1), Role::kDefault, k4K))
      << "stream 1 was used least recently";
}

TEST(ThreadCacheTest, FlushOtherStreamsAndFlushAllWithUnclaim) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  const Stream a = HostStream(1), b = HostStream(2);
  tc.Push(a, Role::kDefault, k4K, Block(0), 1 << 30);
  tc.Push(b, Role::kDefault, k4K, Block(1), 1 << 30);
  tc.FlushOtherStreams(b, Role::kDefault, k4K);
  EXPECT_EQ(central.Returned(a, Role::kDefault, k4K), 1u) << "A's block goes down for B";
  EXPECT_EQ(tc.Pop(b, Role::kDefault, k4K), Block(1));
  tc.Push(b, Role::kDefault, k4K, Block(2), 1 << 30);
  const std::size_t claims = central.claimed.size();
  tc.FlushAll(/*unclaim=*/true);
  EXPECT_EQ(central.Returned(b, Role::kDefault, k4K), 1u);
  tc.Push(b, Role::kDefault, k4K, Block(3), 1 << 30);
  EXPECT_EQ(central.claimed.size(), claims + 1) << "after an unclaim the stream is claimed anew";
}

TEST(ThreadCacheTest, TakeAllHandsOverEveryBinAndLeavesTheCacheUsable) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  const Stream a = HostStream(1), b = HostStream(2);
  const int k1K = SizeClassIndex(1024);
  tc.Push(a, Role::kDefault, k4K, Block(0), 1 << 30);
  tc.Push(a, Role::kDefault, k4K, Block(1), 1 << 30);
  tc.Push(b, Role::kKv, k1K, Block(2), 1 << 30);
  std::vector<ThreadCache::TakenBin> taken;
  taken.reserve(static_cast<std::size_t>(tc.bins()));
  tc.TakeAll(&taken);
  ASSERT_EQ(taken.size(), 2u);
  std::map<std::tuple<Stream, Role, int>, std::vector<void*>> got;
  for (const ThreadCache::TakenBin& t : taken) {
    got[{t.stream, t.role, t.size_class}].assign(t.slots, t.slots + t.count);
    delete[] t.slots;
  }
  EXPECT_EQ((got[{a, Role::kDefault, k4K}]), (std::vector<void*>{Block(0), Block(1)}));
  EXPECT_EQ((got[{b, Role::kKv, k1K}]), (std::vector<void*>{Block(2)}));
  EXPECT_EQ(tc.cached_bytes.Get(), 0);
  EXPECT_TRUE(central.returned.empty()) << "the drainer returns what it took, not the cache";
  EXPECT_EQ(tc.Pop(a, Role::kDefault, k4K), nullptr);
  tc.Push(a, Role::kDefault, k4K, Block(3), 1 << 30);  // a new array for the bin
  EXPECT_EQ(tc.Pop(a, Role::kDefault, k4K), Block(3));
  tc.FlushAll();
  EXPECT_TRUE(central.returned.empty()) << "nothing is handed down twice";
}

TEST(ThreadCacheTest, EnterWaitsWhileADrainerHoldsTheCache) {
  FakeCentral central;
  ThreadCache tc(&central, 1, kClasses);
  tc.claimed.store(true);
  std::atomic<bool> entered{false};
  std::thread owner([&] {
    tc.Enter();
    entered.store(true);
    tc.Leave();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(entered.load()) << "the owner entered a claimed cache";
  tc.claimed.store(false, std::memory_order_release);
  owner.join();
  EXPECT_TRUE(entered.load());
  EXPECT_FALSE(tc.Inside());
  {
    tc.Enter();
    CacheUse outer(&tc, /*entered=*/true);
    CacheUse inner(&tc, /*entered=*/!tc.Inside());
    EXPECT_TRUE(tc.Inside());
  }
  EXPECT_FALSE(tc.Inside()) << "the outermost use left";
}

// A central cache whose Return fails once (its lists could not grow), as
// the pool's can when host memory runs out.
class FailingCentral final : public CentralCache {
 public:
  void Return(Stream stream, Role role, int cls, void* const* blocks, int n) override {
    if (fail_next) {
      fail_next = false;
      throw std::bad_alloc();
    }
    ok.Return(stream, role, cls, blocks, n);
  }
  void StreamClaimed(Stream stream) override { ok.StreamClaimed(stream); }
  bool fail_next = true;
  FakeCentral ok;
};

TEST(ThreadCachesTest, ADrainWhoseReturnThrowsStillReturnsTheOtherBins) {
  if (!HeavyFenceReady()) GTEST_SKIP() << "membarrier is unavailable here: nothing drains";
  FailingCentral central;
  PoolCounters counters;
  ThreadCaches caches(&central, counters, kClasses, 1 << 20, /*drain=*/true);
  const Stream s = HostStream(1);
  const int k1K = SizeClassIndex(1024), k2K = SizeClassIndex(2048);
  std::latch filled(1), done(1);
  std::thread quiet([&] {  // fills three bins, then stays alive outside the pool
    {
      CacheUse tc = caches.Current();
      tc->Push(s, Role::kDefault, k1K, Block(0), 1 << 30);
      tc->Push(s, Role::kDefault, k2K, Block(1), 1 << 30);
      tc->Push(s, Role::kDefault, k4K, Block(2), 1 << 30);
      tc->Push(s, Role::kDefault, k4K, Block(3), 1 << 30);
    }
    filled.count_down();
    done.wait();
  });
  filled.wait();
  EXPECT_THROW(caches.DrainIdle(), std::bad_alloc);
  std::size_t back = 0;
  for (const auto& [key, blocks] : central.ok.returned) back += blocks.size();
  // One of the three bins was the one whose Return threw; the two others came back.
  EXPECT_EQ(central.ok.returned.size(), 2u);
  EXPECT_GE(back, 2u);
  EXPECT_LE(back, 3u);
  EXPECT_FALSE(caches.DrainIdle()) << "the quiet thread's cache was emptied all the same";
  done.count_down();
  quiet.join();
}

}  // namespace
}  // namespace umpool::internal
