// PoolCore: what a pointer is (block lookups), moving blocks (prefetch,
// evict, fetch), and every live block (LiveBlocks; restoring them:
// pool_checkpoint.cc).
#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {

absl::Status NotOurs(const void* ptr) {
  return absl::InvalidArgumentError(
      absl::StrCat("pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
                   " was not allocated by this pool"));
}

absl::Status WaitingForDiscard(const void* ptr) {
  return absl::FailedPreconditionError(
      absl::StrCat("block ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)),
                   " is not allocated (freed; waiting for its discard)"));
}

namespace {

BlockInfo SlabBlock(const Slab& slab, std::uint32_t idx) {
  const BlockRecord& r = slab.record(idx);
  return BlockInfo{slab.BlockAt(idx), slab.info().size, slab.info().size - r.slack, r.stream,
                   slab.role};
}

}  // namespace

absl::StatusOr<BlockInfo> PoolCore::BlockAt(const void* ptr) const {
  Span* span = pagemap_.Lookup(ptr);
  if (span == nullptr) return NotOurs(ptr);
  if (span->kind == SpanKind::kSegment) {
    if (WaitsForDiscard(span, ptr)) return WaitingForDiscard(ptr);
    LargeHeap* space = Arena::LargeSpaceOf(span);
    if (space == nullptr) return NotOurs(ptr);
    return space->Block(reinterpret_cast<std::uintptr_t>(ptr));
  }
  auto* slab = static_cast<Slab*>(span);
  const std::int64_t idx = slab->IndexOf(reinterpret_cast<std::uintptr_t>(ptr));
  if (idx < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interior pointer ", absl::Hex(reinterpret_cast<std::uintptr_t>(ptr)), " in a ",
        slab->info().size, "-byte block"));
  }
  if (slab->state(static_cast<std::uint32_t>(idx)).load(std::memory_order_acquire) == kFree) {
    return absl::FailedPreconditionError("block is not allocated");
  }
  return SlabBlock(*slab, static_cast<std::uint32_t>(idx));
}

absl::StatusOr<BlockInfo> PoolCore::BlockContaining(const void* ptr) const {
  Span* span = pagemap_.Lookup(ptr);
  if (span == nullptr) return NotOurs(ptr);
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  if (span->kind == SpanKind::kSegment) {
    LargeHeap* space = Arena::LargeSpaceOf(span);
    if (space == nullptr) return NotOurs(ptr);
    absl::StatusOr<BlockInfo> b = space->Containing(p);
    if (b.ok() && WaitsForDiscard(span, b->ptr)) return WaitingForDiscard(ptr);
    return b;
  }
  auto* slab = static_cast<Slab*>(span);
  const std::uint64_t idx = DivideByClass(p - slab->base, slab->info());
  if (idx >= slab->info().blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address ", absl::Hex(p), " is in the unused tail of a slab"));
  }
  if (slab->state(static_cast<std::uint32_t>(idx)).load(std::memory_order_acquire) == kFree) {
    return absl::FailedPreconditionError(absl::StrCat(
        "address ", absl::Hex(p), " is in a block that is not allocated"));
  }
  return SlabBlock(*slab, static_cast<std::uint32_t>(idx));
}

