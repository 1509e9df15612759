// The pool conformance suite, part 2: managed-memory features (prefetch,
// evict, batched prefetch, discard on free, device-memory roles), trace
// recording and snapshots, on every backend. Instantiated in pool_test.cc.
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "umpool/backend.h"
#include "src/pool/pool_core.h"
#include "tests/pool_test_fixture.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

using ::umpool::testing::CheckPattern;
using ::umpool::testing::FillPattern;

TEST_P(PoolTest, PrefetchEvictAndFetchKeepAddressesAndContents) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  for (std::size_t n : {std::size_t{4096}, std::size_t{3} << 20, std::size_t{40} << 20}) {
    SCOPED_TRACE(n);
    auto p = pool_->Allocate(n);
    ASSERT_TRUE(p.ok());
    FillPattern(kind(), *p, 4096, n);
    const std::uint64_t before = pool_->GetStats().prefetch_calls;
    ASSERT_TRUE(pool_->Evict(*p, kDefaultStream).ok());
    ASSERT_TRUE(pool_->Prefetch(static_cast<char*>(*p) + 256, 512, Location::kDevice, kDefaultStream).ok());
    ASSERT_TRUE(pool_->Fetch(static_cast<char*>(*p) + 1000, kDefaultStream).ok());
    EXPECT_EQ(pool_->GetStats().prefetch_calls, before + 3);
    EXPECT_TRUE(CheckPattern(kind(), *p, 4096, n));
    // Past the end of the block, a freed block, a foreign pointer: errors.
    const std::size_t usable = *pool_->BlockSize(*p);
    EXPECT_TRUE(absl::IsInvalidArgument(
        pool_->Prefetch(*p, usable + 1, Location::kHost, kDefaultStream)));
    int x = 0;
    EXPECT_TRUE(absl::IsInvalidArgument(pool_->Evict(&x, kDefaultStream)));
    ASSERT_TRUE(pool_->Deallocate(*p).ok());
    EXPECT_FALSE(pool_->Fetch(*p, kDefaultStream).ok());
    EXPECT_EQ(pool_->GetStats().prefetch_calls, before + 3);
  }
  Check();
}

