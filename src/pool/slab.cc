#include "src/pool/slab.h"

namespace umpool::internal {
namespace {

// One 64-byte line per state when the slab has at most 512 blocks (at most
// 32 KiB of host memory per slab); packed bytes beyond that, where fresh
// blocks are handed to thread caches in aligned groups of 64 instead.
std::uint32_t StrideFor(const SizeClassInfo& info) { return info.blocks <= 512 ? 64 : 1; }

}  // namespace

Slab::Slab(std::uintptr_t base, Role role, int size_class)
    : Span(SpanKind::kSlab, base, kSizeClasses[size_class].slab_bytes, role),
      size_class_(size_class),
      info_(kSizeClasses[size_class]),
      stride_(StrideFor(info_)),
      states_(new std::atomic<std::uint8_t>[static_cast<std::size_t>(info_.blocks) * stride_]) {
  for (std::size_t i = 0; i < static_cast<std::size_t>(info_.blocks) * stride_; ++i) {
    states_[i].store(kFree, std::memory_order_relaxed);
  }
}

}  // namespace umpool::internal
