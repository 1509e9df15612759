// Allocates and frees through an installed umpool on the host backend.
#include <cstdio>

#include "umpool/umpool.hpp"

int main() {
  umpool::PoolOptions options;
  options.backend = umpool::BackendKind::kHost;
  auto pool = umpool::Pool::Create(options);
  if (!pool.ok()) {
    std::fprintf(stderr, "create: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  auto p = (*pool)->Allocate(1 << 20);
  if (!p.ok() || !(*pool)->Deallocate(*p).ok()) return 1;
  std::printf("consumer OK: umpool %s, %s\n", UMPOOL_VERSION_STRING, (*pool)->Describe().c_str());
  return 0;
}
