// src/base/mutex.h: the mutex every umpool layer uses.
//
// A std::mutex (pthread underneath, so ThreadSanitizer understands it even
// though Debian's Abseil is not instrumented) wrapped in Abseil's
// thread-safety annotations, so clang's -Wthread-safety checks every
// ABSL_GUARDED_BY member as it would for absl::Mutex.
#ifndef UMPOOL_SRC_BASE_MUTEX_H_
#define UMPOOL_SRC_BASE_MUTEX_H_

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace umpool::internal {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace umpool::internal

#endif  // UMPOOL_SRC_BASE_MUTEX_H_
