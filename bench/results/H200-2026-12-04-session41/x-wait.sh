#!/bin/bash
# x-wait.sh ROUNDS: the GPU suites (tools/gpu-check run, tests step), then the offload program
# (bench/torch/multistream.py, one round per process) with umpool_wait (reuse_pending_blocks:0)
# at three builds in turn, ROUNDS times: this session's code (.gpu-stage: early fences in place),
# the fence fix (build-stage-fix: the lib/ of a stage of a94cf6e) and the commit before it
# (build-stage-base: 521ebc9). Native and umpool's defaults beside them in each process.
# SUITES=0 skips the suites. Each run's table is $OUT/wait/<build>_r<round>.md (its other files
# stay in a scratch folder: the device returns a few files only).
set -u
o=$OUT/wait; mkdir -p "$o"; w=$(mktemp -d)
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
if [ "${SUITES:-1}" = 1 ]; then
  UMPOOL_GPU_STEPS=tests tools/gpu-check run "$w/suites" > "$w/suites.log" 2>&1
  echo "suites rc=$?"; cp "$w/suites/summary.txt" "$OUT/suites_summary.txt"
  grep -c "failed=0" "$OUT/suites_summary.txt"; grep -v "failed=0" "$OUT/suites_summary.txt"
fi
for r in $(seq 1 "${1:-2}"); do for v in new fix base; do
  case $v in new) st=.gpu-stage;; fix) st=build-stage-fix;; base) st=build-stage-base;; esac
  LD_LIBRARY_PATH=$PWD/$st/lib UMPOOL_LIBRARY=$PWD/$st/lib/libumpool.so timeout 200 \
    python3 bench/torch/multistream.py --out "$w/${v}_r$r" --rounds 1 \
    --allocators native,umpool,umpool_wait > "$w/${v}_r$r.log" 2>&1
  echo "$v r$r rc=$?"; tail -3 "$w/${v}_r$r.log" | grep -i error
  cp "$w/${v}_r$r/multistream.md" "$o/${v}_r$r.md"
  grep -E '^\| (native|umpool)' "$o/${v}_r$r.md" | awk -F'|' '{print $2, $5, $7, $11}'
done; done
