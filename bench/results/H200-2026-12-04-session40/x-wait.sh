#!/bin/bash
# x-wait.sh: the GPU suites (tools/gpu-check run, tests step), then the offload program (bench/torch/multistream.py, one round per process) with
# umpool_wait (reuse_pending_blocks:0) at this session's code (.gpu-stage) and at the commit
# before the fence fix (build-stage-base, 521ebc9), alternating, twice; native and umpool's
# defaults beside them in each process set. Results under $OUT/wait/<build>_r<round>.
set -u
o=$OUT/wait; mkdir -p "$o"
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
UMPOOL_GPU_STEPS=tests tools/gpu-check run "$OUT/suites" > "$OUT/suites.log" 2>&1
echo "suites rc=$?"; grep -c "failed=0" "$OUT/suites/summary.txt"; grep -v "failed=0" "$OUT/suites/summary.txt"
for r in 1 2; do for v in new base; do
  case $v in new) st=.gpu-stage;; base) st=build-stage-base;; esac
  LD_LIBRARY_PATH=$PWD/$st/lib UMPOOL_LIBRARY=$PWD/$st/lib/libumpool.so timeout 200 \
    python3 bench/torch/multistream.py --out "$o/${v}_r$r" --rounds 1 \
    --allocators native,umpool,umpool_wait > "$o/${v}_r$r.log" 2>&1
  echo "$v r$r rc=$?"
  grep -E '^\| (native|umpool)' "$o/${v}_r$r/multistream.md" | awk -F'|' '{print $2, $5, $7, $11}'
done; done
