// tests/pool_test_fixture.h: the fixture of the pool conformance suite
// (tests/pool_test.cc, tests/pool_features_test.cc: one binary, one ctest
// entry per backend). Host runs everywhere; managed and device need a GPU and
// skip cleanly without one.
#ifndef UMPOOL_TESTS_POOL_TEST_FIXTURE_H_
#define UMPOOL_TESTS_POOL_TEST_FIXTURE_H_

#include <cctype>
#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "src/pool/pool_core.h"
#include "tests/test_util.h"
#include "umpool/pool.h"

namespace umpool {

class PoolTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    if (GetParam() != BackendKind::kHost && !testing::HaveGpu()) {
      GTEST_SKIP() << "no usable CUDA device: " << BackendKindName(GetParam())
                   << " backend tests skipped";
    }
    pool_ = Make({});
  }
  std::unique_ptr<Pool> Make(PoolOptions options) {
    auto pool = testing::MakeTestPool(GetParam(), options);
    EXPECT_TRUE(pool.ok()) << pool.status();
    return pool.ok() ? *std::move(pool) : nullptr;
  }
  void Check() { internal::PoolCore::Unwrap(*pool_)->CheckInvariants(); }
  BackendKind kind() const { return GetParam(); }
  // false on the vmm backend: its pages never migrate to the host (no Evict
  // by migration, no Prefetch or PrefetchBlocks to the host, no budgets that
  // migrate); tests of those skip there with kNoMigration.
  bool Migrates() const { return kind() != BackendKind::kVmm; }
  static constexpr const char* kNoMigration =
      "vmm memory cannot migrate to the host (its eviction by staging is tested)";
  // The legacy NULL stream on every backend (the managed backend orders its
  // discards against it through an internal blocking stream).
  Stream stream_for_discard() const { return kDefaultStream; }
  std::unique_ptr<Pool> pool_;
};

// The suites' parameters: every backend, each test named after its backend.
inline auto AllBackends() {
  return ::testing::Values(BackendKind::kHost, BackendKind::kManaged, BackendKind::kDevice,
                           BackendKind::kVmm);
}
inline std::string BackendTestName(const ::testing::TestParamInfo<BackendKind>& info) {
  std::string n(BackendKindName(info.param));
  n[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(n[0])));
  return n;
}

}  // namespace umpool

#endif  // UMPOOL_TESTS_POOL_TEST_FIXTURE_H_