TEST_P(PoolTest, DiscardOnFreeCoversWholePagesOfTheRolesBlocksOnly) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  PoolOptions o;
  o.roles[static_cast<int>(Role::kKv)].discard_on_free = true;
  auto pool = Make(o);
  auto small = pool->Allocate(4096, stream_for_discard(), Role::kKv);
  auto big = pool->Allocate(64u << 20, stream_for_discard(), Role::kKv);
  auto other = pool->Allocate(64u << 20, stream_for_discard(), Role::kDefault);
  ASSERT_TRUE(small.ok() && big.ok() && other.ok());
  // Only blocks the pool evicted are discarded (see the next test).
  for (void* p : {*small, *big, *other}) ASSERT_TRUE(pool->Evict(p, stream_for_discard()).ok());
  ASSERT_TRUE(pool->Deallocate(*small, stream_for_discard()).ok());
  EXPECT_EQ(pool->GetStats().discard_calls, 0u) << "no whole page in a 4 KiB block";
  ASSERT_TRUE(pool->Deallocate(*other, stream_for_discard()).ok());
  EXPECT_EQ(pool->GetStats().discard_calls, 0u) << "the default role does not discard";
  ASSERT_TRUE(pool->Deallocate(*big, stream_for_discard()).ok());
  EXPECT_EQ(pool->GetStats().discard_calls, 0u) << "the block waits for a batch";
  EXPECT_EQ(pool->GetStats().allocated_bytes.current, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(pool->Deallocate(*big, stream_for_discard())))
      << "a block waiting for its discard is already free";
  EXPECT_TRUE(absl::IsFailedPrecondition(pool->RecordStream(*big, stream_for_discard())));
  // Reuse after the discard is ordinary.
  auto again = pool->Allocate(64u << 20, stream_for_discard(), Role::kKv);
  ASSERT_TRUE(again.ok());
  const Stats s = pool->GetStats();
  EXPECT_EQ(s.discard_calls, 1u) << "the next allocation issued the discard first";
  EXPECT_EQ(s.discarded_blocks, 1u);
  EXPECT_EQ(s.discard_bytes % (2u << 20), 0u);
  EXPECT_GE(s.discard_bytes, 62u << 20);  // 64 MiB, less a partial page at each end if unaligned
  EXPECT_LE(s.discard_bytes, 64u << 20);
  EXPECT_EQ(*again, *big);
  FillPattern(kind(), *again, 4096, 3);
  EXPECT_TRUE(CheckPattern(kind(), *again, 4096, 3));
  ASSERT_TRUE(pool->Deallocate(*again, stream_for_discard()).ok());
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// Only a block the pool evicted is discarded. A GPU-preferred role's block is
// repopulated on the GPU in the discard call itself (reuse must not fault page
// by page); with oversubscription allowed, or a host-preferred role, its
// pages are dropped. The reused block holds whatever the new owner writes.
TEST_P(PoolTest, DiscardRefillsOnlyWhereThePoolHoldsTheGpusMemory) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  if (kind() == BackendKind::kDevice) GTEST_SKIP() << "plain device memory has no pages to drop";
  struct Case {
    const char* name;
    bool oversubscribe;
    Location preferred;
    bool refill;
  };
  for (const Case& c : {Case{"gpu-preferred", false, Location::kDevice, true},
                        Case{"oversubscription allowed", true, Location::kDevice, false},
                        Case{"host-preferred", false, Location::kHost, false}}) {
    SCOPED_TRACE(c.name);
    PoolOptions o;
    o.capacity_bytes = std::size_t{1} << 30;  // within the GPU's free memory either way
    o.allow_oversubscription = c.oversubscribe;
    o.roles[static_cast<int>(Role::kKv)].discard_on_free = true;
    o.roles[static_cast<int>(Role::kKv)].preferred = c.preferred;
    auto pool = Make(o);
    ASSERT_NE(pool, nullptr);
    const BackendCounters& bc = internal::PoolCore::Unwrap(*pool)->backend().counters();
    const std::uint64_t refill0 = bc.refill_bytes.load(), discard0 = bc.discard_bytes.load();
    auto big = pool->Allocate(16u << 20, stream_for_discard(), Role::kKv);
    ASSERT_TRUE(big.ok()) << big.status();
    FillPattern(kind(), *big, 4096, 1);
    ASSERT_TRUE(pool->Evict(*big, stream_for_discard()).ok());
    ASSERT_TRUE(pool->Deallocate(*big, stream_for_discard()).ok());
    auto again = pool->Allocate(16u << 20, stream_for_discard(), Role::kKv);
    ASSERT_TRUE(again.ok()) << again.status();
    if (pool->GetStats().discard_calls == 0) GTEST_SKIP() << "the driver refused the discard";
    const std::uint64_t discarded = bc.discard_bytes.load() - discard0;
    EXPECT_GE(discarded, 14u << 20);
    EXPECT_EQ(bc.refill_bytes.load() - refill0, c.refill ? discarded : 0u);
    FillPattern(kind(), *again, 4096, 2);
    EXPECT_TRUE(CheckPattern(kind(), *again, 4096, 2));
    // Freed resident (never evicted): not discarded, its pages stay as they are.
    const std::uint64_t blocks = pool->GetStats().discarded_blocks;
    ASSERT_TRUE(pool->Deallocate(*again, stream_for_discard()).ok());
    auto third = pool->Allocate(16u << 20, stream_for_discard(), Role::kKv);
    ASSERT_TRUE(third.ok());
    EXPECT_EQ(pool->GetStats().discarded_blocks, blocks);
    ASSERT_TRUE(pool->Deallocate(*third, stream_for_discard()).ok());
    internal::PoolCore::Unwrap(*pool)->CheckInvariants();
  }
}

