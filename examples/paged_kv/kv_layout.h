// examples/paged_kv/kv_layout.h: the demo's KV block layout (plain C++: the
// turn planning and its CPU test use it without CUDA).
#ifndef UMPOOL_EXAMPLES_PAGED_KV_KV_LAYOUT_H_
#define UMPOOL_EXAMPLES_PAGED_KV_KV_LAYOUT_H_

#include <cstddef>

namespace paged_kv {

constexpr int kBlockTokens = 256;   // tokens per KV block
constexpr int kTokenFloats = 2048;  // K and V of one token (1024 floats each): 8 KiB
// One KV block: 256 tokens x 8 KiB = 2 MiB, one GPU page.
constexpr std::size_t kBlockBytes = std::size_t{kBlockTokens} * kTokenFloats * sizeof(float);

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_KV_LAYOUT_H_
