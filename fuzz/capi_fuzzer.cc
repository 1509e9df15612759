// libFuzzer target: random operation sequences through the C ABI (host
// backend). Whatever the sequence — absurd sizes, bad devices, double frees,
// interior and foreign pointers, record_stream, empty_cache, memory fraction —
// nothing crashes, live blocks never overlap, their contents survive, and the
// stats agree with what is live.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>

#include "umpool/umpool.h"

namespace {

struct Live {
  std::size_t size;
  std::size_t usable;
  std::uint8_t fill;
};

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Check(umpool_configure("backend:host,capacity:256MiB,stats_publish_bytes:0") == UMPOOL_OK);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::map<std::uintptr_t, Live> live;
  std::size_t i = 0;
  auto next = [&]() -> std::uint64_t {
    std::uint64_t v = 0;
    for (int k = 0; k < 8 && i < size; ++k) v = (v << 8) | data[i++];
    return v;
  };
  auto stream = [&](std::uint64_t v) { return reinterpret_cast<umpool_stream_t>(v % 4); };
  while (i < size) {
    const std::uint8_t op = data[i++] % 10;
    const std::uint64_t a = next();
    switch (op) {
      case 0:
      case 1:
      case 2: {  // allocate: mostly sane sizes, sometimes absurd ones
        std::size_t n = (op == 2) ? static_cast<std::size_t>(a) : static_cast<std::size_t>(a % (3u << 20));
        void* p = nullptr;
        try {
          const int device = (a >> 56) == 0xff ? static_cast<int>(a >> 48) % 5 - 1 : 0;  // -1..3
          p = (a & 1) ? umpool_malloc(n, device, stream(a >> 8))
                      : umpool_pool_malloc_kv(n, device, stream(a >> 8));
        } catch (const std::runtime_error&) {
          p = nullptr;
        }
        if (p == nullptr) break;
        const auto q = reinterpret_cast<std::uintptr_t>(p);
        Check(q % 256 == 0);
        const std::size_t usable = umpool_block_size(p);
        Check(usable >= n);
        auto it = live.upper_bound(q);
        Check(it == live.end() || it->first >= q + usable);
        Check(it == live.begin() || std::prev(it)->first + std::prev(it)->second.usable <= q);
        const auto fill = static_cast<std::uint8_t>(a >> 16);
        std::memset(p, fill, n < 64 ? n : 64);
        live[q] = Live{n, usable, fill};
        break;
      }
      case 3:
      case 4: {  // free a live block (checking its contents) on some stream
        if (live.empty()) break;
        auto it = live.begin();
        std::advance(it, static_cast<long>(a % live.size()));
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(it->first);
        for (std::size_t k = 0; k < (it->second.size < 64 ? it->second.size : 64); ++k) {
          Check(bytes[k] == it->second.fill);
        }
        umpool_free(reinterpret_cast<void*>(it->first), it->second.size, 0, stream(a >> 8));
        live.erase(it);
        break;
      }
      case 5: {  // bad frees: foreign, interior, double; none may change anything
        // The fuzzer learns real addresses from the pool's comparisons: `a`
        // may be a live block's start, whose free is no bad free.
        if (live.count(static_cast<std::uintptr_t>(a)) == 0) {
          umpool_free(reinterpret_cast<void*>(a), 0, static_cast<int>(a >> 61), stream(a));
        }
        if (!live.empty()) {
          const auto& [q, l] = *live.begin();
          if (l.usable > 256) umpool_free(reinterpret_cast<void*>(q + 256), 0, 0, stream(a));
        }
        break;
      }
      case 6:
        if (!live.empty()) umpool_record_stream(reinterpret_cast<void*>(live.rbegin()->first), stream(a));
        umpool_record_stream(reinterpret_cast<void*>(a), stream(a));
        break;
      case 7:
        umpool_empty_cache();
        break;
      case 8:
        umpool_set_memory_fraction(static_cast<double>(a % 1200) / 1000.0, static_cast<int>(a >> 62));
        break;
      case 9: {
        umpool_stats s;
        Check(umpool_get_stats(0, &s) == UMPOOL_OK);
        std::int64_t bytes = 0;
        for (const auto& [q, l] : live) bytes += static_cast<std::int64_t>(l.usable);
        Check(s.allocated_bytes_current == bytes);
        Check(s.reserved_bytes_current >= s.allocated_bytes_current);
        break;
      }
    }
  }
  for (const auto& [q, l] : live) umpool_free(reinterpret_cast<void*>(q), l.size, 0, nullptr);
  umpool_set_memory_fraction(1.0, 0);
  return 0;
}
