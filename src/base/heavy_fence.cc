#include "src/base/heavy_fence.h"

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace umpool::internal {
namespace {

bool Register() {
#if defined(__linux__) && defined(SYS_membarrier)
  const long supported = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

}  // namespace

bool HeavyFenceReady() {
  static const bool ready = Register();
  return ready;
}

bool HeavyFence() {
#if defined(__linux__) && defined(SYS_membarrier)
  return HeavyFenceReady() &&
         syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

}  // namespace umpool::internal