// Freeing the blocks of a retiring request costs one discard call per stream,
// issued before any of them can be reused; a full batch drains by itself.
TEST_P(PoolTest, DiscardsAreBatchedAcrossFrees) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  PoolOptions o;
  o.capacity_bytes = std::size_t{1} << 30;
  o.roles[static_cast<int>(Role::kKv)].discard_on_free = true;
  auto pool = Make(o);
  // Two streams on the host backend (any handles); the legacy stream elsewhere.
  const bool two = kind() == BackendKind::kHost;
  const Stream s0 = stream_for_discard();
  const Stream s1 = two ? testing::HostStream(1) : s0;
  std::vector<void*> kv;
  for (int i = 0; i < 24; ++i) {  // 12 slab blocks of 4 MiB, 12 large blocks of 6 MiB
    auto p = pool->Allocate(i % 2 == 0 ? (4u << 20) : (6u << 20), i < 12 ? s0 : s1, Role::kKv);
    ASSERT_TRUE(p.ok()) << p.status();
    FillPattern(kind(), *p, 4096, i);
    kv.push_back(*p);
  }
  ASSERT_TRUE(pool->PrefetchBlocks(kv.data(), kv.size(), Location::kHost, s0).ok());  // evicted
  for (int i = 0; i < 24; ++i) ASSERT_TRUE(pool->Deallocate(kv[i], i < 12 ? s0 : s1).ok());
  EXPECT_EQ(pool->GetStats().discard_calls, 0u);
  auto next = pool->Allocate(4u << 20, s0, Role::kKv);
  ASSERT_TRUE(next.ok());
  Stats s = pool->GetStats();
  EXPECT_EQ(s.discard_calls, two ? 2u : 1u) << "one call per freeing stream";
  EXPECT_EQ(s.discarded_blocks, 24u);
  EXPECT_EQ(s.discard_bytes, 12u * (4u << 20) + 12u * (6u << 20) - 0u)
      << "4 MiB slab blocks and 6 MiB large blocks are 2 MiB aligned: all pages discarded";
  EXPECT_TRUE(std::find(kv.begin(), kv.end(), *next) != kv.end()) << "a discarded block is reused";
  ASSERT_TRUE(pool->Deallocate(*next, s0).ok());
  // A full batch (64 blocks) drains without waiting for an allocation.
  std::vector<void*> many;
  for (int i = 0; i < 64; ++i) {
    auto p = pool->Allocate(4u << 20, s0, Role::kKv);
    ASSERT_TRUE(p.ok()) << p.status();
    many.push_back(*p);
  }
  const std::uint64_t calls = pool->GetStats().discard_calls;
  ASSERT_TRUE(pool->PrefetchBlocks(many.data(), many.size(), Location::kHost, s0).ok());
  for (void* p : many) ASSERT_TRUE(pool->Deallocate(p, s0).ok());
  s = pool->GetStats();
  EXPECT_EQ(s.discard_calls, calls + 1);
  EXPECT_EQ(s.discarded_blocks, 24u + 64u) << "`next` was freed resident: not discarded";
  // Trim drains too, then returns the memory.
  auto last = pool->Allocate(6u << 20, s0, Role::kKv);
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(pool->Evict(*last, s0).ok());
  ASSERT_TRUE(pool->Deallocate(*last, s0).ok());
  ASSERT_TRUE(pool->Trim().ok());
  s = pool->GetStats();
  EXPECT_EQ(s.discarded_blocks, 24u + 64u + 1u);
  EXPECT_EQ(s.reserved_bytes.current, 0);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
}

// PrefetchBlocks moves whole blocks in one backend call and checks every
// pointer before anything moves.
TEST_P(PoolTest, PrefetchBlocksIsOneCallAndAllOrNothing) {
  if (!Migrates()) GTEST_SKIP() << kNoMigration;
  std::vector<void*> blocks;
  for (std::size_t n : {std::size_t{4096}, std::size_t{3} << 20, std::size_t{40} << 20}) {
    auto p = pool_->Allocate(n, kDefaultStream, Role::kKv);
    ASSERT_TRUE(p.ok());
    FillPattern(kind(), *p, 4096, n);
    blocks.push_back(*p);
  }
  Backend& backend = internal::PoolCore::Unwrap(*pool_)->backend();
  const std::uint64_t ops = backend.counters().prefetch_ops.load();
  const std::uint64_t calls = pool_->GetStats().prefetch_calls;
  ASSERT_TRUE(pool_->PrefetchBlocks(blocks.data(), blocks.size(), Location::kHost, kDefaultStream).ok());
  ASSERT_TRUE(pool_->PrefetchBlocks(blocks.data(), blocks.size(), Location::kDevice, kDefaultStream).ok());
  EXPECT_EQ(backend.counters().prefetch_ops.load(), ops + 2) << "one backend call per batch";
  EXPECT_EQ(pool_->GetStats().prefetch_calls, calls + 2);
  ASSERT_TRUE(pool_->PrefetchBlocks(blocks.data(), 0, Location::kHost, kDefaultStream).ok());
  // Interior pointers name their block.
  const void* interior[] = {static_cast<char*>(blocks[1]) + 100};
  EXPECT_TRUE(pool_->PrefetchBlocks(interior, 1, Location::kDevice, kDefaultStream).ok());
  // A foreign pointer in the middle: nothing moves, the error names it.
  int x = 0;
  const void* bad[] = {blocks[0], &x, blocks[2]};
  absl::Status st = pool_->PrefetchBlocks(bad, 3, Location::kHost, kDefaultStream);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("pointer 1"), std::string::npos) << st;
  EXPECT_EQ(backend.counters().prefetch_ops.load(), ops + 3);
  EXPECT_TRUE(absl::IsInvalidArgument(pool_->PrefetchBlocks(nullptr, 2, Location::kHost, kDefaultStream)));
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_TRUE(CheckPattern(kind(), blocks[i], 4096, i == 0 ? 4096 : (i == 1 ? 3u << 20 : 40u << 20)));
    ASSERT_TRUE(pool_->Deallocate(blocks[i]).ok());
  }
  const void* freed[] = {blocks[2]};
  EXPECT_FALSE(pool_->PrefetchBlocks(freed, 1, Location::kHost, kDefaultStream).ok());
  Check();
}

