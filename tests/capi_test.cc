// The C ABI on the host backend (one process-wide configuration per binary).
#include "umpool/umpool.h"
#include "umpool/umpool_torch.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace {

std::string LastError() { return umpool_last_error(); }

class CapiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(umpool_configure("backend:host,capacity:256MiB,stats_publish_bytes:0"), UMPOOL_OK)
        << umpool_last_error();
  }
  void SetUp() override { umpool_clear_last_error(); }
};

TEST_F(CapiTest, MallocFreeAndStats) {
  void* p = umpool_malloc(1000, 0, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
  umpool_stats s{};
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  EXPECT_EQ(s.allocated_bytes_current, 1024);
  EXPECT_GE(s.reserved_bytes_current, 2 << 20);
  EXPECT_EQ(s.capacity_bytes, 256u << 20);
  umpool_free(p, 1000, 0, nullptr);
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  EXPECT_EQ(s.allocated_bytes_current, 0);
  EXPECT_EQ(LastError(), "");
  char buf[4096];
  const int n = umpool_stats_text(0, buf, sizeof(buf));
  EXPECT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("host"), std::string::npos);
  EXPECT_STREQ(umpool_version(), "0.1.0");
}

TEST_F(CapiTest, InitTakesTheDeviceCountAndCreatesNothing) {
  umpool_init(8);  // PyTorch passes the device count
  EXPECT_EQ(LastError(), "");
  umpool_stats s{};
  ASSERT_EQ(umpool_get_stats(5, &s), UMPOOL_OK);
  EXPECT_EQ(s.capacity_bytes, 0u) << "no pool on device 5";
  umpool_init(-1);
  EXPECT_NE(LastError().find("bad device count"), std::string::npos);
}

