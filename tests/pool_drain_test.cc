// The conformance suite, drains (PoolOptions::drain_idle_caches): a thread
// that has gone quiet keeps no memory from the others. A thread about to grow
// the pool, and Trim, empty the caches of threads outside the pool
// (ThreadCaches::DrainIdle), never the cache of a thread inside it. Where the
// kernel refuses membarrier the pool never drains, and the tests say so and
// skip.
#include <atomic>
#include <chrono>
#include <latch>
#include <thread>
#include <utility>
#include <vector>

#include "src/base/heavy_fence.h"
#include "tests/pool_test_fixture.h"

namespace umpool {
namespace {

constexpr const char* kNoHeavyFence =
    "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is unavailable here: the pool does not drain "
    "other threads' caches";

// A thread that allocates `n` blocks of `bytes`, frees them (into its cache)
// and stays alive, outside the pool, until Release.
class QuietThread {
 public:
  QuietThread(Pool& pool, std::size_t bytes, int n) {
    thread_ = std::thread([&pool, bytes, n, this] {
      std::vector<void*> blocks;
      for (int i = 0; i < n; ++i) {
        auto p = pool.Allocate(bytes);
        if (!p.ok()) break;
        blocks.push_back(*p);
      }
      for (void* p : blocks) ok_ = ok_ && pool.Deallocate(p).ok();
      ok_ = ok_ && static_cast<int>(blocks.size()) == n;
      freed_.count_down();
      release_.wait();
    });
    freed_.wait();
  }
  ~QuietThread() { Release(); }
  void Release() {
    if (!thread_.joinable()) return;
    release_.count_down();
    thread_.join();
  }
  bool ok() const { return ok_; }

 private:
  std::latch freed_{1}, release_{1};
  bool ok_ = true;
  std::thread thread_;
};

class DrainTest : public PoolTest {
 protected:
  void SetUp() override {
    PoolTest::SetUp();
    if (IsSkipped()) return;
    PoolOptions o;
    o.drain_idle_caches = true;
    pool_ = Make(o);
  }
};

TEST_P(PoolTest, WithoutTheOptionNoCacheIsDrained) {
  QuietThread quiet(*pool_, 8192, 40);
  ASSERT_TRUE(quiet.ok());
  ASSERT_TRUE(pool_->Trim().ok());
  const Stats s = pool_->GetStats();
  EXPECT_EQ(s.caches_drained, 0u);
  EXPECT_GT(s.reserved_bytes.current, 0) << "the quiet thread's blocks keep their slab";
  quiet.Release();  // its exit flushes them
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, 0);
}

TEST_P(DrainTest, TrimEmptiesTheCacheOfAThreadThatWentQuiet) {
  QuietThread quiet(*pool_, 8192, 40);  // 320 KiB: all of it stays in its cache
  ASSERT_TRUE(quiet.ok());
  ASSERT_GT(pool_->GetStats().reserved_bytes.current, 0);
  ASSERT_TRUE(pool_->Trim().ok());
  const Stats s = pool_->GetStats();
  if (!internal::HeavyFenceReady()) {
    EXPECT_EQ(s.caches_drained, 0u);
    GTEST_SKIP() << kNoHeavyFence;
  }
  EXPECT_EQ(s.caches_drained, 1u);
  EXPECT_EQ(s.reserved_bytes.current, 0) << "the quiet thread's blocks kept their slab";
  quiet.Release();  // its exit flushes a cache already empty
  const Stats after = pool_->GetStats();
  EXPECT_EQ(after.allocations, after.frees);
  EXPECT_EQ(after.allocated_bytes.current, 0);
  Check();
}

// A large block as big as the slab the quiet thread's blocks pin, in a
// pool whose quiet thread is still alive and in one whose thread has exited
// (its cache flushed): with the blocks drained the first grows exactly as
// the second (on the host backend the slab's pages are given back before the
// block's are populated: reserved bytes do not rise). Without drains the
// first would hold the slab and the block's pages both.
TEST_P(DrainTest, AGrowthTakesBackWhatAQuietThreadCaches) {
  struct Run {
    Stats before, after;
  };
  auto run = [&](bool exit_first) {
    PoolOptions o;
    o.drain_idle_caches = true;
    std::unique_ptr<Pool> pool = Make(o);
    QuietThread quiet(*pool, 8192, 40);
    EXPECT_TRUE(quiet.ok());
    if (exit_first) quiet.Release();
    Run r{pool->GetStats(), {}};
    auto big = pool->Allocate(static_cast<std::size_t>(r.before.reserved_bytes.current));
    EXPECT_TRUE(big.ok()) << big.status();
    r.after = pool->GetStats();
    if (big.ok()) EXPECT_TRUE(pool->Deallocate(*big).ok());
    internal::PoolCore::Unwrap(*pool)->CheckInvariants();
    return r;
  };
  const Run exited = run(true), quiet = run(false);
  if (!internal::HeavyFenceReady()) GTEST_SKIP() << kNoHeavyFence;
  EXPECT_EQ(quiet.before.reserved_bytes.current, exited.before.reserved_bytes.current);
  EXPECT_EQ(quiet.after.caches_drained, 1u);
  EXPECT_EQ(quiet.after.reserved_bytes.peak, exited.after.reserved_bytes.peak)
      << "quiet:\n" << quiet.after.ToString() << "exited:\n" << exited.after.ToString();
  EXPECT_EQ(quiet.after.slabs, exited.after.slabs);
  if (kind() == BackendKind::kHost) {
    EXPECT_EQ(quiet.after.reserved_bytes.peak, quiet.before.reserved_bytes.current);
  }
}

// Workers allocate, write, check and free blocks, now and then pausing
// outside the pool, while another thread trims (and so drains) without
// pause. A drain that took a cache from a thread inside the pool would hand
// one block to two owners (a pattern overwritten) or lose blocks (the counts
// differ); ThreadSanitizer watches the handshake in CI.
TEST_P(DrainTest, DrainsNeverTakeACacheFromAThreadInsideThePool) {
  const std::uint64_t seed = testing::TestSeed(31);
  constexpr int kWorkers = 4;
  std::atomic<int> failures{0}, running{kWorkers};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      const Stream s = kind() == BackendKind::kHost ? testing::HostStream(t) : kDefaultStream;
      testing::PatternWork work;
      work.ops = 4000;
      work.max_live = 24;
      work.min_bytes = 64;
      work.spread = 40000;
      work.pattern_bytes = 64;
      work.each = [](int i) {  // outside the pool for a while now and then
        if (i % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      };
      failures += testing::RunPatternWorker(*pool_, kind(), s, seed + t, work);
      --running;
    });
  }
  int trims = 0;
  while (running.load() > 0) {
    if (!pool_->Trim().ok()) ++failures;
    ++trims;
    // A GPU backend's Trim unmaps (cudaFree, a device sync): fewer of them.
    if (kind() != BackendKind::kHost) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const Stats s = pool_->GetStats();
  EXPECT_EQ(s.allocations, s.frees);
  EXPECT_EQ(s.allocated_bytes.current, 0);
  std::printf("[ drains   ] %d trims, %llu caches drained\n", trims,
              static_cast<unsigned long long>(s.caches_drained));
  if (internal::HeavyFenceReady()) EXPECT_GT(s.caches_drained, 0u) << "no drain ran";
  Check();
  ASSERT_TRUE(pool_->Trim().ok());
  EXPECT_EQ(pool_->GetStats().reserved_bytes.current, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, DrainTest, AllBackends(), BackendTestName);

}  // namespace
}  // namespace umpool
