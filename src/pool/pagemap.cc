#include "src/pool/pagemap.h"

#include "src/base/check.h"

namespace umpool::internal {

PageMap::PageMap() {
  for (auto& r : root_) r.store(nullptr, std::memory_order_relaxed);
}

PageMap::~PageMap() {
  for (auto& r : root_) delete r.load(std::memory_order_relaxed);
}

PageMap::Leaf* PageMap::LeafFor(std::uintptr_t chunk) {
  auto& slot = root_[chunk >> kLeafBits];
  Leaf* leaf = slot.load(std::memory_order_acquire);
  if (leaf == nullptr) {
    leaf = new Leaf();
    slot.store(leaf, std::memory_order_release);
  }
  return leaf;
}

bool PageMap::Insert(Span* span) {
  UMPOOL_CHECK(span->bytes >= (std::size_t{1} << kChunkShift), "span shorter than a chunk");
  const std::uintptr_t first = span->base >> kChunkShift;
  const std::uintptr_t last = (span->base + span->bytes - 1) >> kChunkShift;
  if (((span->base + span->bytes - 1) >> kAddressBits) != 0) return false;
  for (std::uintptr_t c = first; c <= last; ++c) {
    Entry& e = LeafFor(c)->entries[c & ((1u << kLeafBits) - 1)];
    const bool starts_inside = (c == first) && (span->base & ((1u << kChunkShift) - 1)) != 0;
    auto& slot = starts_inside ? e.hi : e.lo;
    UMPOOL_CHECK(slot.load(std::memory_order_relaxed) == nullptr, "overlapping spans");
    slot.store(span, std::memory_order_release);
  }
  return true;
}

void PageMap::Cover(std::uintptr_t base, std::size_t bytes, Span* span) {
  constexpr std::uintptr_t kMask = (std::uintptr_t{1} << kChunkShift) - 1;
  UMPOOL_CHECK((base & kMask) == 0 && (bytes & kMask) == 0 && bytes != 0, "unaligned cover");
  for (std::uintptr_t c = base >> kChunkShift; c < (base + bytes) >> kChunkShift; ++c) {
    Leaf* leaf = root_[c >> kLeafBits].load(std::memory_order_acquire);
    UMPOOL_CHECK(leaf != nullptr, "covering an unregistered range");
    Entry& e = leaf->entries[c & ((1u << kLeafBits) - 1)];
    UMPOOL_CHECK(e.hi.load(std::memory_order_relaxed) == nullptr, "covering a shared chunk");
    e.lo.store(span, std::memory_order_release);
  }
}

void PageMap::Erase(Span* span) {
  const std::uintptr_t first = span->base >> kChunkShift;
  const std::uintptr_t last = (span->base + span->bytes - 1) >> kChunkShift;
  for (std::uintptr_t c = first; c <= last; ++c) {
    Leaf* leaf = root_[c >> kLeafBits].load(std::memory_order_acquire);
    UMPOOL_CHECK(leaf != nullptr, "erasing an unregistered span");
    Entry& e = leaf->entries[c & ((1u << kLeafBits) - 1)];
    if (e.lo.load(std::memory_order_relaxed) == span) e.lo.store(nullptr, std::memory_order_release);
    if (e.hi.load(std::memory_order_relaxed) == span) e.hi.store(nullptr, std::memory_order_release);
  }
}

}  // namespace umpool::internal