TEST_F(CapiTest, Prefetch) {
  void* p = umpool_malloc(100000, 0, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(umpool_prefetch(static_cast<char*>(p) + 4096, 8192, 0, nullptr), UMPOOL_OK);
  EXPECT_EQ(umpool_prefetch(p, 0, 1, nullptr), UMPOOL_OK);
  EXPECT_EQ(umpool_prefetch(p, 1 << 20, 1, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("past the end"), std::string::npos) << LastError();
  int x = 0;
  EXPECT_EQ(umpool_prefetch(&x, 4, 1, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  umpool_free(p, 100000, 0, nullptr);
}

TEST_F(CapiTest, SizeZeroAndNull) {
  EXPECT_EQ(umpool_malloc(0, 0, nullptr), nullptr);
  EXPECT_EQ(LastError(), "");
  umpool_free(nullptr, 0, 0, nullptr);
  EXPECT_EQ(LastError(), "");
}

TEST_F(CapiTest, RoleEntryPoints) {
  for (auto fn : {umpool_malloc_weights, umpool_malloc_kv, umpool_malloc_activations,
                  umpool_pool_malloc, umpool_pool_malloc_kv}) {
    void* p = fn(5000, 0, nullptr);
    ASSERT_NE(p, nullptr) << LastError();
    umpool_free(p, 5000, 0, nullptr);
  }
}

TEST_F(CapiTest, BadInputIsAnErrorNotACrash) {
  void* p = umpool_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr);
  umpool_free(static_cast<char*>(p) + 256, 4096, 0, nullptr);
  EXPECT_NE(LastError().find("interior"), std::string::npos) << LastError();
  int x = 0;
  umpool_free(&x, 4, 0, nullptr);
  EXPECT_NE(LastError().find("not allocated by umpool"), std::string::npos) << LastError();
  umpool_free(p, 4096, 0, nullptr);
  umpool_free(p, 4096, 0, nullptr);
  EXPECT_NE(LastError().find("double free"), std::string::npos) << LastError();
  umpool_record_stream(&x, nullptr);
  EXPECT_NE(LastError().find("not allocated by umpool"), std::string::npos);
  // Absurd sizes and a negative size from a signed caller.
  for (std::size_t n : {SIZE_MAX, static_cast<std::size_t>(-1LL), static_cast<std::size_t>(-4096)}) {
    EXPECT_EQ(umpool_pool_malloc(n, 0, nullptr), nullptr);
    EXPECT_NE(LastError().find("absurd"), std::string::npos) << LastError();
    umpool_clear_last_error();
    EXPECT_EQ(umpool_malloc(n, 0, nullptr), nullptr) << "the C ABI never throws";
    EXPECT_NE(LastError().find("absurd"), std::string::npos) << LastError();
    EXPECT_EQ(umpool_last_error_code(), UMPOOL_ERROR_INVALID_ARGUMENT);
    void* out = &x;
    EXPECT_EQ(umpool_alloc(n, 0, nullptr, 0, &out), UMPOOL_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(out, nullptr);
    EXPECT_THROW(umpool::torch_hooks::Malloc(n, 0, nullptr), std::runtime_error)
        << "the pluggable fallback's own entry point raises";
  }
  // Invalid devices (the host backend has only device 0).
  for (int d : {-1, 1, 64, 1 << 20}) {
    EXPECT_EQ(umpool_pool_malloc(64, d, nullptr), nullptr) << d;
    EXPECT_NE(LastError().find("invalid device"), std::string::npos) << d << ": " << LastError();
  }
  umpool_stats s{};
  EXPECT_EQ(umpool_get_stats(-3, &s), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_get_stats(0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  // Still serving.
  void* q = umpool_malloc(4096, 0, nullptr);
  EXPECT_EQ(q, p);
  umpool_free(q, 4096, 0, nullptr);
}

TEST_F(CapiTest, OutOfMemoryIsAnErrorWithTheRequestAndStats) {
  void* out = nullptr;
  EXPECT_EQ(umpool_alloc(std::size_t{1} << 30, 0, nullptr, 0, &out), UMPOOL_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(LastError().find("out of memory allocating 1073741824 bytes"), std::string::npos);
  EXPECT_EQ(umpool_malloc(std::size_t{1} << 30, 0, nullptr), nullptr);  // above the 256 MiB cap
  try {
    umpool::torch_hooks::Malloc(std::size_t{1} << 30, 0, nullptr);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory allocating 1073741824 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("reserved"), std::string::npos) << what;
  }
  EXPECT_EQ(umpool_pool_malloc(std::size_t{1} << 30, 0, nullptr), nullptr);
  EXPECT_NE(LastError().find("out of memory"), std::string::npos);
  umpool_stats s{};
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  EXPECT_GE(s.ooms, 4u);
  void* p = umpool_malloc(1 << 20, 0, nullptr);  // the process and pool continue
  ASSERT_NE(p, nullptr);
  umpool_free(p, 1 << 20, 0, nullptr);
}

TEST_F(CapiTest, MemoryFractionAndEmptyCache) {
  void* big = umpool_malloc(100u << 20, 0, nullptr);
  ASSERT_NE(big, nullptr);
  umpool_free(big, 100u << 20, 0, nullptr);
  umpool_stats s{};
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  const std::int64_t before = s.reserved_bytes_current;
  EXPECT_GE(before, 100 << 20);
  umpool_empty_cache();
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  EXPECT_LT(s.reserved_bytes_current, before);
  umpool_set_memory_fraction(0.25, 0);  // 64 MiB of the 256 MiB cap
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  EXPECT_EQ(s.capacity_bytes, 64u << 20);
  EXPECT_EQ(umpool_pool_malloc(100u << 20, 0, nullptr), nullptr);
  umpool_set_memory_fraction(1.5, 0);
  EXPECT_NE(LastError().find("not in (0, 1]"), std::string::npos);
  umpool_set_memory_fraction(1.0, 0);
  ASSERT_EQ(umpool_get_stats(0, &s), UMPOOL_OK);
  EXPECT_EQ(s.capacity_bytes, 256u << 20);
  EXPECT_EQ(umpool_reset_peak_stats(0), UMPOOL_OK);
  EXPECT_EQ(umpool_trim(0), UMPOOL_OK);
}

TEST_F(CapiTest, ConfigureAfterFirstUseIsRefused) {
  void* p = umpool_malloc(64, 0, nullptr);
  umpool_free(p, 64, 0, nullptr);
  EXPECT_EQ(umpool_configure("backend:host"), UMPOOL_ERROR_FAILED_PRECONDITION);
  EXPECT_NE(LastError().find("already exists"), std::string::npos);
  EXPECT_EQ(umpool_configure(nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
}

TEST_F(CapiTest, FreeFromAnotherThreadAndRecordStream) {
  void* p = umpool_malloc(8192, 0, nullptr);
  umpool_record_stream(p, reinterpret_cast<umpool_stream_t>(0x77));
  EXPECT_EQ(LastError(), "");
  std::thread t([&] { umpool_free(p, 8192, 0, nullptr); });
  t.join();
  EXPECT_EQ(LastError(), "");
}

}  // namespace

namespace {

umpool_stream_t StreamOf(int i) { return reinterpret_cast<umpool_stream_t>(static_cast<std::uintptr_t>(0x500 + i)); }

int OnlyStreamOne(void* ctx, umpool_stream_t s) {
  ++*static_cast<int*>(ctx);
  return s == StreamOf(1);
}

}  // namespace

// Graph private pools: while a begin is active, allocations its filter picks
// come from a pool of their own (never handed to other allocations); frees
// find it by address; release returns its memory once it is empty; the
// PyTorch-typed hooks route the same way.
TEST_F(CapiTest, GraphPrivatePoolsRouteAndRelease) {
  void* before = umpool_malloc(4096, 0, StreamOf(1));
  ASSERT_NE(before, nullptr);
  umpool_free(before, 4096, 0, StreamOf(1));
  int calls = 0;
  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 7, 1, OnlyStreamOne, &calls), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_graph_pool_count(0), 1);
  void* captured = umpool_malloc(4096, 0, StreamOf(1));
  void* big = umpool_malloc(40u << 20, 0, StreamOf(1));
  void* other = umpool_malloc(4096, 0, StreamOf(2));
  ASSERT_TRUE(captured && big && other);
  EXPECT_GE(calls, 3);
  EXPECT_NE(captured, before) << "a capture's allocation never reuses the main pool's blocks";
  umpool_stats device_stats{};
  ASSERT_EQ(umpool_get_stats(0, &device_stats), UMPOOL_OK);
  EXPECT_EQ(device_stats.allocated_bytes_current, 4096 + 4096 + (40 << 20))
      << "the device's stats count its private pools";
  // Which pool holds what: only `other` is in the main pool.
  struct Live {
    std::int64_t main = 0, priv = 0;
  } live;
  ASSERT_EQ(umpool_visit_spans(0, [](void* ctx, const umpool_span_info* s) {
    auto* l = static_cast<Live*>(ctx);
    for (std::size_t i = 0; i < s->block_count; ++i) {
      if (s->blocks[i].state != 'L' || s->is_slab_space) continue;
      const std::int64_t n = static_cast<std::int64_t>(s->blocks[i].bytes * s->blocks[i].count);
      (s->pool_id_hi == 0 && s->pool_id_lo == 0 ? l->main : l->priv) += n;
    }
  }, &live), UMPOOL_OK);
  EXPECT_EQ(live.main, 4096);
  EXPECT_GE(live.priv, 4096 + (40 << 20));
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 7, 1), UMPOOL_OK) << LastError();
  EXPECT_NE(umpool_end_allocate_to_pool(0, 7, 1), UMPOOL_OK) << "an end without a begin";
  // After the capture: the captured block, freed, is not handed to others.
  umpool_free(captured, 4096, 0, StreamOf(1));
  void* later = umpool_malloc(4096, 0, StreamOf(1));
  EXPECT_NE(later, captured);
  // The PyTorch-typed hooks: the same pool id routes to the same pool again.
  umpool::torch_hooks::BeginAllocateToPool(0, {7, 1},
                                           [](umpool_stream_t s) { return s == StreamOf(1); });
  void* again = umpool_malloc(4096, 0, StreamOf(1));
  EXPECT_EQ(again, captured) << "a later capture into the same pool reuses its blocks";
  umpool::torch_hooks::EndAllocateToPool(0, {7, 1});
  umpool_free(again, 4096, 0, StreamOf(1));
  // Two begins, two uses: PyTorch releases once per graph.
  umpool::torch_hooks::ReleasePool(0, {7, 1});
  umpool_free(big, 40u << 20, 0, StreamOf(1));
  EXPECT_EQ(umpool_graph_pool_count(0), 1) << "one use is left";
  ASSERT_EQ(umpool_release_pool(0, 7, 1), UMPOOL_OK);
  EXPECT_EQ(umpool_graph_pool_count(0), 0) << "released and empty: memory returned";
  // A released pool can be used again (a MemPool entered anew).
  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 7, 1, OnlyStreamOne, &calls), UMPOOL_OK);
  EXPECT_EQ(umpool_graph_pool_count(0), 1);
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 7, 1), UMPOOL_OK);
  ASSERT_EQ(umpool_release_pool(0, 7, 1), UMPOOL_OK);
  EXPECT_EQ(umpool_begin_allocate_to_pool(0, 8, 1, nullptr, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_release_pool(0, 99, 99), UMPOOL_OK) << "releasing an unused id is a no-op";
  umpool_free(other, 4096, 0, StreamOf(2));
  umpool_free(later, 4096, 0, StreamOf(1));
}

