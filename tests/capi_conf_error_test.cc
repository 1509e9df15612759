// A malformed UMPOOL_CONF is reported, clearly, at the first allocation.
#include <stdlib.h>

#include <stdexcept>
#include <string>

#include "gtest/gtest.h"
#include "umpool/umpool.h"

TEST(CapiConfErrorTest, MalformedEnvironmentIsAClearErrorAtFirstUse) {
  ASSERT_EQ(setenv("UMPOOL_CONF", "backend:host,capacity:lots", 1), 0);
  EXPECT_EQ(umpool_pool_malloc(64, 0, nullptr), nullptr);
  const std::string err = umpool_last_error();
  EXPECT_NE(err.find("capacity"), std::string::npos) << err;
  EXPECT_NE(err.find("lots"), std::string::npos) << err;
  umpool_clear_last_error();
  EXPECT_EQ(umpool_malloc(64, 0, nullptr), nullptr);
  EXPECT_EQ(umpool_last_error_code(), UMPOOL_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(umpool_last_error()).find("lots"), std::string::npos);
  // A valid configuration given explicitly before any pool exists still works.
  ASSERT_EQ(umpool_configure("backend:host"), UMPOOL_OK);
  void* p = umpool_malloc(64, 0, nullptr);
  EXPECT_NE(p, nullptr);
  umpool_free(p, 64, 0, nullptr);
}
