#include "src/pool/slab.h"

#include <new>

namespace umpool::internal {
namespace {

static_assert(sizeof(BlockRecord) == 16, "four records per cache line in dense slabs");

// One 64-byte line per record when the slab has at most 512 blocks (at most
// 32 KiB of host memory per slab); packed 16-byte records beyond that, where
// fresh blocks are handed to thread caches in aligned groups of 64 (16 lines)
// instead.
std::uint32_t StrideFor(const SizeClassInfo& info) { return info.blocks <= 512 ? 4 : 1; }

}  // namespace

Slab::Slab(std::uintptr_t base, Role role, int size_class, BlockRecord* records)
    : Span(SpanKind::kSlab, base, kSizeClasses[size_class].slab_bytes, role),
      size_class_(size_class),
      info_(kSizeClasses[size_class]),
      stride_(StrideFor(info_)),
      records_(records) {}

std::size_t Slab::RecordCount(int size_class) {
  const SizeClassInfo& info = kSizeClasses[size_class];
  return static_cast<std::size_t>(info.blocks) * StrideFor(info);
}

Slab::Records Slab::NewRecords(int size_class) {
  return Records(new (std::align_val_t{64}) BlockRecord[RecordCount(size_class)]);
}

void Slab::RecordsDelete::operator()(BlockRecord* p) const {
  // The array form of the aligned delete, as allocated above.
  ::operator delete[](p, std::align_val_t{64});
}

}  // namespace umpool::internal