namespace {

int AnyStream(void*, umpool_stream_t) { return 1; }

// A device's private graph pools share its cap: together they never pass it.
TEST_F(CapiTest, PrivatePoolsShareTheDeviceCap) {
  ASSERT_EQ(umpool_trim(0), UMPOOL_OK);
  void* big = umpool_malloc(200u << 20, 0, nullptr);  // the cap is 256 MiB
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 9, 9, AnyStream, nullptr), UMPOOL_OK);
  void* out = nullptr;
  EXPECT_EQ(umpool_alloc(100u << 20, 0, nullptr, 0, &out), UMPOOL_ERROR_OUT_OF_MEMORY);
  EXPECT_NE(LastError().find("shares"), std::string::npos) << LastError();
  EXPECT_EQ(umpool_alloc(16u << 20, 0, nullptr, 0, &out), UMPOOL_OK) << LastError();
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 9, 9), UMPOOL_OK);
  EXPECT_EQ(umpool_free_block(out), UMPOOL_OK);
  ASSERT_EQ(umpool_release_pool(0, 9, 9), UMPOOL_OK);
  umpool_free(big, 200u << 20, 0, nullptr);
}

// Bytes the private pool (hi, lo) holds from CUDA on device 0.
std::uint64_t PrivateReserved(std::uint64_t hi, std::uint64_t lo) {
  struct Q {
    std::uint64_t hi, lo, bytes = 0;
  } q{hi, lo};
  EXPECT_EQ(umpool_visit_spans(0, [](void* ctx, const umpool_span_info* s) {
    auto* q = static_cast<Q*>(ctx);
    if (!s->is_slab && s->pool_id_hi == q->hi && s->pool_id_lo == q->lo) q->bytes += s->bytes;
  }, &q), UMPOOL_OK);
  return q.bytes;
}

