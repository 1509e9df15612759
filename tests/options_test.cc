#include "umpool/options.h"

#include <cmath>

#include "gtest/gtest.h"
#include "umpool/pool.h"

namespace umpool {
namespace {

TEST(OptionsTest, DefaultsAreValidAndDocumented) {
  PoolOptions o;
  EXPECT_TRUE(o.Validate().ok());
  EXPECT_EQ(o.backend, BackendKind::kManaged);
  EXPECT_EQ(o.policy(Role::kDefault).prefetch, PrefetchMode::kBelowThreshold);
  EXPECT_EQ(o.policy(Role::kDefault).prefetch_threshold_bytes, std::size_t{2} << 30);
  EXPECT_EQ(o.policy(Role::kDefault).accessed_by, AccessedBy::kCpu);
  EXPECT_EQ(o.policy(Role::kWeights).prefetch, PrefetchMode::kAlways);
  EXPECT_EQ(o.policy(Role::kActivations).prefetch, PrefetchMode::kAlways);
  EXPECT_EQ(o.policy(Role::kDefault).slab_max_bytes, std::size_t{1} << 20);
  EXPECT_EQ(o.policy(Role::kWeights).slab_max_bytes, std::size_t{1} << 20);
  EXPECT_EQ(o.policy(Role::kKv).slab_max_bytes, std::size_t{64} << 10);
  EXPECT_EQ(o.policy(Role::kActivations).slab_max_bytes, std::size_t{32} << 20);
}

TEST(OptionsTest, BadValuesNameTheField) {
  struct Case {
    void (*mutate)(PoolOptions&);
    const char* field;
  };
  const Case cases[] = {
      {[](PoolOptions& o) { o.device = -1; }, "device"},
      {[](PoolOptions& o) { o.backend = BackendKind::kHost; o.device = 1; }, "device"},
      {[](PoolOptions& o) { o.capacity_bytes = 4096; }, "capacity_bytes"},
      {[](PoolOptions& o) { o.thread_cache_bytes = 1; }, "thread_cache_bytes"},
      {[](PoolOptions& o) { o.thread_cache_max_class_bytes = std::size_t{1} << 40; },
       "thread_cache_max_class_bytes"},
      {[](PoolOptions& o) { o.roles[2].prefetch_threshold_bytes = 0; }, "roles[kv]"},
      {[](PoolOptions& o) { o.roles[1].accessed_by = static_cast<AccessedBy>(7); }, "roles[weights]"},
      {[](PoolOptions& o) { o.backend = static_cast<BackendKind>(9); }, "backend"},
      {[](PoolOptions& o) { o.give_back_slack = -0.1; }, "give_back_slack"},
      {[](PoolOptions& o) { o.give_back_slack = 1.5; }, "give_back_slack"},
      {[](PoolOptions& o) { o.give_back_slack = std::nan(""); }, "give_back_slack"},
      {[](PoolOptions& o) { o.roles[2].hbm_budget_slack = -0.5; }, "roles[kv].hbm_budget_slack"},
      {[](PoolOptions& o) { o.roles[2].hbm_budget_slack = std::nan(""); }, "roles[kv].hbm_budget_slack"},
      {[](PoolOptions& o) { o.roles[1].device_memory = true; o.roles[1].read_mostly = true; },
       "roles[weights].device_memory"},
      {[](PoolOptions& o) { o.roles[2].device_memory = true; o.roles[2].discard_on_free = true; },
       "roles[kv].device_memory"},
      {[](PoolOptions& o) { o.roles[3].slab_max_bytes = (std::size_t{32} << 20) + 1; },
       "roles[activations].slab_max_bytes"},
      // vmm memory is GPU memory that never migrates.
      {[](PoolOptions& o) { o.backend = BackendKind::kVmm; o.roles[1].preferred = Location::kHost; },
       "roles[weights].preferred"},
      {[](PoolOptions& o) { o.backend = BackendKind::kVmm; o.roles[2].hbm_budget_bytes = 1 << 30; },
       "roles[kv].hbm_budget"},
      {[](PoolOptions& o) { o.backend = BackendKind::kVmm; o.allow_oversubscription = true; },
       "allow_oversubscription"},
  };
  for (const Case& c : cases) {
    PoolOptions o;
    c.mutate(o);
    absl::Status st = o.Validate();
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << c.field;
    EXPECT_NE(st.message().find(c.field), absl::string_view::npos) << st;
    EXPECT_TRUE(absl::IsInvalidArgument(Pool::Create(o).status())) << c.field;
  }
}

TEST(OptionsTest, NamesRoundTrip) {
  for (int i = 0; i < kNumRoles; ++i) {
    auto r = ParseRole(RoleName(static_cast<Role>(i)));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(static_cast<int>(*r), i);
  }
  EXPECT_FALSE(ParseRole("kvcache").ok());
  EXPECT_EQ(*ParseBackendKind("host"), BackendKind::kHost);
  EXPECT_EQ(*ParseBackendKind("vmm"), BackendKind::kVmm);
  EXPECT_EQ(BackendKindName(BackendKind::kVmm), "vmm");
  EXPECT_FALSE(ParseBackendKind("gpu").ok());
}

TEST(OptionsTest, CudaBackendsWithoutAGpuAreUnavailableNotACrash) {
  for (BackendKind kind : {BackendKind::kManaged, BackendKind::kDevice, BackendKind::kVmm}) {
    PoolOptions o;
    o.backend = kind;
    o.device = 4096;  // no machine has this device
    auto pool = Pool::Create(o);
    ASSERT_FALSE(pool.ok()) << BackendKindName(kind);
    EXPECT_TRUE(absl::IsInvalidArgument(pool.status()) || absl::IsUnavailable(pool.status()))
        << pool.status();
  }
}

}  // namespace
}  // namespace umpool
