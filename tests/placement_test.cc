// Placement does not depend on the host heap: the same requests on the same
// streams get the same addresses (relative to the pool's first block), the
// same reserved bytes and the same backend calls, wherever the pool's own
// records (slabs, segments, blocks) happen to lie in host memory. A pool
// whose choices follow hash-map order of its records' addresses places
// differently from run to run (ASLR, another allocation in the process), and
// its memory figures cannot be reproduced.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "src/backend/host_backend.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using testing::HostStream;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr int kOps = 6000;  // requests and frees, each run

struct Placements {
  std::vector<std::intptr_t> offsets;  // each block's address - the first block's
  std::vector<std::int64_t> reserved;  // reserved bytes after each request
  std::uint64_t maps = 0;
};

// Replays `seed`'s requests: one-block slabs (8-32 MiB), large blocks (40-160
// MiB) whose misses give empty slabs back, small blocks, on three streams,
// frees on a random stream. With `stir`, host allocations of random sizes
// are made (and kept) between the requests, so the pool's records land
// elsewhere in the host heap.
Placements Replay(std::uint64_t seed, bool stir) {
  Placements run;
  internal::HostBackend* backend = nullptr;
  PoolOptions o;
  o.capacity_bytes = std::size_t{8} << 30;
  std::unique_ptr<Pool> pool = testing::MakeHostPool(o, &backend);
  if (pool == nullptr) return run;
  std::mt19937_64 rng(seed), noise(seed ^ 0x5eed);
  // Reserved in both runs alike: a vector growing past glibc's mmap
  // threshold would move the backend's mappings, not only the records.
  std::vector<void*> stirred;
  stirred.reserve(4 * kOps);
  struct Live {
    void* p;
    Stream s;
  };
  std::vector<Live> live;
  live.reserve(64);
  run.offsets.reserve(kOps);
  run.reserved.reserve(kOps);
  std::uintptr_t first = 0;
  for (int op = 0; op < kOps; ++op) {
    if (stir) {
      for (int k = static_cast<int>(noise() % 4); k > 0; --k) {
        stirred.push_back(std::malloc(16 + noise() % 3000));
      }
    }
    if (!live.empty() && (live.size() > 24 || rng() % 100 < 45)) {
      const std::size_t i = rng() % live.size();
      EXPECT_TRUE(pool->Deallocate(live[i].p, HostStream(static_cast<int>(rng() % 3))).ok());
      live[i] = live.back();
      live.pop_back();
      continue;
    }
    const int kind = static_cast<int>(rng() % 10);
    const std::size_t bytes = kind < 6   ? (8 + rng() % 25) * kMiB - rng() % kMiB
                              : kind < 8 ? (40 + rng() % 121) * kMiB
                                         : 4096 + rng() % (512 * 1024);
    const Stream s = HostStream(static_cast<int>(rng() % 3));
    absl::StatusOr<void*> p = pool->Allocate(bytes, s, Role::kActivations);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) break;
    const auto a = reinterpret_cast<std::uintptr_t>(*p);
    if (first == 0) first = a;
    run.offsets.push_back(static_cast<std::intptr_t>(a - first));
    run.reserved.push_back(pool->GetStats().reserved_bytes.current);
    live.push_back({*p, s});
  }
  for (const Live& l : live) EXPECT_TRUE(pool->Deallocate(l.p, l.s).ok());
  run.maps = backend->counters().maps.load();
  pool.reset();
  for (void* p : stirred) std::free(p);
  return run;
}

// Replay in a child process: both runs start from the same address space
// (the parent's), so the backend's mappings land at the same addresses and
// only what the stirring moves differs. The child writes its figures to a
// pipe; a child that fails or dies returns no figures.
Placements ReplayInChild(std::uint64_t seed, bool stir) {
  Placements run;
  int fds[2];
  if (pipe(fds) != 0) return run;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const Placements r = Replay(seed, stir);
    bool ok = !::testing::Test::HasFailure();
    auto put = [&](const void* p, std::size_t n) {
      const char* c = static_cast<const char*>(p);
      while (ok && n > 0) {
        const ssize_t w = write(fds[1], c, n);
        ok = w > 0;
        if (ok) c += w, n -= static_cast<std::size_t>(w);
      }
    };
    const std::uint64_t n = r.offsets.size();
    put(&n, sizeof n);
    put(r.offsets.data(), n * sizeof(std::intptr_t));
    put(r.reserved.data(), n * sizeof(std::int64_t));
    put(&r.maps, sizeof r.maps);
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  auto get = [&](void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      const ssize_t got = read(fds[0], c, n);
      if (got <= 0) return false;
      c += got, n -= static_cast<std::size_t>(got);
    }
    return true;
  };
  std::uint64_t n = 0;
  if (pid > 0 && get(&n, sizeof n) && n < (std::uint64_t{1} << 20)) {
    run.offsets.resize(n);
    run.reserved.resize(n);
    if (!get(run.offsets.data(), n * sizeof(std::intptr_t)) ||
        !get(run.reserved.data(), n * sizeof(std::int64_t)) || !get(&run.maps, sizeof run.maps)) {
      run.offsets.clear();
    }
  }
  close(fds[0]);
  int wstatus = 0;
  if (pid > 0) waitpid(pid, &wstatus, 0);
  EXPECT_TRUE(pid > 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
      << "the replay " << (stir ? "with" : "without") << " stirring failed";
  return run;
}

TEST(PlacementTest, DoesNotDependOnWhereTheRecordsLie) {
  const std::uint64_t seed = testing::TestSeed(11);
  const Placements plain = ReplayInChild(seed, false);
  const Placements stirred = ReplayInChild(seed, true);
  ASSERT_FALSE(plain.offsets.empty());
  ASSERT_EQ(plain.offsets.size(), stirred.offsets.size());
  for (std::size_t i = 0; i < plain.offsets.size(); ++i) {
    ASSERT_EQ(plain.offsets[i], stirred.offsets[i]) << "request " << i << " placed elsewhere";
    ASSERT_EQ(plain.reserved[i], stirred.reserved[i]) << "request " << i;
  }
  EXPECT_EQ(plain.maps, stirred.maps);
}

}  // namespace
}  // namespace umpool
