#include "src/pool/trace_recorder.h"

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace umpool::internal {

namespace {
constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

// The calling thread's number in traces: threads are numbered 0, 1, ... in
// the order they first reach any recorder of the process (a replay runs each
// op on its thread: PyTorch frees a forward pass's blocks on its autograd
// thread, whose thread cache then holds them).
int ThreadNumber() {
  static std::atomic<int> next{0};
  thread_local const int number = next.fetch_add(1, std::memory_order_relaxed);
  return number;
}
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
  std::fputs("# umpool trace v1\nop,id,bytes,device,stream,role,t_ns,thread\n", f);
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
  const int thread = ThreadNumber();
  MutexLock lock(&mu_);
  const std::uint64_t id = next_id_++;
  live_[ptr] = id;
  std::fprintf(file_, "a,%" PRIu64 ",%zu,%d,%d,%s,%" PRIu64 ",%d\n", id, bytes, device_,
               StreamId(stream), std::string(RoleName(role)).c_str(), t, thread);
}

std::uint64_t TraceRecorder::Freeing(const void* ptr, Stream stream) {
  const std::uint64_t t = Now();
  const int thread = ThreadNumber();
  MutexLock lock(&mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return 0;
  const std::uint64_t id = it->second;
  live_.erase(it);
  std::fprintf(file_, "f,%" PRIu64 ",0,%d,%d,,%" PRIu64 ",%d\n", id, device_, StreamId(stream), t,
               thread);
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
  const int thread = ThreadNumber();
  MutexLock lock(&mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return;
  std::fprintf(file_, "r,%" PRIu64 ",0,%d,%d,,%" PRIu64 ",%d\n", it->second, device_,
               StreamId(stream), t, thread);
}

void TraceRecorder::Flush() {
  MutexLock lock(&mu_);
  std::fflush(file_);
}

}  // namespace umpool::internal
