#include "src/capi/last_error.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace umpool::capi {
namespace {

thread_local std::string tls_text;
thread_local int tls_code = UMPOOL_OK;
std::atomic<bool> logged_oom{false}, logged_other{false};

}  // namespace

umpool_status CodeOf(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kOk: return UMPOOL_OK;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return UMPOOL_ERROR_INVALID_ARGUMENT;
    case absl::StatusCode::kResourceExhausted: return UMPOOL_ERROR_OUT_OF_MEMORY;
    case absl::StatusCode::kFailedPrecondition: return UMPOOL_ERROR_FAILED_PRECONDITION;
    case absl::StatusCode::kUnavailable: return UMPOOL_ERROR_UNAVAILABLE;
    default: return UMPOOL_ERROR_INTERNAL;
  }
}

int Record(const absl::Status& st) {
  tls_text = std::string(st.message());
  tls_code = CodeOf(st);
  return tls_code;
}

int Fail(const absl::Status& st) {
  const int code = Record(st);
  std::atomic<bool>& logged = absl::IsResourceExhausted(st) ? logged_oom : logged_other;
  if (!logged.exchange(true)) {
    const char* prefix = absl::StartsWith(tls_text, "umpool") ? "" : "umpool: ";
    std::fprintf(stderr, "%s%s (further errors of this kind are not logged; see "
                 "umpool_last_error)\n", prefix, tls_text.c_str());
  }
  return code;
}

int FailCurrentException(const char* where) noexcept {
  try {
    try {
      throw;
    } catch (const std::exception& e) {
      return Fail(absl::InternalError(absl::StrCat(where, ": ", e.what())));
    } catch (...) {
      return Fail(absl::InternalError(absl::StrCat(where, ": unknown exception")));
    }
  } catch (...) {
    tls_code = UMPOOL_ERROR_INTERNAL;
    return UMPOOL_ERROR_INTERNAL;
  }
}

const char* LastError() { return tls_text.c_str(); }
int LastErrorCode() { return tls_code; }
void ClearLastError() {
  tls_text.clear();
  tls_code = UMPOOL_OK;
}

}  // namespace umpool::capi
