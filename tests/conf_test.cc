#include "src/capi/conf.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace umpool::capi {
namespace {

// docs/conf.md's key table is ConfDoc()'s output: the documentation is the
// table the parser walks, defaults read from the code.
TEST(ConfTest, TheDocumentationIsTheKeyTable) {
  std::ifstream in(UMPOOL_SOURCE_DIR "/docs/conf.md");
  ASSERT_TRUE(in) << "docs/conf.md not found";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find(ConfDoc()), std::string::npos)
      << "docs/conf.md is out of date; its table should be:\n" << ConfDoc();
}

TEST(ConfTest, RoleKeysExistForEveryRoleAndNewKeysParse) {
  auto c = ParseConf("kv.preferred:cpu,kv.accessed_by:gpu,release_on_oom:false");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pool.policy(Role::kKv).preferred, Location::kHost);
  EXPECT_FALSE(c->pool.release_on_oom);
  for (int r = 0; r < kNumRoles; ++r) {
    const std::string key = std::string(RoleName(static_cast<Role>(r))) + ".slab_max:4KiB";
    auto d = ParseConf(key);
    ASSERT_TRUE(d.ok()) << key << ": " << d.status();
    EXPECT_EQ(d->pool.roles[r].slab_max_bytes, 4096u);
  }
  auto band = ParseConf("default.slab_space_max:1MiB,weights.slab_space_max:512KiB");
  ASSERT_TRUE(band.ok()) << band.status();
  EXPECT_EQ(band->pool.policy(Role::kDefault).slab_space_max_bytes, std::size_t{1} << 20);
  EXPECT_EQ(band->pool.policy(Role::kWeights).slab_space_max_bytes, std::size_t{512} << 10);
  EXPECT_EQ(PoolOptions().policy(Role::kDefault).slab_space_max_bytes, std::size_t{256} << 10);
  EXPECT_EQ(PoolOptions().policy(Role::kKv).slab_space_max_bytes, std::size_t{32} << 20);
  auto bad = ParseConf("kv.preferred:moon");
  EXPECT_NE(bad.status().message().find("expected gpu, cpu"), std::string::npos) << bad.status();
  auto slack = ParseConf("give_back_free_pages:0,give_back_slack:0.1");
  ASSERT_TRUE(slack.ok()) << slack.status();
  EXPECT_FALSE(slack->pool.give_back_free_pages);
  EXPECT_DOUBLE_EQ(slack->pool.give_back_slack, 0.1);
  auto budget_slack = ParseConf("kv.hbm_budget:1GiB,kv.hbm_budget_slack:0.1");
  ASSERT_TRUE(budget_slack.ok()) << budget_slack.status();
  EXPECT_DOUBLE_EQ(budget_slack->pool.policy(Role::kKv).hbm_budget_slack, 0.1);
  EXPECT_DOUBLE_EQ(budget_slack->pool.give_back_slack, PoolOptions().give_back_slack);
  for (const char* v : {"give_back_slack:2", "give_back_slack:-1", "give_back_slack:lots",
                        "kv.hbm_budget_slack:1.5"}) {
    auto b = ParseConf(v);
    EXPECT_NE(b.status().message().find("expected a number from 0 to 1"), std::string::npos)
        << v << ": " << b.status();
  }
}

TEST(ConfTest, EveryKeyParses) {
  auto c = ParseConf(
      " backend:host, capacity:1.5GiB,allow_oversubscription:yes,thread_cache:off,"
      "thread_cache_bytes:32MiB,thread_cache_max_class:1MiB,stats_publish_bytes:0,"
      "raise_on_oom:false,kv.accessed_by:gpu,kv.prefetch:never,weights.prefetch:always,"
      "default.prefetch_threshold:1GB,activations.accessed_by:none,weights.read_mostly:on,kv.discard:true,"
      "activations.memory:device,kv.slab_max:1MiB");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pool.backend, BackendKind::kHost);
  EXPECT_EQ(c->pool.capacity_bytes, std::size_t{3} << 29);
  EXPECT_TRUE(c->pool.allow_oversubscription);
  EXPECT_FALSE(c->pool.thread_cache);
  EXPECT_EQ(c->pool.thread_cache_bytes, std::size_t{32} << 20);
  EXPECT_EQ(c->pool.thread_cache_max_class_bytes, std::size_t{1} << 20);
  EXPECT_EQ(c->pool.stats_publish_bytes, 0u);
  EXPECT_FALSE(c->raise_on_oom);
  EXPECT_EQ(c->pool.policy(Role::kKv).accessed_by, AccessedBy::kGpu);
  EXPECT_EQ(c->pool.policy(Role::kKv).prefetch, PrefetchMode::kNever);
  EXPECT_EQ(c->pool.policy(Role::kWeights).prefetch, PrefetchMode::kAlways);
  EXPECT_EQ(c->pool.policy(Role::kDefault).prefetch_threshold_bytes, 1000000000u);
  EXPECT_EQ(c->pool.policy(Role::kActivations).accessed_by, AccessedBy::kNone);
  EXPECT_TRUE(c->pool.policy(Role::kWeights).read_mostly);
  EXPECT_FALSE(c->pool.policy(Role::kKv).read_mostly);
  EXPECT_TRUE(c->pool.policy(Role::kKv).discard_on_free);
  EXPECT_FALSE(c->pool.policy(Role::kDefault).discard_on_free);
  EXPECT_TRUE(c->pool.policy(Role::kActivations).device_memory);
  EXPECT_FALSE(c->pool.policy(Role::kKv).device_memory);
  EXPECT_EQ(c->pool.policy(Role::kKv).slab_max_bytes, std::size_t{1} << 20);
  EXPECT_EQ(c->pool.policy(Role::kActivations).slab_max_bytes, std::size_t{32} << 20);
  EXPECT_TRUE(ParseConf("").ok());
  EXPECT_TRUE(ParseConf(",,").ok());
}

