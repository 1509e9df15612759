// src/pool/slab.h: a 2 MiB-aligned range of a segment carved into blocks of one class.
//
// Per-block metadata lives here, host-side (invariant 1), in one record per
// block: its state (kFree: in a cache or central list; kLive: handed out;
// kLiveRecorded: handed out and named by RecordStream), the stream it was
// allocated for (so it can be freed without naming one, as PyTorch frees a
// tensor) and its slack (class size - requested bytes, for requested_bytes).
// State transitions are atomic exchanges, which is what makes a double free or
// a free of a never-allocated block a clean error instead of a corrupted list.
// When a slab has few blocks each record gets its own cache line, so threads
// working on neighbouring blocks do not false-share; denser slabs hand fresh
// blocks to thread caches in aligned groups of 64 instead. The records array
// is not the slab's: the slab allocator owns every array (until the pool
// dies) and hands a returned slab's to the next slab of its role and class,
// whose records are then all kFree, as a new array's are.
#ifndef UMPOOL_SRC_POOL_SLAB_H_
#define UMPOOL_SRC_POOL_SLAB_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "src/pool/size_class.h"
#include "src/pool/span.h"
#include "umpool/types.h"

namespace umpool::internal {

enum BlockState : std::uint8_t { kFree = 0, kLive = 1, kLiveRecorded = 2 };

struct BlockRecord {
  std::atomic<std::uint8_t> state{kFree};
  // The pool evicted (some of) the block while it was live: discard on free
  // applies (set by Evict, taken by the free).
  std::atomic<std::uint8_t> evicted{0};
  std::uint32_t slack = 0;  // class size - requested bytes (live blocks)
  Stream stream = nullptr;  // the stream it was allocated for (live blocks)
};

class Slab final : public Span {
 public:
  // Blocks per cache-line group; batches of fresh blocks are carved in these.
  static constexpr std::uint32_t kGroup = 64;

  // `records`: an array of RecordCount(size_class) records, every one kFree.
  Slab(std::uintptr_t base, Role role, int size_class, BlockRecord* records);
  // Records an array for a slab of `size_class` holds.
  static std::size_t RecordCount(int size_class);
  struct RecordsDelete {
    void operator()(BlockRecord* p) const;
  };
  using Records = std::unique_ptr<BlockRecord[], RecordsDelete>;
  // A new array for a slab of `size_class`, 64-byte aligned, every record kFree.
  static Records NewRecords(int size_class);
  BlockRecord* records() const { return records_; }

  int size_class() const { return size_class_; }
  const SizeClassInfo& info() const { return info_; }

  // Index of the block starting at `p`, or -1 if `p` is inside a block but not
  // at its start (an interior pointer). `p` must be within the slab.
  std::int64_t IndexOf(std::uintptr_t p) const {
    const std::uint64_t off = p - base;
    const std::uint64_t idx = DivideByClass(off, info_);
    if (idx >= info_.blocks || idx * info_.size != off) return -1;
    return static_cast<std::int64_t>(idx);
  }
  void* BlockAt(std::uint32_t index) const {
    return reinterpret_cast<void*>(base + static_cast<std::uintptr_t>(index) * info_.size);
  }
  BlockRecord& record(std::uint32_t index) { return records_[index * stride_]; }
  const BlockRecord& record(std::uint32_t index) const { return records_[index * stride_]; }
  std::atomic<std::uint8_t>& state(std::uint32_t index) { return record(index).state; }

  // Fresh (never handed out) blocks are carved from the front; guarded by the
  // owning central bin's mutex.
  std::uint32_t carved = 0;
  // Carved blocks now in the owning central bin's free lists (neither live
  // nor in a thread cache); same guard. The slab is empty when it equals
  // `carved`: finding empty slabs costs a look at each slab, not at each
  // free block.
  std::uint32_t in_bin = 0;
  // The segment whose range this slab occupies (slabs are carved from their
  // role's slab space and go back to it when empty).
  Span* carrier = nullptr;
  // A slab made from memory last freed on `bound_stream` (reused at once on
  // that stream) hands its never-carved blocks to other streams only once a
  // fence on bound_stream covering bound_seq has completed. Guarded by the
  // owning central bin's mutex.
  Stream bound_stream = nullptr;
  bool bound = false;
  std::uint64_t bound_seq = 0;

 private:
  const int size_class_;
  const SizeClassInfo& info_;
  const std::uint32_t stride_;  // in records
  BlockRecord* const records_;  // 64-byte aligned; the slab allocator's
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SLAB_H_
