// examples/paged_kv/engine.h: the demo engine's run: requests admitted,
// prefilled, decoded step by step and retired, under one of the modes of
// turns.h (all resident, paused, budget turns, page-faulting turns).
#ifndef UMPOOL_EXAMPLES_PAGED_KV_ENGINE_H_
#define UMPOOL_EXAMPLES_PAGED_KV_ENGINE_H_

#include <cuda_runtime_api.h>

#include "examples/paged_kv/report.h"
#include "examples/paged_kv/turns.h"
#include "umpool/umpool.hpp"

namespace paged_kv {

// `steps` decode steps of `n_requests` concurrent requests under `plan`,
// their KV blocks from `pool` (seeded by `seed`); every step's KV sums
// checked. The streams live as long as the pool may cache blocks freed on
// them (umpool::Pool's stream-lifetime rule): created once by the caller.
// The block tables, which the host writes, come from `table_pool` (managed
// memory): `pool` may be on the vmm backend, whose memory the host cannot
// touch. Environment: PAGED_KV_CHECK_RESIDENT=1, PAGED_KV_GROWTH_AFTER_JOBS=1
// (paged_kv_demo.cc). A failing pool or CUDA call exits (die.h).
Result Run(umpool::Pool& pool, umpool::Pool& table_pool, int steps, int n_requests,
           const Plan& plan, unsigned seed, cudaStream_t compute, cudaStream_t side,
           cudaStream_t evict);

}  // namespace paged_kv

#endif  // UMPOOL_EXAMPLES_PAGED_KV_ENGINE_H_