// Live bytes of the private pool (hi, lo) on device 0 (large blocks).
std::int64_t PrivateLive(std::uint64_t hi, std::uint64_t lo) {
  struct Q {
    std::uint64_t hi, lo;
    std::int64_t bytes = 0;
  } q{hi, lo};
  EXPECT_EQ(umpool_visit_spans(0, [](void* ctx, const umpool_span_info* s) {
    auto* q = static_cast<Q*>(ctx);
    if (s->is_slab || s->pool_id_hi != q->hi || s->pool_id_lo != q->lo) return;
    for (std::size_t i = 0; i < s->block_count; ++i) {
      if (s->blocks[i].state == 'L') {
        q->bytes += static_cast<std::int64_t>(s->blocks[i].bytes * s->blocks[i].count);
      }
    }
  }, &q), UMPOOL_OK);
  return q.bytes;
}

// torch.cuda.empty_cache leaves a private pool in use alone (its graphs replay
// into blocks it holds as free, PyTorch's rule); once released, it goes back.
TEST_F(CapiTest, EmptyCacheKeepsPrivatePoolsInUse) {
  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 11, 1, AnyStream, nullptr), UMPOOL_OK);
  void* p = umpool_malloc(3u << 20, 0, nullptr);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 11, 1), UMPOOL_OK);
  umpool_free(p, 3u << 20, 0, nullptr);  // free between replays, still the graph's
  const std::uint64_t held = PrivateReserved(11, 1);
  EXPECT_GE(held, 3u << 20);
  umpool_empty_cache();
  EXPECT_EQ(umpool_last_error_code(), UMPOOL_OK) << LastError();
  EXPECT_EQ(PrivateReserved(11, 1), held) << "empty_cache returned memory a graph replays into";
  ASSERT_EQ(umpool_release_pool(0, 11, 1), UMPOOL_OK);
  umpool_empty_cache();
  EXPECT_EQ(PrivateReserved(11, 1), 0u) << "a released pool's memory goes back";
}

int OnlyStreamTwo(void*, umpool_stream_t s) { return s == StreamOf(2); }