absl::Status PoolCore::Prefetch(const void* ptr, std::size_t bytes, Location where,
                                Stream stream) {
  absl::StatusOr<BlockInfo> block = BlockContaining(ptr);
  if (!block.ok()) return block.status();
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(block->ptr) + block->bytes;
  if (bytes == 0) bytes = end - p;
  if (bytes > end - p) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prefetch of ", bytes, " bytes at ", absl::Hex(p), " runs ", bytes - (end - p),
        " bytes past the end of its ", block->bytes, "-byte block"));
  }
  if (arena_.IsDeviceMemory(block->role)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "block at ", absl::Hex(p), " (role ", RoleName(block->role),
        ") is plain device memory (device_memory policy) and cannot be prefetched or evicted"));
  }
  const bool large = IsLarge(block->ptr);
  std::optional<FetchUnderWay> under_way;  // until the copies in are queued
  if (large && where == Location::kDevice) {
    under_way.emplace(residency_, absl::MakeConstSpan(&*block, 1));
    if (absl::Status st = CheckFetchable({block->ptr}, stream); !st.ok()) return st;
    if (absl::Status st = NoteMoved({*block}, where, stream); !st.ok()) return st;
  }
  counters_.Bump(counters_.prefetch_calls);
  absl::Status st;
  // A role that evicts by staging moves whole blocks: a block staged out
  // comes back whole; evicting the whole block stages it out.
  std::vector<void*> whole{block->ptr};
  std::vector<std::size_t> whole_bytes{block->bytes};
  if (large && where == Location::kDevice) {
    evicting_.WaitFor(whole);  // out first if another thread is evicting it
    st = StageIn(&whole, &whole_bytes, stream);
  } else if (large && ptr == block->ptr && bytes == block->bytes) {
    const Victims claimed = BeginEngineEviction(whole);
    st = StageOut(&whole, &whole_bytes, stream);
    EndEngineEviction(claimed, st.ok());
  }
  if (st.ok() && !whole.empty() && !MigrationSkipped(where)) {
    st = backend_->Prefetch(const_cast<void*>(ptr), bytes, where, stream);
  }
  if (st.ok() && where == Location::kHost) {
    NoteEvicted(block->ptr);
    if (large) st = NoteMoved({*block}, where, stream);
  }
  // Once the fetched pages are in: free pages past the budget go back.
  if (st.ok() && large && where == Location::kDevice) GiveBackOverBudgets(stream);
  return st;
}

bool PoolCore::MigrationSkipped(Location where) const {
  // During a capture an eviction is a hint that nothing runs now (staging is
  // skipped too); on vmm memory, which cannot migrate, it is not refused then.
  return where == Location::kHost && !backend_->PopulatesOnTouch() && fencer_.capturing();
}

bool PoolCore::IsLarge(const void* block) const {
  const Span* span = pagemap_.Lookup(block);
  return span != nullptr && span->kind == SpanKind::kSegment;
}

absl::Status PoolCore::NoteMoved(const std::vector<BlockInfo>& blocks, Location where,
                                 Stream stream) {
  Victims victims;
  residency_.Moved(blocks, where, stream, &victims);
  return EvictVictims(victims, stream);
}

absl::Status PoolCore::AdmitBudgeted(void* p, std::size_t bytes, Role role, Stream stream) {
  Victims victims;
  residency_.Allocated(role, reinterpret_cast<std::uintptr_t>(p), bytes, &victims);
  absl::Status st = EvictVictims(victims, stream);
  if (st.ok()) GiveBackOverBudgets(stream);
  return st;
}

void PoolCore::GiveBackOverBudgets(Stream stream) {
  for (int r = 0; r < kNumRoles; ++r) {
    const Role role = static_cast<Role>(r);
    const std::size_t budget = options_.policy(role).hbm_budget_bytes;
    if (budget == 0) continue;
    // What the role holds on the GPU: its populated bytes less its live
    // blocks' evicted pages. Past the budget (and the slack that spares a
    // drop per allocation), the rest is free pages: given back.
    const std::size_t held = arena_.RoleReservedBytes(role);
    const std::size_t on_gpu = held - std::min(held, residency_.Get(role).host_bytes);
    const double room = options_.policy(role).hbm_budget_slack;
    const auto slack = static_cast<std::size_t>(room * static_cast<double>(budget));
    if (on_gpu > budget + slack) arena_.GiveBackOverBudget(role, on_gpu - budget, stream);
  }
}

absl::Status PoolCore::OrderAfterVictims(const Victims& victims, Stream stream) {
  // Recording events during a capture could invalidate it; the evictions
  // are then left to the migration (StageOut skips them) like any hint.
  if (fencer_.capturing() || backend_->IsCapturing(stream)) return absl::OkStatus();
  StreamSet others;
  auto add = [&](Stream s) {
    if (s != stream && !released_.Contains(s) && std::find(others.begin(), others.end(), s) == others.end()) {
      others.push_back(s);
    }
  };
  for (void* v : victims.ptrs) {  // large block starts (the tracker's)
    const Span* span = pagemap_.Lookup(v);
    if (LargeHeap* space = span != nullptr ? Arena::LargeSpaceOf(span) : nullptr) {
      for (Stream s : space->UsedOn(reinterpret_cast<std::uintptr_t>(v))) add(s);
    }
  }
  for (Stream s : victims.fetched_on) add(s);
  absl::StatusOr<Fences> fences = FencesOn(others);
  if (!fences.ok()) return fences.status();
  return arena_.OrderAfter(stream, *fences);
}

