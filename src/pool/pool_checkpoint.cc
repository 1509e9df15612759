// PoolCore: putting a checkpoint of live blocks back (RestoreLiveBlocks, as
// CUDA graph trees need for PyTorch's setCheckpointPoolState).
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {

absl::Status PoolCore::RestoreLiveBlocks(const std::vector<BlockInfo>& want,
                                         std::vector<void*>* freed,
                                         std::vector<void*>* allocated) {
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError("RestoreLiveBlocks during a CUDA graph capture");
  }
  // Everything that can be checked before the live blocks go is checked
  // first: bad input loses nothing. Whether a block's range is still free is
  // known only after they go (FailedPrecondition then, from TakeAt).
  std::vector<LargeHeap*> spaces;
  spaces.reserve(want.size());
  for (const BlockInfo& b : want) {
    if (static_cast<unsigned>(b.role) >= static_cast<unsigned>(kNumRoles)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot restore the block at ", absl::Hex(reinterpret_cast<std::uintptr_t>(b.ptr)),
          ": role ", static_cast<int>(b.role), " is not a Role"));
    }
    Span* span = pagemap_.Lookup(b.ptr);
    if (span == nullptr || span->kind != SpanKind::kSegment) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot restore the block at ", absl::Hex(reinterpret_cast<std::uintptr_t>(b.ptr)),
          span == nullptr ? ": its memory is no longer held by this pool"
                          : ": size-class blocks cannot be restored (use large blocks only)"));
    }
    LargeHeap* space = Arena::LargeSpaceOf(span);
    if (space == nullptr) {
      return absl::FailedPreconditionError("cannot restore a block in slab space");
    }
    // Not necessarily the role's own space: a wholly free segment may have
    // moved to another space since the checkpoint (StealSegment). The block
    // comes back where its memory is, with its role.
    spaces.push_back(space);
  }
  // As PyTorch's allocator does: every live block is freed, then every
  // block of the checkpoint taken again at its address (a pointer that was
  // live in both is in both lists: its old owner keeps it, the caller hands
  // the new one to whoever had it at the checkpoint).
  for (const BlockInfo& b : LiveBlocks()) {
    if (absl::Status st = DeallocateOwn(b.ptr); !st.ok()) return st;
    if (freed != nullptr) freed->push_back(b.ptr);
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    const BlockInfo& b = want[i];
    absl::Status st = spaces[i]->TakeAt(
        reinterpret_cast<std::uintptr_t>(b.ptr), b.bytes, b.stream, b.requested, fencer_,
        [&](Segment* seg, std::uintptr_t addr, std::size_t n) {
          return arena_.Refill(seg, addr, n, b.stream);
        });
    if (!st.ok()) return st;
    spaces[i]->SetRole(b.ptr, b.role);  // as TakeLarge's blocks in a shared space
    caches_.CountAllocation(CounterCache(), b.bytes, b.requested, /*hit=*/true);
    if (allocated != nullptr) allocated->push_back(b.ptr);
  }
  return absl::OkStatus();
}

}  // namespace umpool::internal