// Two begins on one pool at once (two threads warming up into one graph
// pool): each one's filter routes; ending the newer leaves the older's.
TEST_F(CapiTest, NestedBeginsOnOnePoolEachRoute) {
  int calls = 0;
  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 12, 1, OnlyStreamOne, &calls), UMPOOL_OK);
  ASSERT_EQ(umpool_begin_allocate_to_pool(0, 12, 1, OnlyStreamTwo, nullptr), UMPOOL_OK);
  void* one = umpool_malloc(4096, 0, StreamOf(1));
  void* two = umpool_malloc(4096, 0, StreamOf(2));
  void* three = umpool_malloc(4096, 0, StreamOf(3));
  ASSERT_TRUE(one && two && three);
  EXPECT_EQ(PrivateLive(12, 1), 2 * 4096) << "both filters route to the pool";
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 12, 1), UMPOOL_OK);
  void* one_again = umpool_malloc(4096, 0, StreamOf(1));
  void* two_again = umpool_malloc(4096, 0, StreamOf(2));
  ASSERT_TRUE(one_again && two_again);
  EXPECT_EQ(PrivateLive(12, 1), 3 * 4096) << "the older begin still routes; the ended one not";
  ASSERT_EQ(umpool_end_allocate_to_pool(0, 12, 1), UMPOOL_OK);
  for (void* p : {one, two, three, one_again, two_again}) EXPECT_EQ(umpool_free_block(p), UMPOOL_OK);
  ASSERT_EQ(umpool_release_pool(0, 12, 1), UMPOOL_OK);
  ASSERT_EQ(umpool_release_pool(0, 12, 1), UMPOOL_OK);
}