// A role with device_memory takes its slabs from a second backend (cudaMalloc
// on a managed pool), is never advised or prefetched, refuses to move, and
// shares the cap.
TEST_P(PoolTest, DeviceMemoryRoleHasItsOwnBackend) {
  PoolOptions o;
  o.roles[static_cast<int>(Role::kActivations)].device_memory = true;
  auto pool = Make(o);
  internal::PoolCore* core = internal::PoolCore::Unwrap(*pool);
  Backend* dm = core->device_memory_backend();
  if (kind() == BackendKind::kDevice) {
    EXPECT_EQ(dm, nullptr) << "a device pool is device memory already";
  } else {
    ASSERT_NE(dm, nullptr);
  }
  const std::uint64_t main_maps = core->backend().counters().maps.load();
  const std::uint64_t advise = pool->GetStats().advise_calls;
  // Fill through cudaMemcpy: on a managed pool this memory is not CPU-visible.
  const BackendKind fill = kind() == BackendKind::kManaged ? BackendKind::kDevice : kind();
  std::vector<void*> act;
  for (std::size_t n : {std::size_t{1} << 20, std::size_t{64} << 20}) {
    auto p = pool->Allocate(n, kDefaultStream, Role::kActivations);
    ASSERT_TRUE(p.ok()) << p.status();
    FillPattern(fill, *p, 4096, n);
    act.push_back(*p);
  }
  if (dm != nullptr) {
    EXPECT_EQ(core->backend().counters().maps.load(), main_maps);
    EXPECT_EQ(dm->counters().maps.load(), 2u);
    EXPECT_EQ(pool->GetStats().advise_calls, advise) << "device memory is never advised";
    absl::Status st = pool->Evict(act[0], kDefaultStream);
    EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
    EXPECT_NE(st.message().find("plain device memory"), std::string::npos) << st;
    EXPECT_TRUE(absl::IsFailedPrecondition(pool->PrefetchBlocks(act.data(), 2, Location::kHost, kDefaultStream)));
  }
  auto kv = pool->Allocate(1u << 20, kDefaultStream, Role::kKv);
  ASSERT_TRUE(kv.ok());
  if (Migrates()) EXPECT_TRUE(pool->Evict(*kv, kDefaultStream).ok()) << "other roles still move";
  // Plain device memory grows by chunks (a device backend: kv's first 20 MiB
  // chunk); managed and host memory populate what they hand out (2 MiB).
  const std::size_t kv_space = kind() == BackendKind::kDevice ? 20u << 20 : 2u << 20;
  EXPECT_EQ(pool->GetStats().reserved_bytes.current,
            static_cast<std::int64_t>((2u << 20) + (64u << 20) + kv_space))
      << "a 2 MiB slab for the 1 MiB activations, the 64 MiB block and the kv space's "
         "growth for its 1 MiB block, under one cap";
  EXPECT_TRUE(CheckPattern(fill, act[0], 4096, 1u << 20));
  EXPECT_TRUE(CheckPattern(fill, act[1], 4096, 64u << 20));
  for (void* p : act) ASSERT_TRUE(pool->Deallocate(p).ok());
  ASSERT_TRUE(pool->Deallocate(*kv).ok());
  ASSERT_TRUE(pool->Trim().ok());
  if (dm != nullptr) EXPECT_EQ(dm->counters().unmaps.load(), 2u) << "unmapped by the backend that mapped";
  EXPECT_EQ(pool->GetStats().reserved_bytes.current, 0);
  core->CheckInvariants();
}