TEST(ConfTest, FalseReallyDisables) {
  for (const char* v : {"0", "false", "no", "off", "FALSE"}) {
    auto c = ParseConf(std::string("thread_cache:") + v);
    ASSERT_TRUE(c.ok()) << v;
    EXPECT_FALSE(c->pool.thread_cache) << v;
  }
}

TEST(ConfTest, ErrorsNameTheKeyOrValue) {
  const std::pair<const char*, const char*> cases[] = {
      {"bogus:1", "bogus"},
      {"capacity", "not a key:value pair"},
      {"capacity:lots", "lots"},
      {"capacity:12XB", "12XB"},
      {"capacity:-5", "-5"},
      {"capacity:", "capacity"},
      {"backend:tpu", "tpu"},
      {"thread_cache:maybe", "maybe"},
      {"kvcache.prefetch:never", "kvcache"},
      {"kv.prefetch:sometimes", "sometimes"},
      {"kv.color:red", "kv.color"},
      {"activations.memory:hbm", "hbm"},
      {"kv.memory:device,kv.discard:1", "device_memory"},
      {"activations.slab_max:64MiB", "roles[activations].slab_max_bytes"},
      {"kv.slab_max:big", "big"},
      {"capacity:1GiB,capacity:2GiB", "twice"},
      {"capacity:4KiB", "capacity_bytes"},
      {"capacity:2PiB", "2PiB"},
  };
  for (const auto& [text, needle] : cases) {
    auto c = ParseConf(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << text;
    EXPECT_NE(c.status().message().find(needle), absl::string_view::npos)
        << text << " -> " << c.status();
  }
}

TEST(ConfTest, Bytes) {
  EXPECT_EQ(*ParseBytes("0"), 0u);
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("2MiB"), std::size_t{2} << 20);
  EXPECT_EQ(*ParseBytes("2 mib"), std::size_t{2} << 20);
  EXPECT_EQ(*ParseBytes("3GB"), 3000000000u);
  EXPECT_EQ(*ParseBytes("1T"), std::size_t{1} << 40);
  EXPECT_FALSE(ParseBytes("").ok());
  EXPECT_FALSE(ParseBytes("MiB").ok());
}

// The public entry point (umpool-replay --conf): the text applied on top of
// the caller's options, which survive where the text is silent; bad text
// refused with the key named, the caller's options untouched.
TEST(ConfTest, ParsePoolOptionsAppliesTextOnTheCallersOptions) {
  PoolOptions base;
  base.capacity_bytes = std::size_t{3} << 30;
  base.give_back_slack = 0.05;
  auto o = umpool::ParsePoolOptions("default.slab_space_max:1MiB, give_back_free_pages:off", base);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->capacity_bytes, std::size_t{3} << 30);
  EXPECT_DOUBLE_EQ(o->give_back_slack, 0.05);
  EXPECT_FALSE(o->give_back_free_pages);
  EXPECT_EQ(o->policy(Role::kDefault).slab_space_max_bytes, std::size_t{1} << 20);
  EXPECT_EQ(o->policy(Role::kKv).slab_space_max_bytes, base.policy(Role::kKv).slab_space_max_bytes);
  auto empty = umpool::ParsePoolOptions("", base);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->capacity_bytes, base.capacity_bytes);
  for (const char* text : {"raise_on_oom:false", " RAISE_ON_OOM :1", "nonsense:1", "kv.tail_last:maybe",
                           "give_back_slack:0.1,give_back_slack:0.2", "give_back_slack:2", "capacity"}) {
    auto bad = umpool::ParsePoolOptions(text, base);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(bad.status().message().find("UMPOOL_CONF"), std::string::npos) << bad.status();
  }
  EXPECT_NE(umpool::ParsePoolOptions("raise_on_oom:0").status().message().find("raise_on_oom"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(base.give_back_slack, 0.05);  // the caller's options, untouched
}

}  // namespace
}  // namespace umpool::capi