// umpool_stats_fields describes umpool_stats field by field (the Python
// package builds its structure from it).
// Sleep and wake through the C ABI: masks checked, the block keeps its
// address and contents (host backend), sleeping twice and waking an awake
// pool are no-ops.
TEST_F(CapiTest, SleepAndWakeUp) {
  void* w = nullptr;
  ASSERT_EQ(umpool_alloc(4u << 20, 0, nullptr, /*weights*/ 1, &w), UMPOOL_OK) << LastError();
  std::memset(w, 0x5a, 4u << 20);
  EXPECT_EQ(umpool_is_asleep(0), 0);
  EXPECT_EQ(umpool_sleep(0, 1u << 1, 1u << 1, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("both offloaded and discarded"), std::string::npos) << LastError();
  EXPECT_EQ(umpool_sleep(0, 1u << 9, 0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_sleep(-3, 0, 0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_is_asleep(-3), -1);
  EXPECT_EQ(umpool_wake_up(0, nullptr), UMPOOL_OK) << "awake: a no-op";
  ASSERT_EQ(umpool_sleep(0, 1u << 1, 1u << 2, nullptr), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_is_asleep(0), 1);
  ASSERT_EQ(umpool_sleep(0, 1u << 1, 0, nullptr), UMPOOL_OK) << "asleep: a no-op";
  std::memset(w, 0x11, 4u << 20);  // written while asleep: lost at wake-up
  ASSERT_EQ(umpool_release_staging(0), UMPOOL_OK) << "asleep: the buffer is kept";
  ASSERT_EQ(umpool_wake_up(0, nullptr), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_is_asleep(0), 0);
  EXPECT_EQ(static_cast<unsigned char*>(w)[(4u << 20) - 1], 0x5a);
  EXPECT_EQ(static_cast<unsigned char*>(w)[0], 0x5a);
  EXPECT_EQ(umpool_release_staging(0), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_release_staging(-3), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_reserve_staging(0, 1u << 9), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_reserve_staging(-3, 1u << 1), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_reserve_staging(0, 1u << 1), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_reserve_eviction_staging(-3, 1u << 20), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_reserve_eviction_staging(0, 0), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_reserve_eviction_staging(0, 1u << 20), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_trim(0), UMPOOL_OK) << "frees the reserved chunk again: " << LastError();
  // umpool_sleep_ex: flags checked; (0, 0) is the device's pool; with
  // CONTENTS_UNCHANGED the staged copy of the last sleep is reused (the
  // write made meanwhile, against the promise, is undone: no copy was made).
  EXPECT_EQ(umpool_sleep_ex(0, 0, 0, 1u << 1, 0, 0x6, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("unknown flag bits 0x6"), std::string::npos) << LastError();
  EXPECT_EQ(umpool_sleep_ex(0, 3, 4, 1u << 1, 0, 0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_sleep_pool(0, 0, 0, 1u << 1, 0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(umpool_sleep_ex(0, 0, 0, 1u << 1, 0, UMPOOL_SLEEP_CONTENTS_UNCHANGED, nullptr),
              UMPOOL_OK) << LastError();
    ASSERT_EQ(umpool_wake_up(0, nullptr), UMPOOL_OK) << LastError();
    std::memset(w, 0x22, 4u << 20);
  }
  EXPECT_EQ(static_cast<unsigned char*>(w)[0], 0x22);
  ASSERT_EQ(umpool_sleep_ex(0, 0, 0, 1u << 1, 0, UMPOOL_SLEEP_CONTENTS_UNCHANGED, nullptr),
            UMPOOL_OK) << LastError();
  ASSERT_EQ(umpool_wake_up(0, nullptr), UMPOOL_OK) << LastError();
  EXPECT_EQ(static_cast<unsigned char*>(w)[0], 0x5a) << "the first sleep's copy came back";
  EXPECT_EQ(umpool_free_block(w), UMPOOL_OK);
}

// Residency through the C ABI: an evicted block is counted, bad input is an
// error code with text.
TEST_F(CapiTest, Residency) {
  void* p = nullptr;
  ASSERT_EQ(umpool_alloc(8u << 20, 0, nullptr, /*default*/ 0, &p), UMPOOL_OK) << LastError();
  ASSERT_EQ(umpool_prefetch(p, 0, /*to_gpu=*/0, nullptr), UMPOOL_OK) << LastError();
  umpool_residency r{};
  ASSERT_EQ(umpool_get_residency(0, 0, &r), UMPOOL_OK) << LastError();
  EXPECT_GE(r.evictions, 1u);
  EXPECT_GE(r.host_bytes, 8u << 20);
  EXPECT_EQ(r.budget_bytes, 0u);
  EXPECT_EQ(umpool_get_residency(0, 7, &r), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("invalid role 7"), std::string::npos) << LastError();
  EXPECT_EQ(umpool_get_residency(0, 0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_get_residency(-2, 0, &r), UMPOOL_ERROR_INVALID_ARGUMENT);
  // Where the block is: evicted (0), then fetched back (1).
  int on_gpu = -1;
  ASSERT_EQ(umpool_block_location(static_cast<char*>(p) + 100, &on_gpu), UMPOOL_OK) << LastError();
  EXPECT_EQ(on_gpu, 0);
  ASSERT_EQ(umpool_prefetch(p, 0, /*to_gpu=*/1, nullptr), UMPOOL_OK) << LastError();
  ASSERT_EQ(umpool_block_location(p, &on_gpu), UMPOOL_OK) << LastError();
  EXPECT_EQ(on_gpu, 1);
  EXPECT_EQ(umpool_block_location(p, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  int local = 0;
  on_gpu = -1;
  EXPECT_EQ(umpool_block_location(&local, &on_gpu), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("umpool_block_location"), std::string::npos) << LastError();
  EXPECT_EQ(on_gpu, -1) << "untouched on error";
  EXPECT_EQ(umpool_free_block(p), UMPOOL_OK);
  EXPECT_EQ(umpool_block_location(p, &on_gpu), UMPOOL_ERROR_FAILED_PRECONDITION) << "freed";
  ASSERT_EQ(umpool_get_residency(0, 0, &r), UMPOOL_OK);
  EXPECT_EQ(r.host_bytes, 0u) << "freed: forgotten";
}

// One private pool sleeps alone: the device's pool stays awake.
TEST_F(CapiTest, SleepOnePrivatePool) {
  ASSERT_EQ(umpool_create_pool(0, 7, 9), UMPOOL_OK) << LastError();
  void* p = nullptr;
  ASSERT_EQ(umpool_pool_alloc(0, 7, 9, 4u << 20, nullptr, &p), UMPOOL_OK) << LastError();
  std::memset(p, 0x11, 4u << 20);
  EXPECT_EQ(umpool_sleep_pool(0, 7, 10, 1u, 0, nullptr), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("no private pool (7, 10)"), std::string::npos) << LastError();
  ASSERT_EQ(umpool_sleep_pool(0, 7, 9, /*default*/ 1u, 0, nullptr), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_is_asleep(0), 0) << "the device's pool did not sleep";
  ASSERT_EQ(umpool_wake_pool(0, 7, 9, nullptr), UMPOOL_OK) << LastError();
  EXPECT_EQ(static_cast<unsigned char*>(p)[12345], 0x11);
  EXPECT_EQ(umpool_free_block(p), UMPOOL_OK) << LastError();
  EXPECT_EQ(umpool_release_pool(0, 7, 9), UMPOOL_OK) << LastError();
}

// The pressure callback through the C ABI: asked once, with the request's
// size and role, it frees a block and the allocation succeeds.
struct Pressure {
  int calls = 0;
  std::size_t bytes = 0;
  int role = -1;
  void* victim = nullptr;
};
int FreeVictim(void* ctx, int device, size_t bytes, int role) {
  auto* p = static_cast<Pressure*>(ctx);
  ++p->calls;
  p->bytes = bytes;
  p->role = role;
  if (device != 0 || p->victim == nullptr) return 0;
  umpool_free_block(p->victim);
  p->victim = nullptr;
  return 1;
}

TEST_F(CapiTest, PressureCallbackFreesAndTheAllocationSucceeds) {
  ASSERT_EQ(umpool_trim(0), UMPOOL_OK);
  void* a = nullptr;
  void* b = nullptr;
  ASSERT_EQ(umpool_alloc(100u << 20, 0, nullptr, 2, &a), UMPOOL_OK) << LastError();
  ASSERT_EQ(umpool_alloc(100u << 20, 0, nullptr, 2, &b), UMPOOL_OK) << LastError();
  void* c = nullptr;
  EXPECT_EQ(umpool_alloc(100u << 20, 0, nullptr, 2, &c), UMPOOL_ERROR_OUT_OF_MEMORY);
  Pressure pressure;
  pressure.victim = b;
  ASSERT_EQ(umpool_set_pressure_callback(0, &FreeVictim, &pressure), UMPOOL_OK);
  ASSERT_EQ(umpool_alloc(100u << 20, 0, nullptr, 2, &c), UMPOOL_OK) << LastError();
  EXPECT_EQ(pressure.calls, 1);
  EXPECT_GE(pressure.bytes, 100u << 20);
  EXPECT_EQ(pressure.role, 2);
  EXPECT_EQ(pressure.victim, nullptr);
  ASSERT_EQ(umpool_set_pressure_callback(0, nullptr, nullptr), UMPOOL_OK);
  void* d = nullptr;
  EXPECT_EQ(umpool_alloc(100u << 20, 0, nullptr, 2, &d), UMPOOL_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(pressure.calls, 1);
  EXPECT_EQ(umpool_set_pressure_callback(-2, &FreeVictim, &pressure), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(umpool_free_block(a), UMPOOL_OK);
  EXPECT_EQ(umpool_free_block(c), UMPOOL_OK);
}

TEST_F(CapiTest, StatsFieldsDescribeTheStruct) {
  std::string fields = umpool_stats_fields();
  std::size_t lines = 0, pos = 0;
  for (; (pos = fields.find('\n', pos)) != std::string::npos; ++pos) ++lines;
  EXPECT_EQ(lines * 8, sizeof(umpool_stats));
  EXPECT_EQ(fields.rfind("allocated_bytes_current i64 allocated_bytes.all.current\n", 0), 0u);
  EXPECT_NE(fields.find("requested_bytes_peak i64 requested_bytes.all.peak\n"), std::string::npos);
  EXPECT_NE(fields.find("cache_hits u64 -\n"), std::string::npos);
  EXPECT_EQ(umpool_role_count(), 4);
  EXPECT_STREQ(umpool_role_name(2), "kv");
  EXPECT_EQ(umpool_role_name(4), nullptr);
}

}  // namespace

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

// The pluggable fallback finds its throwing entry point by mangled name.
TEST(CapiTorchEntryTest, TheMangledNameIsExported) {
  // The build's library, or the one UMPOOL_LIBRARY names (a staged copy).
  const char* env = std::getenv("UMPOOL_LIBRARY");
  void* lib = dlopen(env != nullptr && *env != '\0' ? env : UMPOOL_SHARED_LIBRARY,
                     RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  for (const char* name : {UMPOOL_TORCH_MALLOC_SYMBOL, UMPOOL_TORCH_BEGIN_SYMBOL,
                           UMPOOL_TORCH_END_SYMBOL, UMPOOL_TORCH_RELEASE_SYMBOL}) {
    EXPECT_NE(dlsym(lib, name), nullptr) << name << ": " << dlerror();
  }
  EXPECT_NE(dlsym(lib, "umpool_malloc"), nullptr);
  dlclose(lib);
}