// trace_path records every allocation, free and record-stream in the
// documented CSV format, each with its thread's number; bad input is not
// recorded; an unwritable path is a clear error.
TEST_P(PoolTest, TraceRecordsWhatThePoolServes) {
  const std::string path = ::testing::TempDir() + "umpool_trace_" + std::to_string(static_cast<int>(kind())) + ".csv";
  {
    PoolOptions o;
    o.trace_path = path;
    auto pool = Make(o);
    auto a = pool->Allocate(4096, kDefaultStream, Role::kKv);
    auto b = pool->Allocate(40u << 20, kDefaultStream, Role::kWeights);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(pool->RecordStream(*a, kDefaultStream).ok());
    ASSERT_TRUE(pool->Deallocate(*a).ok());
    EXPECT_FALSE(pool->Deallocate(*a).ok());  // double free: refused, not recorded
    std::thread other([&] { ASSERT_TRUE(pool->Deallocate(*b).ok()); });  // another thread's number
    other.join();
    ASSERT_TRUE(pool->Allocate(0).ok());      // size 0: nothing to record
  }
  std::FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::vector<std::string> lines;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f) != nullptr) lines.emplace_back(buf);
  std::fclose(f);
  std::remove(path.c_str());
  ASSERT_EQ(lines.size(), 7u) << "header, comment and 5 events";
  EXPECT_EQ(lines[0], "# umpool trace v1\n");
  EXPECT_EQ(lines[1], "op,id,bytes,device,stream,role,t_ns,thread\n");
  EXPECT_EQ(lines[2].rfind("a,1,4096,0,0,kv,", 0), 0u) << lines[2];
  EXPECT_EQ(lines[3].rfind("a,2,41943040,0,0,weights,", 0), 0u) << lines[3];
  EXPECT_EQ(lines[4].rfind("r,1,0,0,0,,", 0), 0u) << lines[4];
  EXPECT_EQ(lines[5].rfind("f,1,0,0,0,,", 0), 0u) << lines[5];
  EXPECT_EQ(lines[6].rfind("f,2,0,0,0,,", 0), 0u) << lines[6];
  // The thread column: the test's thread for the first four events, the other
  // thread's (a different number) for the last free.
  auto thread_of = [](const std::string& line) { return line.substr(line.rfind(',') + 1); };
  for (int i = 2; i < 7; ++i) {
    EXPECT_EQ(std::count(lines[i].begin(), lines[i].end(), ','), 7) << lines[i];
  }
  for (int i = 3; i < 6; ++i) EXPECT_EQ(thread_of(lines[i]), thread_of(lines[2])) << lines[i];
  EXPECT_NE(thread_of(lines[6]), thread_of(lines[2])) << lines[6];

  PoolOptions bad;
  bad.trace_path = "/nonexistent-dir/trace.csv";
  bad.backend = kind();
  if (kind() != BackendKind::kHost) bad.capacity_bytes = std::size_t{1} << 30;
  absl::StatusOr<std::unique_ptr<Pool>> p = Pool::Create(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
  EXPECT_NE(p.status().message().find("/nonexistent-dir/trace.csv"), std::string::npos);
}

// The snapshot lists every segment and slab with block states that add up.
TEST_P(PoolTest, SnapshotShowsSegmentsSlabsAndBlocks) {
  auto small = pool_->Allocate(4096);
  auto big = pool_->Allocate(40u << 20);
  auto gone = pool_->Allocate(100000);
  ASSERT_TRUE(small.ok() && big.ok() && gone.ok());
  ASSERT_TRUE(pool_->Deallocate(*gone).ok());
  const std::string json = pool_->SnapshotJson();
  EXPECT_EQ(json.rfind("{\"umpool_snapshot\":1,", 0), 0u) << json.substr(0, 80);
  auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = json.find(needle); at != std::string::npos; at = json.find(needle, at + 1)) ++n;
    return n;
  };
  const Stats s = pool_->GetStats();
  EXPECT_EQ(count("\"kind\":\"slab\""), static_cast<std::size_t>(s.slabs));
  EXPECT_EQ(count("\"kind\":\"segment\""), static_cast<std::size_t>(s.large_segments));
  EXPECT_NE(json.find("[0,41943040,1,\"L\",41943040]"), std::string::npos)
      << "the live 40 MiB block, with its requested bytes";
  EXPECT_NE(json.find(",\"F\",0]"), std::string::npos) << "the freed block shows as free";
  EXPECT_NE(json.find("\"requested_bytes\":" + std::to_string(4096 + (40u << 20))),
            std::string::npos);
  ASSERT_TRUE(pool_->Deallocate(*small).ok());
  ASSERT_TRUE(pool_->Deallocate(*big).ok());
}

