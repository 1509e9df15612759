// Model-based randomized test of the pool on the host backend.
//
// A reference model follows every block: live blocks (never overlapping, aligned,
// patterned and checked before free) and freed ranges with the GPU work that last
// used them (simulated kernels: HostBackend::Submit tickets). The host backend
// completes work only when the test says so, so the model can check the central
// stream rule: a range is handed to stream X only when every earlier use of it on
// a stream other than X has completed.
//
// Phase 1 (Sequential): operations run one at a time, each on one of 4 worker
// threads (so 4 thread caches exchange blocks), over 4 streams; after every
// operation PoolCore::CheckInvariants() runs and the stats are compared with the
// model. Phase 2 (Concurrent): 4 threads run operations at once against a shared,
// locked model; invariants are checked at barriers.
//
// Operation counts: UMPOOL_MODEL_OPS (default 1,000,000 in all): 1/16 sequential (with
// CheckInvariants after every step), 15/16 concurrent.
// Seed: UMPOOL_TEST_SEED (printed). Failing seeds go to kRegressionSeeds.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "src/pool/pool_core.h"
#include "tests/test_util.h"

namespace umpool {
namespace {

using testing::HostStream;

constexpr int kStreams = 4;
constexpr int kThreads = 4;

std::uint64_t TotalOps() {
  if (const char* e = std::getenv("UMPOOL_MODEL_OPS"); e != nullptr && *e != '\0') {
    return std::strtoull(e, nullptr, 0);
  }
  return 1'000'000;
}

struct Use {
  Stream stream;
  std::uint64_t ticket;
};

struct Block {
  std::uintptr_t p = 0;
  std::size_t requested = 0;
  std::size_t usable = 0;
  Stream stream = nullptr;
  std::uint64_t tag = 0;
  std::vector<Use> uses;
};

// The reference model. Not thread-safe: callers lock `mu` in the concurrent phase.
class Model {
 public:
  explicit Model(internal::HostBackend* backend) : backend_(backend) {}

  // A new block [p, p+usable) on `stream`: must not overlap a live block, and
  // every earlier use of an overlapping freed range on another stream must
  // have completed, or the new stream must wait for it (a refilled bare
  // block waits for the drop that followed that use: StreamWaitEvent).
  ::testing::AssertionResult OnAllocate(const Block& b) {
    if (b.p % kMinAlignment != 0) return ::testing::AssertionFailure() << "misaligned block";
    if (b.usable < b.requested) return ::testing::AssertionFailure() << "block too small";
    auto it = live_.upper_bound(b.p);
    if (it != live_.end() && it->first < b.p + b.usable) {
      return ::testing::AssertionFailure() << "overlaps a live block (next)";
    }
    if (it != live_.begin() && std::prev(it)->first + std::prev(it)->second.usable > b.p) {
      return ::testing::AssertionFailure() << "overlaps a live block (previous)";
    }
    // Freed ranges overlapping the new block.
    auto f = freed_.lower_bound(b.p);
    if (f != freed_.begin()) --f;
    while (f != freed_.end() && f->first < b.p + b.usable) {
      const Block& old = f->second;
      if (old.p + old.usable <= b.p) {
        ++f;
        continue;
      }
      for (const Use& u : old.uses) {
        if (u.stream != b.stream && !backend_->IsOrderedAfter(b.stream, u.stream, u.ticket)) {
          return ::testing::AssertionFailure()
                 << "range reused on another stream before its work completed";
        }
      }
      f = freed_.erase(f);
    }
    live_[b.p] = b;
    return ::testing::AssertionSuccess();
  }

  void OnFree(const Block& b) {
    live_.erase(b.p);
    freed_[b.p] = b;
  }

  std::map<std::uintptr_t, Block>& live() { return live_; }
  std::int64_t live_bytes() const {
    std::int64_t n = 0;
    for (const auto& [p, b] : live_) n += static_cast<std::int64_t>(b.usable);
    return n;
  }

 private:
  internal::HostBackend* backend_;
  std::map<std::uintptr_t, Block> live_;
  std::map<std::uintptr_t, Block> freed_;
};

// Runs closures on a fixed set of threads, one at a time (the caller waits).
class Workers {
 public:
  explicit Workers(int n) : slots_(n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { Loop(i); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Run(int worker, std::function<void()> fn) {
    std::unique_lock<std::mutex> lock(mu_);
    slots_[worker] = std::move(fn);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !slots_[worker]; });
  }

