// pairs.cc N BYTES: N cached pairs (Allocate + Deallocate) of BYTES on a host-backend pool
// (hotpath.sh runs it under callgrind).
#include <cstdio>
#include <cstdlib>
#include "umpool/pool.h"
using namespace umpool;
int main(int argc, char** argv) {
  long n = std::atol(argv[1]); std::size_t bytes = std::atol(argv[2]);
  PoolOptions o; o.backend = BackendKind::kHost;
  auto pool = Pool::Create(o);
  if (!pool.ok()) return 1;
  Stream s = nullptr;
  for (long i = 0; i < n; ++i) {
    auto p = (*pool)->Allocate(bytes, s);
    if (!p.ok() || !(*pool)->Deallocate(*p, s).ok()) return 2;
  }
  return 0;
}
