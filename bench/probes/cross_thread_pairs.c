// Allocation and free of 1000 mixed sizes (60% below 1 MiB, 35% of 1-17 MiB,
// 5% of 64 MiB) through the C ABI, freed by the allocating thread or by
// another one (as PyTorch's autograd thread frees what the main thread
// allocated). Prints nanoseconds per alloc+free. Host backend on a 2-core VM,
// tenth session: same thread 221-371 ns, another thread 430-695 ns.
//
//   cc -O2 -Iinclude bench/probes/cross_thread_pairs.c -Lbuild -lumpool -lpthread -o xthread
//   UMPOOL_CONF=backend:host LD_LIBRARY_PATH=build ./xthread 0|1 [ROUNDS]
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "umpool/umpool.h"
#define N 1000
static void* blocks[N];
static size_t sizes[N];
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void alloc_all(void){for(int i=0;i<N;i++) if(umpool_alloc(sizes[i],0,0,0,&blocks[i])) {printf("fail %s\n",umpool_last_error());exit(1);}}
static void free_all(void){for(int i=0;i<N;i++) umpool_free_block(blocks[i]);}
static void* freer(void* a){(void)a; free_all(); return 0;}
int main(int argc,char**argv){
  int cross = argc>1 && atoi(argv[1]);
  srand(1);
  for(int i=0;i<N;i++){ int r=rand()%100; sizes[i]= r<60? (size_t)(512+rand()%(1<<20)) : r<95 ? (size_t)((1<<20)+rand()%(16<<20)) : (size_t)(64<<20); }
  alloc_all(); free_all();
  double t0=now(); int rounds=argc>2?atoi(argv[2]):200;
  for(int k=0;k<rounds;k++){
    alloc_all();
    if(cross){pthread_t t;pthread_create(&t,0,freer,0);pthread_join(t,0);} else free_all();
  }
  double t=now()-t0;
  printf("%s: %.1f ns per alloc+free\n", cross?"cross-thread":"same-thread", t/rounds/N*1e9);
  return 0;
}
