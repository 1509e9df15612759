// src/pool/trace_recorder.h: writes every allocation, free and record-stream
// a pool serves to a trace file (format: docs/trace.md).
//
// Enabled by PoolOptions::trace_path (UMPOOL_CONF key `trace`). Off, it costs
// the pool one predictable branch per call. On, every call takes the
// recorder's mutex and formats one CSV line into a 1 MiB stdio buffer.
//
// Ordering: a free is written before the block is handed back, so the next
// allocation of the same address (possibly on another thread) is always
// written after it, and replaying the file in order never has two live
// records for one address.
//
// Thread safety: every method may be called concurrently.
#ifndef UMPOOL_SRC_POOL_TRACE_RECORDER_H_
#define UMPOOL_SRC_POOL_TRACE_RECORDER_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "src/base/mutex.h"
#include "umpool/types.h"

namespace umpool::internal {

class TraceRecorder {
 public:
  // Creates (truncates) `path` and writes the header. InvalidArgument naming
  // the path and the OS error if it cannot be opened.
  static absl::StatusOr<std::unique_ptr<TraceRecorder>> Open(const std::string& path, int device);
  ~TraceRecorder();  // flushes and closes

  void Allocated(const void* ptr, std::size_t bytes, Stream stream, Role role);
  // Before the free is performed. Unknown pointers (bad input) are not written.
  // Returns the trace id, or 0 if the pointer is unknown.
  std::uint64_t Freeing(const void* ptr, Stream stream);
  // The free failed after all: the block stays live under its id.
  void Unfree(const void* ptr, std::uint64_t id);
  void RecordedStream(const void* ptr, Stream stream);
  void Flush();

 private:
  TraceRecorder(std::FILE* f, int device);
  std::uint64_t Now() const;
  int StreamId(Stream s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int device_;
  const std::chrono::steady_clock::time_point start_;
  Mutex mu_;
  std::FILE* file_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<char[]> buffer_;
  std::uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<const void*, std::uint64_t> live_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Stream, int> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_POOL_TRACE_RECORDER_H_
