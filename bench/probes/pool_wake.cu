// bench/probes/pool_wake.cu: why a pool's Wake can run far slower than the same steps in
// bench/probes/wake_overlap.cu. Weights allocated through umpool's C ABI (64 MiB blocks),
// then per cycle: (A) umpool_sleep + umpool_wake_up, timed; (B) umpool_sleep, the blocks
// prefetched to the GPU by hand (timed), umpool_wake_up (timed); (C) the raw steps on the
// pool's blocks: copy out to a pinned buffer, discard, refill, copy back (each timed).
// Not part of the build:
//   nvcc -O2 -std=c++17 -arch=sm_90 -Iinclude bench/probes/pool_wake.cu -L.gpu-stage/lib \
//        -lumpool -o probe && LD_LIBRARY_PATH=.gpu-stage/lib ./probe 4
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "umpool/umpool.h"

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)
#define UK(x) do { if ((x) != 0) { printf("%s: %s\n", #x, umpool_last_error()); exit(1); } } while (0)

int main(int argc, char** argv) {
  const size_t gib = argc > 1 ? atoi(argv[1]) : 4;
  const size_t block = size_t(64) << 20, n = gib << 30, count = n / block;
  CK(cudaFree(0));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::vector<void*> blocks(count);
  std::vector<size_t> sizes(count, block);
  for (auto& p : blocks) {
    UK(umpool_alloc(block, 0, s, /*weights*/ 1, &p));
    CK(cudaMemsetAsync(p, 0x5a, block, s));
  }
  CK(cudaStreamSynchronize(s));
  printf("blocks %zu x 64 MiB, first %p last %p\n", count, blocks[0], blocks[count - 1]);
  void* h = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(h, n, MADV_HUGEPAGE);
  CK(cudaHostRegister(h, n, cudaHostRegisterPortable));
  UK(umpool_reserve_staging(0, 1u << 1));
  cudaMemLocation gpu{cudaMemLocationTypeDevice, 0};
  auto timed = [&](auto&& step) {  // seconds of `step` to the end of its stream work
    const double t0 = now();
    step();
    CK(cudaStreamSynchronize(s));
    return now() - t0;
  };
  size_t first = 0;  // the batch calls' location index: every range to `gpu`
  for (int cycle = 0; cycle < 3; ++cycle) {
    double a_sleep = timed([&] {
      UK(umpool_sleep(0, 1u << 1, 0, s));
    });
    double a_wake = timed([&] {
      UK(umpool_wake_up(0, s));
    });

    UK(umpool_sleep(0, 1u << 1, 0, s));
    CK(cudaStreamSynchronize(s));
    double b_prefetch = timed([&] {
      CK(cudaMemPrefetchBatchAsync(blocks.data(), sizes.data(), count, &gpu, &first, 1, 0, s));
    });
    double b_wake = timed([&] {
      UK(umpool_wake_up(0, s));
    });

    char* hc = static_cast<char*>(h);
    double c_out = timed([&] {
      for (size_t i = 0; i < count; ++i) CK(cudaMemcpyAsync(hc + i * block, blocks[i], block, cudaMemcpyDefault, s));
    });
    double c_discard = timed([&] {
      CK(cudaMemDiscardBatchAsync(blocks.data(), sizes.data(), count, 0, s));
    });
    double c_refill = timed([&] {
      CK(cudaMemDiscardAndPrefetchBatchAsync(blocks.data(), sizes.data(), count, &gpu, &first, 1, 0, s));
    });
    double c_in = timed([&] {
      for (size_t i = 0; i < count; ++i) CK(cudaMemcpyAsync(blocks[i], hc + i * block, block, cudaMemcpyDefault, s));
    });
    // D: the raw steps as the pool batches them: one range for all blocks
    // (they are adjacent), one copy each way.
    void* all = blocks[0];
    size_t all_bytes = n;
    double d_sleep = timed([&] {
      CK(cudaMemcpyAsync(hc, all, n, cudaMemcpyDefault, s));
      CK(cudaMemDiscardBatchAsync(&all, &all_bytes, 1, 0, s));
    });
    double d_wake = timed([&] {
      CK(cudaMemDiscardAndPrefetchBatchAsync(&all, &all_bytes, 1, &gpu, &first, 1, 0, s));
      CK(cudaMemcpyAsync(all, hc, n, cudaMemcpyDefault, s));
    });
    // E: as D, 64 ranges, one copy each way.
    double e_sleep = timed([&] {
      CK(cudaMemcpyAsync(hc, all, n, cudaMemcpyDefault, s));
      CK(cudaMemDiscardBatchAsync(blocks.data(), sizes.data(), count, 0, s));
    });
    double e_wake = timed([&] {
      CK(cudaMemDiscardAndPrefetchBatchAsync(blocks.data(), sizes.data(), count, &gpu, &first, 1, 0, s));
      CK(cudaMemcpyAsync(all, hc, n, cudaMemcpyDefault, s));
    });
    printf("cycle %d: D one range: sleep %.3f wake %.3f | E 64 ranges, one copy: sleep %.3f wake %.3f\n",
           cycle, d_sleep, d_wake, e_sleep, e_wake);
    // F, G, H: as D, with the host waiting for the refill before the copy is
    // queued: on an event, on the stream, on the device.
    double fgh[3];
    cudaEvent_t ev;
    CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    for (int k = 0; k < 3; ++k) {
      CK(cudaMemcpyAsync(hc, all, n, cudaMemcpyDefault, s));
      CK(cudaMemDiscardBatchAsync(&all, &all_bytes, 1, 0, s));
      CK(cudaStreamSynchronize(s));
      fgh[k] = timed([&] {
        CK(cudaMemDiscardAndPrefetchBatchAsync(&all, &all_bytes, 1, &gpu, &first, 1, 0, s));
        if (k == 0) { CK(cudaEventRecord(ev, s)); CK(cudaEventSynchronize(ev)); }
        if (k == 1) CK(cudaStreamSynchronize(s));
        if (k == 2) CK(cudaDeviceSynchronize());
        CK(cudaMemcpyAsync(all, hc, n, cudaMemcpyDefault, s));
      });
    }
    CK(cudaEventDestroy(ev));
    printf("cycle %d: refill, host waits (F event %.3f | G stream %.3f | H device %.3f), copy\n",
           cycle, fgh[0], fgh[1], fgh[2]);
    printf("cycle %d: A sleep %.3f wake %.3f | B prefetch %.3f wake %.3f | C out %.3f discard %.3f refill %.3f in %.3f\n",
           cycle, a_sleep, a_wake, b_prefetch, b_wake, c_out, c_discard, c_refill, c_in);
    fflush(stdout);
  }
  CK(cudaHostUnregister(h));
  return 0;
}
