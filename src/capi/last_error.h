// src/capi/last_error.h: how the C ABI reports errors.
//
// Every exported function returns a code or NULL and records the text in the
// calling thread's last error; the first failure of each kind (out of
// memory, other) is also logged once to stderr. Guard() runs an exported
// function's body so that no C++ exception ever crosses the extern "C"
// boundary (invariant 6): one becomes UMPOOL_ERROR_INTERNAL with its text.
#ifndef UMPOOL_SRC_CAPI_LAST_ERROR_H_
#define UMPOOL_SRC_CAPI_LAST_ERROR_H_

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "umpool/umpool.h"

namespace umpool::capi {

umpool_status CodeOf(const absl::Status& st);
// Records `st` (not OK) as the thread's last error, logs the first of its
// kind once, and returns its code.
int Fail(const absl::Status& st);
// Records without logging (configuration errors the caller reports itself).
int Record(const absl::Status& st);
// UMPOOL_OK for OK, else Fail(st).
inline int Done(const absl::Status& st) { return st.ok() ? UMPOOL_OK : Fail(st); }
const char* LastError();
int LastErrorCode();
void ClearLastError();

// Reports the exception being handled (called inside a catch) as
// UMPOOL_ERROR_INTERNAL "where: what"; if even recording it fails (no memory
// for the text), only the code is returned.
int FailCurrentException(const char* where) noexcept;

// Runs fn (returning an int code); an exception becomes UMPOOL_ERROR_INTERNAL.
template <class F>
int Guard(const char* where, F&& fn) noexcept {
  try {
    return fn();
  } catch (...) {
    return FailCurrentException(where);
  }
}
// The same for functions that return a value: `fallback` on an exception.
template <class T, class F>
T GuardValue(const char* where, T fallback, F&& fn) noexcept {
  try {
    return fn();
  } catch (...) {
    (void)FailCurrentException(where);
  }
  return fallback;
}

}  // namespace umpool::capi

#endif  // UMPOOL_SRC_CAPI_LAST_ERROR_H_
