// Guard and GuardValue: an exception thrown inside a C ABI function's body
// becomes UMPOOL_ERROR_INTERNAL with its text; nothing crosses extern "C".
#include "src/capi/last_error.h"

#include <stdexcept>
#include <string>

#include "gtest/gtest.h"

namespace umpool::capi {
namespace {

TEST(LastErrorTest, GuardTurnsExceptionsIntoInternalErrors) {
  ClearLastError();
  EXPECT_EQ(Guard("umpool_x", []() -> int { throw std::runtime_error("boom"); }),
            UMPOOL_ERROR_INTERNAL);
  EXPECT_EQ(LastErrorCode(), UMPOOL_ERROR_INTERNAL);
  EXPECT_EQ(std::string(LastError()), "umpool_x: boom");
  EXPECT_EQ(Guard("umpool_y", []() -> int { throw 7; }), UMPOOL_ERROR_INTERNAL);
  EXPECT_EQ(std::string(LastError()), "umpool_y: unknown exception");
}

TEST(LastErrorTest, GuardValueReturnsTheFallback) {
  ClearLastError();
  int* fallback = nullptr;
  EXPECT_EQ(GuardValue<int*>("umpool_z", fallback, []() -> int* { throw std::bad_alloc(); }),
            nullptr);
  EXPECT_EQ(LastErrorCode(), UMPOOL_ERROR_INTERNAL);
  EXPECT_NE(std::string(LastError()).find("umpool_z: "), std::string::npos) << LastError();
  EXPECT_EQ(GuardValue<int>("umpool_z", -1, [] { return 3; }), 3) << "no exception: its value";
}

TEST(LastErrorTest, GuardPassesCodesThrough) {
  ClearLastError();
  EXPECT_EQ(Guard("umpool_ok", [] { return static_cast<int>(UMPOOL_OK); }), UMPOOL_OK);
  EXPECT_EQ(Guard("umpool_fail", [] { return Done(absl::InvalidArgumentError("bad")); }),
            UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(LastError()), "bad");
}

}  // namespace
}  // namespace umpool::capi