absl::Status PoolCore::EvictVictims(const Victims& victims, Stream stream) {
  if (victims.empty()) return absl::OkStatus();
  // Claimed (the tracker counts them evicted already): a fetch of one from
  // another thread waits until they are out, then brings it back. They were
  // chosen under the tracker's lock and are in flight only from Begin: one
  // freed (or fetched back) in between is no victim any more, and is left
  // alone (a free that came later waits for End). Before, the free's pages
  // could be given back, or the block handed out again, and then copied out
  // and dropped (TSan's run of the racing fetch test read a dropped page).
  evicting_.Begin(victims.ptrs);
  const Victims still = residency_.StillEvicted(victims);
  absl::Status st = still.empty() ? absl::OkStatus() : MoveOutVictims(still, stream);
  if (st.ok()) {
    residency_.Evicted(still);
  } else {
    residency_.Unclaim(still);
  }
  evicting_.End(victims.ptrs);
  return st;
}

Victims PoolCore::BeginEngineEviction(const std::vector<void*>& blocks) {
  Victims claimed = residency_.Claim(blocks);
  evicting_.WaitFor(blocks);  // the budget's, under way (not those just claimed)
  evicting_.Begin(claimed.ptrs);
  return claimed;
}

void PoolCore::EndEngineEviction(const Victims& claimed, bool ok) {
  if (!ok) residency_.Unclaim(claimed);
  evicting_.End(claimed.ptrs);
}

absl::Status PoolCore::MoveOutVictims(const Victims& victims, Stream stream) {
  // The caller ordered `stream` after its own use of the blocks it named,
  // not of the ones the budget picked: a victim may still be read or written
  // on the stream it was allocated for (a decode step on the compute stream
  // while an engine fetches on a side stream), on the streams RecordStream
  // named for it, or be copied in on the stream it was last fetched on (a
  // fetch's copies are queued, not done: dropping its pages first loses the
  // copy or, on vmm memory, faults the GPU).
  if (absl::Status st = OrderAfterVictims(victims, stream); !st.ok()) return st;
  std::vector<void*> ptrs = victims.ptrs;  // those not staged out are migrated
  std::vector<std::size_t> sizes = victims.sizes;
  absl::Status st = StageOut(&ptrs, &sizes, stream);
  if (st.ok()) st = PrefetchBatch(ptrs, sizes, Location::kHost, stream);
  if (!st.ok()) return st;
  for (void* v : victims.ptrs) NoteEvicted(v);
  return absl::OkStatus();
}

void PoolCore::NoteEvicted(const void* block) {
  Span* span = pagemap_.Lookup(block);
  if (span == nullptr || !DiscardsFor(span->role)) return;
  const auto p = reinterpret_cast<std::uintptr_t>(block);
  if (span->kind == SpanKind::kSegment) {
    if (LargeHeap* space = Arena::LargeSpaceOf(span)) space->MarkEvicted(p);
    return;
  }
  auto* slab = static_cast<Slab*>(span);
  const std::int64_t idx = slab->IndexOf(p);
  if (idx >= 0) slab->record(static_cast<std::uint32_t>(idx)).evicted.store(1, std::memory_order_relaxed);
}

absl::Status PoolCore::PrefetchBatch(const std::vector<void*>& ptrs,
                                     const std::vector<std::size_t>& sizes, Location where,
                                     Stream stream) {
  if (ptrs.empty()) return absl::OkStatus();
  counters_.Bump(counters_.prefetch_calls);  // counted as asked, like Prefetch
  if (MigrationSkipped(where)) return absl::OkStatus();
  return backend_->Prefetch(ptrs.data(), sizes.data(), ptrs.size(), where, stream);
}