// A pool of large blocks only, as CUDA graph private pools are (what
// RestoreLiveBlocks accepts).
PoolOptions GraphPoolOptions() {
  PoolOptions o;
  for (RolePolicy& p : o.roles) p.slab_max_bytes = 0;
  o.thread_cache = false;
  o.release_on_oom = false;
  return o;
}

// A checkpoint of a large-block pool (a CUDA graph private pool) restores its
// live blocks at their addresses: blocks allocated since are freed, blocks
// freed since come back.
TEST_P(PoolTest, RestoreLiveBlocksPutsACheckpointBack) {
  auto pool = Make(GraphPoolOptions());
  ASSERT_NE(pool, nullptr);
  std::vector<void*> first;
  for (std::size_t n : {std::size_t{4096}, std::size_t{100000}, std::size_t{3} << 20}) {
    auto p = pool->Allocate(n);
    ASSERT_TRUE(p.ok()) << p.status();
    first.push_back(*p);
  }
  const std::vector<BlockInfo> checkpoint = pool->LiveBlocks();
  ASSERT_EQ(checkpoint.size(), 3u);
  EXPECT_EQ(checkpoint[0].requested + checkpoint[1].requested + checkpoint[2].requested,
            4096u + 100000u + (3u << 20));
  // Diverge: free the middle block and allocate others (one reuses its memory).
  ASSERT_TRUE(pool->Deallocate(first[1]).ok());
  auto x = pool->Allocate(50000);
  auto y = pool->Allocate(8 << 20);
  ASSERT_TRUE(x.ok() && y.ok());
  std::vector<void*> freed, allocated;
  ASSERT_TRUE(pool->RestoreLiveBlocks(checkpoint, &freed, &allocated).ok());
  EXPECT_EQ(freed.size(), 4u) << "first[0], first[2], x and y: every live block";
  EXPECT_EQ(allocated, first) << "every block of the checkpoint, at its address";
  const std::vector<BlockInfo> now = pool->LiveBlocks();
  ASSERT_EQ(now.size(), checkpoint.size());
  for (std::size_t i = 0; i < now.size(); ++i) {
    EXPECT_EQ(now[i].ptr, checkpoint[i].ptr);
    EXPECT_EQ(now[i].bytes, checkpoint[i].bytes);
    EXPECT_EQ(now[i].stream, checkpoint[i].stream);
  }
  EXPECT_EQ(pool->GetStats().allocated_bytes.current,
            static_cast<std::int64_t>(now[0].bytes + now[1].bytes + now[2].bytes));
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
  // Restoring the same checkpoint again gives the same blocks; a size-class pool refuses.
  freed.clear();
  allocated.clear();
  ASSERT_TRUE(pool->RestoreLiveBlocks(checkpoint, &freed, &allocated).ok());
  EXPECT_EQ(freed, first);
  EXPECT_EQ(allocated, first);
  for (const BlockInfo& b : now) ASSERT_TRUE(pool->Deallocate(b.ptr).ok());
  auto small = pool_->Allocate(4096);
  ASSERT_TRUE(small.ok());
  const std::vector<BlockInfo> cp = pool_->LiveBlocks();
  ASSERT_TRUE(pool_->Deallocate(*small).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(pool_->RestoreLiveBlocks(cp, nullptr, nullptr)));
}

