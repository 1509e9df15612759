// src/base/check.h: umpool's own assertion macros (Abseil 20220623 has no
// absl/log). Two tiers, as in tcmalloc:
//   UMPOOL_CHECK  - always on; guards memory safety of the pool's own state.
//                   A failure means umpool itself is broken (never user input:
//                   bad input is reported as a Status), so it aborts.
//   UMPOOL_DCHECK - debug builds only (NDEBUG unset); expensive checks.
#ifndef UMPOOL_SRC_POOL_CHECK_H_
#define UMPOOL_SRC_POOL_CHECK_H_

#include "absl/base/optimization.h"

namespace umpool::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const char* msg);
}  // namespace umpool::internal

#define UMPOOL_CHECK(cond, msg)                                                 \
  do {                                                                          \
    if (ABSL_PREDICT_FALSE(!(cond)))                                            \
      ::umpool::internal::CheckFailed(__FILE__, __LINE__, #cond, (msg));        \
  } while (0)

#ifdef NDEBUG
#define UMPOOL_DCHECK(cond, msg) \
  do {                           \
  } while (0)
#else
#define UMPOOL_DCHECK(cond, msg) UMPOOL_CHECK(cond, msg)
#endif

#endif  // UMPOOL_SRC_POOL_CHECK_H_
