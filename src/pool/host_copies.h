// src/pool/host_copies.h: pinned host memory holding the contents of blocks
// evicted by staging (RolePolicy::evict_by = OffloadBy::kStaging).
//
// Eviction by staging copies a block into pinned memory and drops its GPU
// pages; a fetch refills the pages on the GPU and copies the block back. On
// the H200 that moves about 52 GB/s out and 47 GB/s in, where the driver's
// eviction (cudaMemPrefetchAsync to the host) moved 10-14 GB/s out
// (bench/results, docs/residency.md). The memory comes from the backend's
// staging allocator in chunks of at least kChunkBytes, cut best fit into
// slots (one per evicted block) that coalesce when given back; chunks are
// kept for the next evictions until the pool dies or Trim finds them empty.
// A slot a fetch copies out of is given back once those copies ran (an event
// recorded on the fetch's stream, checked at the next Take).
//
// Thread safety: every method takes the object's mutex.
#ifndef UMPOOL_SRC_POOL_HOST_COPIES_H_
#define UMPOOL_SRC_POOL_HOST_COPIES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "umpool/backend.h"

namespace umpool::internal {

class HostCopies {
 public:
  static constexpr std::size_t kChunkBytes = std::size_t{256} << 20;

  explicit HostCopies(Backend* backend) : backend_(backend) {}
  ~HostCopies();
  HostCopies(const HostCopies&) = delete;
  HostCopies& operator=(const HostCopies&) = delete;

  // A pinned slot of `bytes` (> 0). Errors: the backend's (Unimplemented:
  // it cannot pin; ResourceExhausted: the host could not pin more).
  absl::StatusOr<std::byte*> Take(std::size_t bytes);
  // Gives a slot back now (nothing queued reads it).
  void Give(std::byte* slot, std::size_t bytes);
  // Gives slots back once the work queued on `stream` so far has run.
  absl::Status GiveAfter(const std::vector<std::pair<std::byte*, std::size_t>>& slots,
                         Stream stream);
  // Frees the chunks no slot uses (waiting for pending gives). Returns the
  // bytes freed.
  std::size_t ReleaseEmpty();
  // Pins chunks until `bytes` are held (slots are then cut from them without
  // pinning). Host-blocking. Errors: the backend's, as Take's.
  absl::Status Reserve(std::size_t bytes);
  // Whether `a` and `b` lie in the same pinned chunk (one allocation: a copy
  // may run across them).
  bool InOneChunk(const std::byte* a, const std::byte* b) const;
  // Pinned bytes held / in slots.
  std::size_t held_bytes() const;
  std::size_t used_bytes() const;

 private:
  using FreeMap = std::map<std::byte*, std::size_t>;  // address -> bytes
  struct Chunk {
    std::byte* base;
    std::size_t bytes;
  };
  struct Pending {
    Event event;
    std::vector<std::pair<std::byte*, std::size_t>> slots;
  };
  // Gives back the slots of pending gives whose event completed (all of
  // them with `wait`).
  void ReapLocked(bool wait) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GiveLocked(std::byte* slot, std::size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pins a chunk of `bytes` and files it as one free slot (its entry).
  absl::StatusOr<FreeMap::iterator> AddChunkLocked(std::size_t bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a and b lie in one chunk.
  bool SameChunk(const std::byte* a, const std::byte* b) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Backend* const backend_;
  mutable Mutex mu_;
  std::vector<Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  FreeMap free_ ABSL_GUARDED_BY(mu_);
  std::vector<Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::size_t held_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_HOST_COPIES_H_
