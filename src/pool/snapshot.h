// src/pool/snapshot.h: the picture of a pool's spans (Pool::Spans), as the
// tiers append it: umpool::SpanInfo, with the block states as named values.
#ifndef UMPOOL_SRC_POOL_SNAPSHOT_H_
#define UMPOOL_SRC_POOL_SNAPSHOT_H_

#include "umpool/pool.h"

namespace umpool::internal {

// Block states in a picture (SpanBlocks::state).
enum SnapState : char {
  kSnapLive = 'L',      // handed out
  kSnapRecorded = 'R',  // handed out and named by RecordStream
  kSnapFree = 'F',      // cached free (a thread cache, a free list, or waiting for a fence/discard)
  kSnapUncarved = 'U',  // never handed out (slab tail)
  kSnapBare = 'B',      // free, its pages given back (not reserved: LargeBlock::bare)
};

using SpanSnapshot = SpanInfo;

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_SNAPSHOT_H_
