#include "src/pool/trace_recorder.h"

#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace umpool::internal {

namespace {
constexpr std::size_t kBufferBytes = std::size_t{1} << 20;
}  // namespace

absl::StatusOr<std::unique_ptr<TraceRecorder>> TraceRecorder::Open(const std::string& path,
                                                                  int device) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace_path: cannot open '", path, "' for writing: ", std::strerror(errno)));
  }
  return std::unique_ptr<TraceRecorder>(new TraceRecorder(f, device));
}

TraceRecorder::TraceRecorder(std::FILE* f, int device)
    : device_(device), start_(std::chrono::steady_clock::now()), file_(f),
      buffer_(new char[kBufferBytes]) {
  std::setvbuf(f, buffer_.get(), _IOFBF, kBufferBytes);
  std::fputs("# umpool trace v1\nop,id,bytes,device,stream,role,t_ns\n", f);
  streams_[kDefaultStream] = 0;
}

TraceRecorder::~TraceRecorder() {
  MutexLock lock(&mu_);
  std::fclose(file_);
}

std::uint64_t TraceRecorder::Now() const {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_)
          .count());
}

int TraceRecorder::StreamId(Stream s) {
  auto [it, fresh] = streams_.try_emplace(s, static_cast<int>(streams_.size()));
  return it->second;
}

void TraceRecorder::Allocated(const void* ptr, std::size_t bytes, Stream stream, Role role) {
  const std::uint64_t t = Now();
  MutexLock lock(&mu_);
  const std::uint64_t id = next_id_++;
  live_[ptr] = id;
  std::fprintf(file_, "a,%" PRIu64 ",%zu,%d,%d,%s,%" PRIu64 "\n", id, bytes, device_,
               StreamId(stream), std::string(RoleName(role)).c_str(), t);
}

std::uint64_t TraceRecorder::Freeing(const void* ptr, Stream stream) {
  const std::uint64_t t = Now();
  MutexLock lock(&mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return 0;
  const std::uint64_t id = it->second;
  live_.erase(it);
  std::fprintf(file_, "f,%" PRIu64 ",0,%d,%d,,%" PRIu64 "\n", id, device_, StreamId(stream), t);
  return id;
}

void TraceRecorder::Unfree(const void* ptr, std::uint64_t id) {
  if (id == 0) return;
  MutexLock lock(&mu_);
  // The free line is already written (rare: an event error after the block
  // was found live); a comment says so, and later records keep the id.
  live_[ptr] = id;
  std::fprintf(file_, "# free of id %" PRIu64 " failed; it stays live\n", id);
}

void TraceRecorder::RecordedStream(const void* ptr, Stream stream) {
  const std::uint64_t t = Now();
  MutexLock lock(&mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return;
  std::fprintf(file_, "r,%" PRIu64 ",0,%d,%d,,%" PRIu64 "\n", it->second, device_,
               StreamId(stream), t);
}

void TraceRecorder::Flush() {
  MutexLock lock(&mu_);
  std::fflush(file_);
}

}  // namespace umpool::internal
