// src/pool/staging.h: the pinned host buffer Pool::Sleep offloads through,
// and the copy runs that fill and empty it.
//
// Offloading 16 GiB of weights by eviction (cudaMemPrefetchAsync to the host)
// ran at about 10 GB/s on the H200; a copy engine between GPU memory and
// pinned host memory runs at about 55 GB/s each way. So Sleep copies live
// blocks into this buffer and discards their pages; Wake repopulates the pages
// on the GPU and copies back. Pinning host memory is slow (it is paid once:
// the buffer is kept for the next Sleep until the pool dies or
// ReleaseStaging), so the buffer only grows.
//
// Ordering: copies out of the buffer (Wake) are recorded by an event; the
// next Reserve orders its stream after it, and Release waits for it.
// Thread safety: none; the pool holds sleep_mu_ around every call.
#ifndef UMPOOL_SRC_POOL_STAGING_H_
#define UMPOOL_SRC_POOL_STAGING_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "umpool/backend.h"

namespace umpool::internal {

// One contiguous copy: `bytes` at `ptr` <-> staging + `offset`, inside one
// span `span` (a copy may not cross backend allocations: cudaMemcpy refuses
// a range over two of them even where their addresses touch).
struct CopyRun {
  std::uintptr_t ptr = 0;
  std::size_t offset = 0;
  std::size_t bytes = 0;
  std::uintptr_t span = 0;
};

// Appends [ptr, ptr + bytes) <-> staging + offset to `runs`, extending the
// last run when both sides continue it in the same span (adjacent blocks:
// one copy).
void AddToRuns(std::uintptr_t ptr, std::size_t offset, std::size_t bytes, std::uintptr_t span,
               std::vector<CopyRun>* runs);

class Staging {
 public:
  explicit Staging(Backend* backend) : backend_(backend) {}
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  // A buffer of at least `bytes`, usable by work on `stream`: grown (the
  // old one freed first) when smaller, and `stream` ordered after the last
  // copies out of it. Errors: the backend's Unimplemented or
  // ResourceExhausted (no buffer is held then; the caller evicts instead).
  absl::StatusOr<std::byte*> Reserve(std::size_t bytes, Stream stream);
  // Copies `runs` from memory into the buffer (CopyIn) or back (CopyOut).
  absl::Status CopyIn(const std::vector<CopyRun>& runs, Stream stream);
  absl::Status CopyOut(const std::vector<CopyRun>& runs, Stream stream);
  // Records that every copy out of the buffer so far is ordered before
  // work queued later on `stream` (the next Reserve waits for it).
  absl::Status NoteUse(Stream stream);
  // Blocks the host until every copy queued on `stream` so far has run.
  absl::Status WaitForCopies(Stream stream);
  // Waits for the buffer's last copies and frees it. Idempotent.
  absl::Status Release();
  std::size_t bytes() const { return bytes_; }
  // Changes whenever the buffer is replaced or freed (its contents lost).
  std::uint64_t generation() const { return generation_; }

 private:
  // Waits for the copies NoteUse last recorded, if not yet waited for.
  absl::Status WaitLastUse();

  Backend* const backend_;
  std::byte* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Event last_use_ = nullptr;  // recorded by NoteUse
  bool in_use_ = false;       // last_use_ was recorded and not yet waited for
  std::uint64_t generation_ = 0;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_STAGING_H_