 private:
  void Loop(int i) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || slots_[i]; });
      if (stop_) return;
      auto fn = std::move(slots_[i]);
      lock.unlock();
      fn();
      lock.lock();
      slots_[i] = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::function<void()>> slots_;
  std::vector<std::thread> threads_;
};

std::size_t RandomSize(std::mt19937_64& rng) {
  switch (rng() % 16) {
    case 0: return 1 + rng() % (48u << 20);     // large blocks
    case 1: case 2: return 1 + rng() % (4u << 20);  // central (non-thread-cached) classes
    default: return 1 + rng() % 65536;
  }
}

constexpr std::size_t kPatterned = 256;

// A run's seed (0: the default, or UMPOOL_TEST_SEED) and whether the pool makes a stream wait
// for pending blocks (PoolOptions::reuse_pending_blocks) or lets them wait for their events (its
// large spaces then fence other streams' blocks only when a search found nothing:
// LargeHeap::OpenSearch).
struct ModelRun {
  std::uint64_t seed = 0;
  bool reuse_pending_blocks = true;
};

class ModelTest : public ::testing::TestWithParam<ModelRun> {
 protected:
  std::uint64_t Seed(std::uint64_t fallback) const {
    return GetParam().seed != 0 ? GetParam().seed : testing::TestSeed(fallback);
  }
  void SetUp() override {
    PoolOptions o;
    o.reuse_pending_blocks = GetParam().reuse_pending_blocks;
    o.stats_publish_bytes = 0;
    o.capacity_bytes = std::size_t{768} << 20;  // small: pressure and OOM paths run too
    // KV blocks of 2 MiB and more wait in the discard queue before reuse.
    o.roles[static_cast<int>(Role::kKv)].discard_on_free = true;
    pool_ = testing::MakeHostPool(o, &backend_);
    backend_->SetManualCompletion(true);
    core_ = internal::PoolCore::Unwrap(*pool_);
  }
  internal::HostBackend* backend_ = nullptr;
  internal::PoolCore* core_ = nullptr;
  std::unique_ptr<Pool> pool_;
};

