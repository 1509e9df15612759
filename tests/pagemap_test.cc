#include "src/pool/pagemap.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace umpool::internal {
namespace {

constexpr std::uintptr_t kMiB = 1 << 20;

TEST(PageMapTest, FindsAlignedAndUnalignedSpansFromAnyAddress) {
  PageMap map;
  // Three back-to-back spans, the second and third not 2 MiB aligned.
  Span a(SpanKind::kSlab, 0x7f0000000000, 4 * kMiB, Role::kDefault);
  Span b(SpanKind::kSlab, a.base + a.bytes + 768 * 1024, 2 * kMiB, Role::kKv);
  Span c(SpanKind::kSegment, b.base + b.bytes, 6 * kMiB, Role::kWeights);
  ASSERT_TRUE(map.Insert(&a));
  ASSERT_TRUE(map.Insert(&b));
  ASSERT_TRUE(map.Insert(&c));
  for (Span* s : {&a, &b, &c}) {
    for (std::uintptr_t off : {std::uintptr_t{0}, std::uintptr_t{1}, s->bytes / 2, s->bytes - 1}) {
      EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(s->base + off)), s) << off;
    }
  }
  // The gap between a and b, and addresses outside everything.
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(a.base + a.bytes + 100)), nullptr);
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(c.base + c.bytes)), nullptr);
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(a.base - 1)), nullptr);
  EXPECT_EQ(map.Lookup(nullptr), nullptr);
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(~std::uintptr_t{0})), nullptr);
  map.Erase(&b);
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(b.base)), nullptr);
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(a.base)), &a);
  EXPECT_EQ(map.Lookup(reinterpret_cast<void*>(c.base)), &c);
}

TEST(PageMapTest, RefusesAddressesAbove48Bits) {
  PageMap map;
  Span s(SpanKind::kSlab, std::uintptr_t{1} << 48, 2 * kMiB, Role::kDefault);
  EXPECT_FALSE(map.Insert(&s));
}

}  // namespace
}  // namespace umpool::internal
