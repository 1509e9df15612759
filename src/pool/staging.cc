#include "src/pool/staging.h"

namespace umpool::internal {

void AddToRuns(std::uintptr_t ptr, std::size_t offset, std::size_t bytes, std::uintptr_t span,
               std::vector<CopyRun>* runs) {
  if (bytes == 0) return;
  if (!runs->empty()) {
    CopyRun& last = runs->back();
    if (last.span == span && last.ptr + last.bytes == ptr && last.offset + last.bytes == offset) {
      last.bytes += bytes;
      return;
    }
  }
  runs->push_back(CopyRun{ptr, offset, bytes, span});
}

Staging::~Staging() {
  (void)Release();
  if (last_use_ != nullptr) backend_->DestroyEvent(last_use_);
}

absl::StatusOr<std::byte*> Staging::Reserve(std::size_t bytes, Stream stream) {
  if (bytes > bytes_) {
    if (absl::Status st = Release(); !st.ok()) return st;
    // Whole 2 MiB: a pool that grows a little keeps its buffer.
    const std::size_t want = (bytes + kMapGranularity - 1) & ~(kMapGranularity - 1);
    absl::StatusOr<void*> p = backend_->AllocateStaging(want);
    if (!p.ok()) return p.status();
    ptr_ = static_cast<std::byte*>(*p);
    bytes_ = want;
    ++generation_;
  }
  if (in_use_) {
    if (absl::Status st = backend_->StreamWaitEvent(stream, last_use_); !st.ok()) return st;
  }
  return ptr_;
}

absl::Status Staging::CopyIn(const std::vector<CopyRun>& runs, Stream stream) {
  for (const CopyRun& r : runs) {
    absl::Status st = backend_->Copy(ptr_ + r.offset, reinterpret_cast<const void*>(r.ptr),
                                     r.bytes, stream);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Staging::CopyOut(const std::vector<CopyRun>& runs, Stream stream) {
  for (const CopyRun& r : runs) {
    absl::Status st = backend_->CopyBack(reinterpret_cast<void*>(r.ptr), ptr_ + r.offset,
                                         r.bytes, stream);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Staging::NoteUse(Stream stream) {
  if (last_use_ == nullptr) {
    absl::StatusOr<Event> e = backend_->CreateEvent();
    if (!e.ok()) return e.status();
    last_use_ = *e;
  }
  if (absl::Status st = backend_->RecordEvent(last_use_, stream); !st.ok()) return st;
  in_use_ = true;
  return absl::OkStatus();
}

absl::Status Staging::WaitForCopies(Stream stream) {
  if (absl::Status st = NoteUse(stream); !st.ok()) return st;
  return WaitLastUse();
}

absl::Status Staging::WaitLastUse() {
  if (!in_use_) return absl::OkStatus();
  if (absl::Status st = backend_->SynchronizeEvent(last_use_); !st.ok()) return st;
  in_use_ = false;
  return absl::OkStatus();
}

absl::Status Staging::Release() {
  if (ptr_ == nullptr) return absl::OkStatus();
  if (absl::Status st = WaitLastUse(); !st.ok()) return st;
  backend_->FreeStaging(ptr_, bytes_);
  ptr_ = nullptr;
  bytes_ = 0;
  ++generation_;
  return absl::OkStatus();
}

}  // namespace umpool::internal
