// src/pool/span.h: a contiguous backend allocation the pool owns.
//
// Two kinds: a Slab (blocks of one size class) and a Segment (large blocks,
// split and merged best-fit). Every span is a multiple of 2 MiB, so the
// pagemap can find it from any interior address. Spans are host-side objects;
// nothing is stored in pool memory (invariant 1).
#ifndef UMPOOL_SRC_POOL_SPAN_H_
#define UMPOOL_SRC_POOL_SPAN_H_

#include <cstddef>
#include <cstdint>

#include "umpool/types.h"

namespace umpool::internal {

enum class SpanKind : std::uint8_t { kSlab = 0, kSegment = 1 };

struct Span {
  Span(SpanKind k, std::uintptr_t b, std::size_t n, Role r) : kind(k), role(r), base(b), bytes(n) {}
  virtual ~Span() = default;  // spans are owned as std::unique_ptr<Span>
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  const SpanKind kind;
  const Role role;
  const std::uintptr_t base;
  const std::size_t bytes;

  bool Contains(std::uintptr_t p) const { return p - base < bytes; }
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SPAN_H_