// A restored block keeps its role where two roles share a large space (an
// activations block in the KV cache's space): LiveBlocks and the role's
// residency say activations after RestoreLiveBlocks as before it.
TEST_P(PoolTest, RestoreLiveBlocksKeepsTheRolesOfASharedSpace) {
  auto pool = Make(GraphPoolOptions());
  ASSERT_NE(pool, nullptr);
  auto act = pool->Allocate(std::size_t{3} << 20, kDefaultStream, Role::kActivations);
  auto kv = pool->Allocate(std::size_t{2} << 20, kDefaultStream, Role::kKv);
  ASSERT_TRUE(act.ok() && kv.ok());
  const std::vector<BlockInfo> checkpoint = pool->LiveBlocks();
  ASSERT_EQ(checkpoint.size(), 2u);
  const std::size_t act_bytes = pool->GetResidency(Role::kActivations).allocated_bytes;
  EXPECT_EQ(act_bytes, *pool->BlockSize(*act));
  ASSERT_TRUE(pool->Deallocate(*act).ok());
  ASSERT_TRUE(pool->Deallocate(*kv).ok());
  std::vector<void*> freed, allocated;
  ASSERT_TRUE(pool->RestoreLiveBlocks(checkpoint, &freed, &allocated).ok());
  const std::vector<BlockInfo> now = pool->LiveBlocks();
  ASSERT_EQ(now.size(), checkpoint.size());
  for (std::size_t i = 0; i < now.size(); ++i) {
    EXPECT_EQ(now[i].ptr, checkpoint[i].ptr);
    EXPECT_EQ(now[i].role, checkpoint[i].role) << "block " << i;
  }
  EXPECT_EQ(pool->GetResidency(Role::kActivations).allocated_bytes, act_bytes);
  // A role outside Role is bad input: refused, nothing restored or freed.
  std::vector<BlockInfo> bad = checkpoint;
  bad[0].role = static_cast<Role>(kNumRoles);
  freed.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(pool->RestoreLiveBlocks(bad, &freed, nullptr)));
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(pool->LiveBlocks().size(), 2u);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
  for (const BlockInfo& b : now) ASSERT_TRUE(pool->Deallocate(b.ptr).ok());
}

// A checkpoint's block whose wholly free segment another role's space took
// since (StealSegment: the KV cache's space growing) comes back there, at its
// address, with the role the checkpoint gave it.
TEST_P(PoolTest, RestoreLiveBlocksPutsABlockBackInASegmentThatMoved) {
  auto pool = Make(GraphPoolOptions());
  ASSERT_NE(pool, nullptr);
  auto d = pool->Allocate(std::size_t{4} << 20);  // default role: its own segment
  ASSERT_TRUE(d.ok());
  const std::vector<BlockInfo> checkpoint = pool->LiveBlocks();
  ASSERT_TRUE(pool->Deallocate(*d).ok());
  auto kv = pool->Allocate(std::size_t{4} << 20, kDefaultStream, Role::kKv);
  ASSERT_TRUE(kv.ok());
  if (*kv != *d) GTEST_SKIP() << "the KV cache's space mapped its own segment";
  ASSERT_EQ(pool->LiveBlocks()[0].role, Role::kKv);
  std::vector<void*> freed, allocated;
  ASSERT_TRUE(pool->RestoreLiveBlocks(checkpoint, &freed, &allocated).ok());
  EXPECT_EQ(freed, std::vector<void*>{*kv});
  EXPECT_EQ(allocated, std::vector<void*>{*d});
  const std::vector<BlockInfo> now = pool->LiveBlocks();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].ptr, *d);
  EXPECT_EQ(now[0].role, Role::kDefault);
  internal::PoolCore::Unwrap(*pool)->CheckInvariants();
  ASSERT_TRUE(pool->Deallocate(*d).ok());
}

// Deallocate(ptr) frees on the stream the block was allocated for; LiveBlocks
// and BlockContaining say which stream and how many bytes were asked for.
TEST_P(PoolTest, BlocksKnowTheirStreamAndRequestedSize) {
  Stream s = kind() == BackendKind::kHost ? testing::HostStream(5) : kDefaultStream;
  auto p = pool_->Allocate(1000, s);
  auto q = pool_->Allocate(5u << 20, s);
  ASSERT_TRUE(p.ok() && q.ok());
  absl::StatusOr<BlockInfo> b = pool_->BlockContaining(static_cast<char*>(*q) + 100);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ptr, *q);
  EXPECT_EQ(b->requested, 5u << 20);
  EXPECT_EQ(b->stream, s);
  EXPECT_EQ(pool_->GetStats().requested_bytes.current, 1000 + (5 << 20));
  EXPECT_EQ(pool_->GetStats().allocated_bytes.current, 1024 + (5 << 20));
  ASSERT_TRUE(pool_->Deallocate(*p).ok());
  ASSERT_TRUE(pool_->Deallocate(*q).ok());
  EXPECT_EQ(pool_->GetStats().requested_bytes.current, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(pool_->Deallocate(*p)));
  Check();
}

}  // namespace
}  // namespace umpool
