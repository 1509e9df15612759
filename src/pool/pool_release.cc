// PoolCore: giving memory back (Trim, the out-of-memory retry, a lower cap)
// and forgetting a stream (ReleaseStream).
#include "absl/strings/str_cat.h"
#include "src/pool/pool_core.h"

namespace umpool::internal {

bool PoolCore::FlushCaches(bool others) {
  if (others) return caches_.DrainIdle();
  CacheUse tc = caches_.CallerCacheIfAny();
  if (!tc || tc->cached_bytes.Get() == 0) return false;
  tc->FlushAll();
  return true;
}

absl::Status PoolCore::ReleaseCached(bool unmap) {
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError(
        "cannot release cached memory during a CUDA graph capture (it would wait for events and "
        "call cudaFree); call Trim after EndCapture");
  }
  DrainDiscards();
  if (CacheUse tc = caches_.CallerCacheIfAny()) tc->FlushAll();
  caches_.DrainIdle();      // threads outside the pool now
  caches_.AskAllToFlush();  // the others flush at their next call
  absl::Status status;
  for (int h = 0; h < arena_.heaps(); ++h) slabs_.ReclaimEmptySlabs(h, /*wait=*/true, &status);
  if (unmap) status.Update(arena_.ReleaseFree());
  return status;
}

absl::Status PoolCore::Trim() {
  counters_.Bump(counters_.trims);
  (void)host_copies_.ReleaseEmpty();  // pinned chunks no evicted block uses
  return ReleaseCached(/*unmap=*/true);
}

absl::Status PoolCore::SetCapacity(std::size_t bytes) {
  if (bytes < kMapGranularity) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity of ", bytes, " bytes is below the 2 MiB minimum"));
  }
  if (bytes > MaxCapacity()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity of ", bytes, " bytes exceeds the ", MaxCapacity(),
        " bytes the pool was created with (the GPU's free memory); set "
        "allow_oversubscription to go beyond it"));
  }
  bool over = false;
  if (absl::Status st = arena_.SetCapacity(bytes, &over); !st.ok()) return st;
  return over ? ReleaseCached(/*unmap=*/true) : absl::OkStatus();
}

absl::Status PoolCore::ReleaseStream(Stream stream) {
  if (fencer_.capturing()) {
    return absl::FailedPreconditionError(
        "ReleaseStream during a CUDA graph capture (it waits for the stream's work)");
  }
  counters_.Bump(counters_.streams_released);
  DrainDiscards();  // discards on `stream` are issued while it is valid
  // Every block freed on `stream` so far, wherever it is (a thread cache, a
  // bin, a large space), was freed before this fence.
  absl::StatusOr<FenceRef> fence = fencer_.FenceFor(stream, fencer_.Stamp());
  if (!fence.ok()) return fence.status();
  if (absl::Status st = fencer_.Wait(**fence); !st.ok()) return st;
  fencer_.Forget(stream);
  const std::uint64_t epoch = caches_.AskAllToFlush();
  released_.Add(stream, epoch);
  if (CacheUse tc = caches_.CallerCacheIfAny()) {
    tc->FlushAll(/*unclaim=*/true);
    tc->epoch.store(epoch, std::memory_order_relaxed);
  }
  slabs_.ReleaseStream(stream);
  arena_.ReleaseStream(stream);
  recorded_.Forget(stream);
  released_.Prune(caches_.OldestEpoch());
  return absl::OkStatus();
}

}  // namespace umpool::internal