absl::Status PoolCore::PrefetchBlocks(const void* const* ptrs, std::size_t count,
                                      Location where, Stream stream) {
  if (count == 0) return absl::OkStatus();
  if (ptrs == nullptr) return absl::InvalidArgumentError("PrefetchBlocks: null pointer array");
  std::vector<void*> starts(count);
  std::vector<std::size_t> sizes(count);
  std::vector<BlockInfo> large;  // the large blocks: residency tracks them
  for (std::size_t i = 0; i < count; ++i) {
    absl::StatusOr<BlockInfo> b = BlockContaining(ptrs[i]);
    absl::Status st = b.status();
    if (b.ok() && arena_.IsDeviceMemory(b->role)) {
      st = absl::FailedPreconditionError(absl::StrCat(
          "role ", RoleName(b->role), " is plain device memory and cannot be prefetched"));
    }
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("PrefetchBlocks: pointer ", i, ": ", st.message()));
    }
    starts[i] = b->ptr;
    sizes[i] = b->bytes;
    if (IsLarge(b->ptr)) large.push_back(*b);
  }
  // Fetching: a budget's victims leave first; evicting: counted after.
  std::optional<FetchUnderWay> under_way;  // until the copies in are queued
  if (where == Location::kDevice && !large.empty()) {
    under_way.emplace(residency_, large);
    if (absl::Status st = CheckFetchable(starts, stream); !st.ok()) return st;
    if (absl::Status st = NoteMoved(large, where, stream); !st.ok()) return st;
  }
  // Blocks of roles that evict by staging move by copies; the rest migrate.
  std::vector<void*> moved = starts;
  // A fetch waits for the budget's evictions of its blocks under way in
  // other threads, then brings them back. An engine's eviction: the host
  // does not wait for the copies out.
  if (where == Location::kDevice) evicting_.WaitFor(starts);
  const Victims claimed = where == Location::kHost ? BeginEngineEviction(starts) : Victims{};
  absl::Status st = where == Location::kDevice ? StageIn(&moved, &sizes, stream)
                                               : StageOut(&moved, &sizes, stream, /*defer_drop=*/true);
  if (where == Location::kHost) EndEngineEviction(claimed, st.ok());
  if (st.ok()) st = PrefetchBatch(moved, sizes, where, stream);
  if (st.ok() && where == Location::kHost) {
    for (void* b : starts) NoteEvicted(b);
    if (!large.empty()) st = NoteMoved(large, where, stream);
  }
  // Once the fetched pages are in (StageIn): before, the give-back missed them.
  if (st.ok() && !large.empty() && where == Location::kDevice) GiveBackOverBudgets(stream);
  return st;
}

absl::StatusOr<Location> PoolCore::BlockLocation(const void* ptr) const {
  absl::StatusOr<BlockInfo> b = BlockContaining(ptr);
  if (!b.ok()) return b.status();
  return IsLarge(b->ptr) && residency_.IsEvicted(reinterpret_cast<std::uintptr_t>(b->ptr))
             ? Location::kHost
             : Location::kDevice;
}

RoleResidency PoolCore::GetResidency(Role role) const {
  RoleResidency r = residency_.Get(role);
  r.reserved_bytes = arena_.RoleReservedBytes(role);
  for (const BlockInfo& b : LiveBlocks()) {
    if (b.role == role) r.allocated_bytes += b.bytes;
  }
  return r;
}

std::vector<BlockInfo> PoolCore::LiveBlocks() const {
  std::vector<BlockInfo> out;
  slabs_.LiveBlocks(&out);
  arena_.LiveBlocks(&out);
  // Blocks waiting for their discard are free (their heap still has them live).
  if (!discards_.empty()) {
    std::erase_if(out, [&](const BlockInfo& b) {
      return discards_.Contains(reinterpret_cast<std::uintptr_t>(b.ptr));
    });
  }
  std::sort(out.begin(), out.end(),
            [](const BlockInfo& a, const BlockInfo& b) { return a.ptr < b.ptr; });
  return out;
}

}  // namespace umpool::internal
