// src/pool/snapshot.h: a picture of a pool's spans and blocks at one moment,
// for Pool::SnapshotJson (the "where did my memory go?" view).
#ifndef UMPOOL_SRC_POOL_SNAPSHOT_H_
#define UMPOOL_SRC_POOL_SNAPSHOT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "umpool/types.h"

namespace umpool::internal {

// Block states in a snapshot.
enum class SnapState : char {
  kLive = 'L',          // handed out
  kRecorded = 'R',      // handed out and named by RecordStream
  kFree = 'F',          // cached free (a thread cache, a free list, or waiting for a fence/discard)
  kUncarved = 'U',      // never handed out (slab tail)
};

struct SnapBlock {
  std::size_t offset = 0;  // from the span's base
  std::size_t bytes = 0;
  std::uint32_t count = 1;  // consecutive blocks of this size and state (slabs)
  SnapState state = SnapState::kFree;
};

struct SpanSnapshot {
  std::uintptr_t base = 0;
  std::size_t bytes = 0;
  Role role = Role::kDefault;
  bool slab = true;
  std::size_t block_bytes = 0;  // slabs: the class size
  std::vector<SnapBlock> blocks;  // address order; slabs run-length encoded
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SNAPSHOT_H_
