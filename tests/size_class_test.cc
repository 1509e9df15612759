// Sweeps every request size up to the largest class.
#include <cstdint>

#include "gtest/gtest.h"
#include "src/pool/size_class.h"

namespace umpool::internal {
namespace {

TEST(SizeClassTest, SweepEverySize) {
  int prev_class = 0;
  double worst_waste = 0;
  for (std::size_t n = 1; n <= kMaxClassBytes; ++n) {
    const int c = SizeClassIndex(n);
    ASSERT_GE(c, 0);
    ASSERT_LT(c, kNumClasses);
    const std::size_t size = kSizeClasses[c].size;
    ASSERT_GE(size, n) << n;
    ASSERT_EQ(size % 256, 0u) << n;
    ASSERT_GE(c, prev_class) << "not monotonic at " << n;
    if (c > 0) ASSERT_LT(kSizeClasses[c - 1].size, n) << "not the smallest class for " << n;
    if (n > 2048) {
      ASSERT_LT(static_cast<double>(size - n) / static_cast<double>(size), 1.0 / 9.0) << n;
    }
    if (n > 1792) {
      const double waste = static_cast<double>(size - n) / static_cast<double>(size);
      ASSERT_LE(waste, 0.125) << n;
      worst_waste = std::max(worst_waste, waste);
    } else {
      ASSERT_LT(size - n, 256u) << n;
    }
    prev_class = c;
  }
  EXPECT_EQ(prev_class, kNumClasses - 1);
  std::printf("worst-case internal waste above 1792 B: %.2f%%\n", worst_waste * 100);
  EXPECT_LE(worst_waste, 0.125);
}

TEST(SizeClassTest, SlabsAreGranularAndTailsBounded) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClassInfo& i = kSizeClasses[c];
    SCOPED_TRACE(i.size);
    EXPECT_EQ(i.size, SizeOfClass(c));
    EXPECT_EQ(SizeClassIndex(i.size), c);
    EXPECT_EQ(i.slab_bytes % kSlabGranularity, 0u);
    EXPECT_GE(i.blocks, 1u);
    EXPECT_EQ(i.blocks * i.size + i.tail_bytes, i.slab_bytes);
    EXPECT_LE(i.tail_bytes * 8, i.slab_bytes);
    EXPECT_LT(i.tail_bytes, i.size);
    if (c > 0) EXPECT_GT(i.size, kSizeClasses[c - 1].size);
  }
}

TEST(SizeClassTest, DivisionByReciprocalIsExact) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClassInfo& i = kSizeClasses[c];
    for (std::uint64_t b = 0; b <= i.blocks; ++b) {
      const std::uint64_t start = b * i.size;
      for (std::uint64_t d : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{255},
                              i.size - 1}) {
        const std::uint64_t off = start + d;
        ASSERT_EQ(DivideByClass(off, i), off / i.size) << i.size << " " << off;
      }
    }
  }
}

}  // namespace
}  // namespace umpool::internal
