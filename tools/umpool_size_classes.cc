// tools/umpool_size_classes.cc: prints the size-class table with its waste.
#include <cstdio>
#include <vector>

#include "umpool/pool.h"

int main() {
  const std::vector<umpool::SizeClassRow> table = umpool::SizeClassTable();
  std::printf("%5s %12s %10s %8s %10s %12s\n", "class", "size", "slab", "blocks", "tail%",
              "max waste%");
  for (std::size_t c = 0; c < table.size(); ++c) {
    const umpool::SizeClassRow& i = table[c];
    const std::size_t prev = c == 0 ? 0 : table[c - 1].block_bytes;
    const double waste =
        100.0 * static_cast<double>(i.block_bytes - prev - 1) / static_cast<double>(i.block_bytes);
    std::printf("%5zu %12zu %10zu %8zu %10.2f %12.2f\n", c, i.block_bytes, i.slab_bytes, i.blocks,
                100.0 * static_cast<double>(i.tail_bytes) / static_cast<double>(i.slab_bytes),
                waste);
  }
  return 0;
}
