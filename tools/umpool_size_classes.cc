// tools/umpool_size_classes.cc: prints the size-class table with its waste.
#include <cstdio>

#include "src/pool/size_class.h"

int main() {
  using namespace umpool::internal;
  std::printf("%5s %12s %10s %8s %10s %12s\n", "class", "size", "slab", "blocks", "tail%",
              "max waste%");
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClassInfo& i = kSizeClasses[c];
    const std::size_t prev = c == 0 ? 0 : kSizeClasses[c - 1].size;
    const double waste = 100.0 * static_cast<double>(i.size - prev - 1) / static_cast<double>(i.size);
    std::printf("%5d %12zu %10zu %8u %10.2f %12.2f\n", c, i.size, i.slab_bytes, i.blocks,
                100.0 * static_cast<double>(i.tail_bytes) / static_cast<double>(i.slab_bytes), waste);
  }
  return 0;
}
