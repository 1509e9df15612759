// src/pool/pagemap.h: address -> Span, lock-free for readers.
//
// A two-level radix tree over 48-bit addresses at 2 MiB granularity ("chunk").
// Each chunk entry holds two spans: `lo`, the span covering the chunk's first
// byte, and `hi`, a span starting strictly inside the chunk. Because every
// span is at least 2 MiB long, no chunk has two spans starting inside it, so
// two slots suffice even when the backend returns ranges that are not 2 MiB
// aligned. Lookup: hi if p >= hi->base, else lo; then a bounds check.
//
// Thread safety: Lookup may run concurrently with anything. Insert/Erase must
// be serialised by the caller (the pool's span mutex). Leaves are never freed
// before the pagemap.
#ifndef UMPOOL_SRC_POOL_PAGEMAP_H_
#define UMPOOL_SRC_POOL_PAGEMAP_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "src/pool/span.h"

namespace umpool::internal {

class PageMap {
 public:
  static constexpr int kChunkShift = 21;  // 2 MiB
  static constexpr int kAddressBits = 48;
  static constexpr int kLeafBits = 14;
  static constexpr int kRootBits = kAddressBits - kChunkShift - kLeafBits;  // 13

  PageMap();
  ~PageMap();
  PageMap(const PageMap&) = delete;
  PageMap& operator=(const PageMap&) = delete;

  // The span containing `p`, or nullptr.
  Span* Lookup(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    if ((a >> kAddressBits) != 0) return nullptr;
    const std::uintptr_t chunk = a >> kChunkShift;
    const Leaf* leaf = root_[chunk >> kLeafBits].load(std::memory_order_acquire);
    if (leaf == nullptr) return nullptr;
    const Entry& e = leaf->entries[chunk & ((1u << kLeafBits) - 1)];
    Span* hi = e.hi.load(std::memory_order_acquire);
    Span* s = (hi != nullptr && a >= hi->base) ? hi : e.lo.load(std::memory_order_acquire);
    return (s != nullptr && s->Contains(a)) ? s : nullptr;
  }

  // The slab covering `p`, which must lie in a live slab (a block of one):
  // Lookup without the checks that only segments need (a slab starts at a
  // chunk start, so the chunk's entry names it).
  Span* SlabAt(const void* p) const {
    const std::uintptr_t chunk = reinterpret_cast<std::uintptr_t>(p) >> kChunkShift;
    const Leaf* leaf = root_[chunk >> kLeafBits].load(std::memory_order_acquire);
    return leaf->entries[chunk & ((1u << kLeafBits) - 1)].lo.load(std::memory_order_acquire);
  }

  // Registers `span` (bytes >= 2 MiB, below 2^48). Caller serialises.
  // Returns false (and registers nothing) if the range is unaddressable.
  bool Insert(Span* span);
  // Unregisters `span`. Caller serialises.
  void Erase(Span* span);
  // Points the chunks of [base, base + bytes) at `span` (a slab carved from a
  // segment, or the segment again when the slab goes back). base and bytes
  // must be 2 MiB multiples and the chunks already registered. Caller
  // serialises; concurrent Lookups see the old or the new span.
  void Cover(std::uintptr_t base, std::size_t bytes, Span* span);

 private:
  struct Entry {
    std::atomic<Span*> lo{nullptr};
    std::atomic<Span*> hi{nullptr};
  };
  struct Leaf {
    std::array<Entry, std::size_t{1} << kLeafBits> entries;
  };
  Leaf* LeafFor(std::uintptr_t chunk);
  std::array<std::atomic<Leaf*>, std::size_t{1} << kRootBits> root_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_PAGEMAP_H_