TEST_P(ModelTest, Sequential) {
  const std::uint64_t seed = Seed(20261127);
  std::printf("[ seed     ] sequential phase seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const std::uint64_t ops = std::max<std::uint64_t>(1000, TotalOps() / 16);
  Model model(backend_);
  Workers workers(kThreads);
  std::uint64_t counts[9] = {};
  for (std::uint64_t step = 0; step < ops; ++step) {
    const int w = static_cast<int>(rng() % kThreads);
    const Stream s = HostStream(static_cast<int>(rng() % kStreams));
    const unsigned op = static_cast<unsigned>(rng() % 100);
    auto& live = model.live();
    if ((op < 45 && live.size() < 300) || live.empty()) {  // allocate
      ++counts[0];
      const std::size_t n = RandomSize(rng);
      const Role role = static_cast<Role>(rng() % kNumRoles);
      absl::StatusOr<void*> p;
      workers.Run(w, [&] { p = pool_->Allocate(n, s, role); });
      if (!p.ok()) {
        ASSERT_TRUE(absl::IsResourceExhausted(p.status())) << p.status() << " step " << step;
        ++counts[8];
        continue;
      }
      Block b;
      b.p = reinterpret_cast<std::uintptr_t>(*p);
      b.requested = n;
      b.usable = *pool_->BlockSize(*p);
      b.stream = s;
      b.tag = rng();
      ASSERT_TRUE(model.OnAllocate(b)) << "step " << step << " seed " << seed;
      testing::FillPattern(BackendKind::kHost, *p, std::min(n, kPatterned), b.tag);
      Block& m = live[b.p];
      m.uses.push_back({s, backend_->Submit(s)});  // a kernel writes it
    } else if (op < 85) {  // free
      ++counts[1];
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      Block b = it->second;
      ASSERT_TRUE(testing::CheckPattern(BackendKind::kHost, reinterpret_cast<void*>(b.p),
                                        std::min(b.requested, kPatterned), b.tag))
          << "corrupted block at step " << step << " seed " << seed;
      Stream free_stream = b.stream;
      if (rng() % 8 == 0) {
        // Last used on another stream: the user orders it after the block's work.
        free_stream = s;
        backend_->Complete(b.stream);
        b.uses.push_back({free_stream, backend_->Submit(free_stream)});
      }
      model.OnFree(b);
      absl::Status st;
      if (rng() % 2 == 0) {  // a paused request: evicted first (discard on free applies)
        workers.Run(w, [&] { st = pool_->Evict(reinterpret_cast<void*>(b.p), free_stream); });
        ASSERT_TRUE(st.ok()) << st << " step " << step;
      }
      workers.Run(w, [&] { st = pool_->Deallocate(reinterpret_cast<void*>(b.p), free_stream); });
      ASSERT_TRUE(st.ok()) << st << " step " << step;
      if (rng() % 16 == 0) {  // a double free changes nothing
        workers.Run(w, [&] { st = pool_->Deallocate(reinterpret_cast<void*>(b.p), free_stream); });
        ASSERT_TRUE(absl::IsFailedPrecondition(st) || absl::IsInvalidArgument(st)) << st;
      }
    } else if (op < 90) {  // record_stream
      ++counts[2];
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      absl::Status st;
      workers.Run(w, [&] { st = pool_->RecordStream(reinterpret_cast<void*>(it->first), s); });
      ASSERT_TRUE(st.ok()) << st;
      it->second.uses.push_back({s, backend_->Submit(s)});  // s reads it
    } else if (op < 97) {  // work completes
      ++counts[3];
      if (rng() % 4 == 0) backend_->CompleteAll(); else backend_->Complete(s);
    } else if (op < 98) {  // trim
      ++counts[4];
      absl::Status st;
      workers.Run(w, [&] { st = pool_->Trim(); });
      ASSERT_TRUE(st.ok()) << st;
    } else {  // interior pointer
      ++counts[5];
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      // p + 256 is inside the block only if the block is larger than 256 B
      // (otherwise it is the next block, which may be live).
      if (it->second.usable > 256) {
        absl::Status st;
        workers.Run(w, [&] { st = pool_->Deallocate(reinterpret_cast<void*>(it->first + 256), s); });
        ASSERT_TRUE(absl::IsInvalidArgument(st)) << st;
      }
    }
    core_->CheckInvariants();
    const Stats st = pool_->GetStats();
    ASSERT_EQ(st.allocated_bytes.current, model.live_bytes()) << "step " << step;
    ASSERT_EQ(static_cast<std::int64_t>(st.allocations - st.frees),
              static_cast<std::int64_t>(model.live().size()));
    ASSERT_LE(st.reserved_bytes.current, 768 << 20);
    ASSERT_GE(st.reserved_bytes.current, st.allocated_bytes.current);
  }
  std::printf("sequential: %llu ops (alloc %llu, free %llu, record %llu, complete %llu, trim %llu, "
              "interior %llu, OOM %llu)\n",
              static_cast<unsigned long long>(ops), (unsigned long long)counts[0],
              (unsigned long long)counts[1], (unsigned long long)counts[2],
              (unsigned long long)counts[3], (unsigned long long)counts[4],
              (unsigned long long)counts[5], (unsigned long long)counts[8]);
  EXPECT_GT(pool_->GetStats().discarded_blocks, 0u) << "the KV role's discard queue was exercised";
  EXPECT_GT(pool_->GetStats().page_drops, 0u) << "free pages were given back (bare blocks)";
  EXPECT_GT(pool_->GetStats().bare_refills, 0u) << "bare blocks were refilled";
  if (GetParam().reuse_pending_blocks) {
    EXPECT_GT(pool_->GetStats().ordered_reuses, 0u) << "pending blocks were reused behind stream waits";
  } else {
    EXPECT_EQ(pool_->GetStats().ordered_reuses, 0u) << "a stream waited for pending blocks";
    EXPECT_GT(pool_->GetStats().cross_stream_reuses, 0u) << "blocks crossed streams past their fences";
  }
  for (auto& [p, b] : model.live()) ASSERT_TRUE(pool_->Deallocate(reinterpret_cast<void*>(p), b.stream).ok());
}

TEST_P(ModelTest, Concurrent) {
  const std::uint64_t seed = Seed(20261128);
  std::printf("[ seed     ] concurrent phase seed %llu\n", static_cast<unsigned long long>(seed));
  const std::uint64_t total = std::max<std::uint64_t>(4000, TotalOps() / 16 * 15);
  constexpr int kRounds = 50;
  const std::uint64_t per_thread_round = total / kRounds / kThreads;
  Model model(backend_);
  std::mutex mu;  // guards `model` and the per-thread live lists' hand-over
  std::atomic<int> failures{0};
  std::vector<std::vector<Block>> mine(kThreads);
  for (int round = 0; round < kRounds && failures == 0; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(seed * 1000003 + static_cast<std::uint64_t>(round * kThreads + t));
        const Stream own = HostStream(t);
        auto& blocks = mine[t];
        for (std::uint64_t i = 0; i < per_thread_round && failures == 0; ++i) {
          const unsigned op = static_cast<unsigned>(rng() % 100);
          if ((op < 50 && blocks.size() < 100) || blocks.empty()) {
            const std::size_t n = RandomSize(rng) / 4 + 1;
            absl::StatusOr<void*> p = pool_->Allocate(n, own, static_cast<Role>(rng() % kNumRoles));
            if (!p.ok()) {
              if (!absl::IsResourceExhausted(p.status())) {
                std::fprintf(stderr, "allocate failed: %s\n", p.status().ToString().c_str());
                ++failures;
              }
              continue;
            }
            Block b{reinterpret_cast<std::uintptr_t>(*p), n, *pool_->BlockSize(*p), own, rng(), {}};
            {
              std::lock_guard<std::mutex> lock(mu);
              if (::testing::AssertionResult r = model.OnAllocate(b); !r) {
                std::fprintf(stderr, "model: %s\n", r.message());
                ++failures;
              }
              b.uses.push_back({own, backend_->Submit(own)});
              model.live()[b.p] = b;
            }
            testing::FillPattern(BackendKind::kHost, *p, std::min(n, kPatterned), b.tag);
            blocks.push_back(b);
          } else if (op < 92) {
            const std::size_t k = rng() % blocks.size();
            Block b = blocks[k];
            blocks[k] = blocks.back();
            blocks.pop_back();
            if (!testing::CheckPattern(BackendKind::kHost, reinterpret_cast<void*>(b.p),
                                       std::min(b.requested, kPatterned), b.tag)) {
              std::fprintf(stderr, "pattern of block %#lx (%zu bytes) overwritten\n",
                           static_cast<unsigned long>(b.p), b.requested);
              ++failures;
            }
            {
              std::lock_guard<std::mutex> lock(mu);
              b.uses = model.live()[b.p].uses;
              model.OnFree(b);
            }
            if (absl::Status st = pool_->Deallocate(reinterpret_cast<void*>(b.p), own); !st.ok()) {
              std::fprintf(stderr, "free failed: %s\n", st.ToString().c_str());
              ++failures;
            }
          } else if (op < 96) {
            const Stream other = HostStream(static_cast<int>(rng() % kStreams));
            const Block& b = blocks[rng() % blocks.size()];
            if (absl::Status st = pool_->RecordStream(reinterpret_cast<void*>(b.p), other); !st.ok()) {
              std::fprintf(stderr, "record_stream failed: %s\n", st.ToString().c_str());
              ++failures;
            }
            std::lock_guard<std::mutex> lock(mu);
            model.live()[b.p].uses.push_back({other, backend_->Submit(other)});
          } else {
            backend_->Complete(HostStream(static_cast<int>(rng() % kStreams)));
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(failures.load(), 0) << "round " << round << " seed " << seed;
    core_->CheckInvariants();
    const Stats st = pool_->GetStats();
    ASSERT_EQ(st.allocated_bytes.current, model.live_bytes());
    ASSERT_EQ(static_cast<std::int64_t>(st.allocations - st.frees),
              static_cast<std::int64_t>(model.live().size()));
    if (round % 10 == 9) {
      backend_->CompleteAll();
      ASSERT_TRUE(pool_->Trim().ok());
      core_->CheckInvariants();
    }
  }
  std::printf("concurrent: %d threads x %d rounds x %llu ops\n", kThreads, kRounds,
              static_cast<unsigned long long>(per_thread_round));
  for (auto& blocks : mine) {
    for (const Block& b : blocks) ASSERT_TRUE(pool_->Deallocate(reinterpret_cast<void*>(b.p), b.stream).ok());
  }
}

// Seed 0 = the default (or UMPOOL_TEST_SEED) seed; others are regression seeds.
constexpr ModelRun kRuns[] = {{0, true}, {0, false}};
INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest, ::testing::ValuesIn(kRuns),
                         [](const ::testing::TestParamInfo<ModelRun>& info) {
                           return std::string(info.param.reuse_pending_blocks ? "Waits" : "NoWaits") +
                                  std::to_string(info.param.seed);
                         });

}  // namespace
}  // namespace umpool
