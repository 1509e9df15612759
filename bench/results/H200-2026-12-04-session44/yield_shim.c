// yield_shim.c: an LD_PRELOAD library for race hunts. Around every pthread_mutex_lock and
// after every unlock it yields the CPU (1 in 16) or sleeps 20-220 us (1 in 512), so threads
// interleave at the pool's lock boundaries in more ways than an unloaded run gives. Prints the
// lock count at exit. Build: gcc -O2 -shared -fPIC -o yield_shim.so yield_shim.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
static unsigned long long calls;
static int (*real_lock)(pthread_mutex_t*);
static int (*real_unlock)(pthread_mutex_t*);
static __thread unsigned long long st;
static __thread int busy;
static void perturb(void) {
  if (busy) return;
  if (st == 0) st = (unsigned long long)pthread_self() ^ (unsigned long long)time(NULL) * 2654435761ull ^ getpid();
  st ^= st << 13; st ^= st >> 7; st ^= st << 17;
  unsigned r = (unsigned)(st % 1024);
  if (r < 64) sched_yield();
  else if (r < 66) { busy = 1; usleep(20 + st % 200); busy = 0; }
}
int pthread_mutex_lock(pthread_mutex_t* m) {
  if (!real_lock) { busy = 1; real_lock = dlsym(RTLD_NEXT, "pthread_mutex_lock"); busy = 0; }
  __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
  perturb();
  return real_lock(m);
}
int pthread_mutex_unlock(pthread_mutex_t* m) {
  if (!real_unlock) { busy = 1; real_unlock = dlsym(RTLD_NEXT, "pthread_mutex_unlock"); busy = 0; }
  int rc = real_unlock(m);
  perturb();
  return rc;
}
__attribute__((destructor)) static void report(void) { char b[64]; int n = snprintf(b, sizeof b, "shim: %llu locks\n", calls); if (write(2, b, n) < 0) {} }
