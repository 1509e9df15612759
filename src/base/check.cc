#include "src/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace umpool::internal {

void CheckFailed(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "umpool: internal check failed at %s:%d: %s (%s)\n", file, line, cond,
               msg);
  std::fflush(stderr);
  std::abort();
}

}  // namespace umpool::internal
