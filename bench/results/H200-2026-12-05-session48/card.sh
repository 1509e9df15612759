#!/bin/bash
# card.sh STEP...: the forty-eighth session's device calls. Each STEP is
# SECONDS:WHAT[:ARG] and runs under `timeout SECONDS`, in order, so that one call
# stays under the 600 s limit and a step cut short loses only itself. Stage first
# (tools/gpu-check stage), carry .gpu-stage; results under $OUT.
#   S:tests             GPU suites (tools/gpu-check, UMPOOL_GPU_STEPS=tests: the
#                       drain tests on managed, device and vmm memory)
#   S:pytest            the Python torch tests under umpool's own allocator (its
#                       PyTorch profile on)
#   S:mem:WORKLOADS     memory.py, one round: native / expandable segments / umpool
#                       (the PyTorch profile), and $EXTRA (e.g. ,umpool_c_defaults)
#   S:duel:TASKS:ROUNDS torch_integration.py --speed-only, ROUNDS alternated rounds
# Example: card.sh 150:tests 420:mem:vit,beam,generate
set -u
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader | tee -a "$OUT/gpu.txt"
for step in "$@"; do
  IFS=: read -r secs what arg rounds <<< "$step"
  tag=$what${arg:+-${arg//,/-}}
  t0=$(date +%s)
  case $what in
    tests|pytest)
      UMPOOL_GPU_STEPS=$what UMPOOL_TORCH_MODES=allocator timeout "$secs" \
        tools/gpu-check run "$OUT/$tag" > "$OUT/$tag.log" 2>&1 ;;
    mem)
      timeout "$secs" python3 bench/torch/memory.py --out "$OUT/$tag" --rounds 1 --only "$arg" \
        --allocators native,expandable,umpool${EXTRA:-} > "$OUT/$tag.log" 2>&1 ;;
    duel)
      timeout "$secs" python3 bench/torch/torch_integration.py --speed-only --tasks "$arg" \
        --rounds "${rounds:-20}" --out "$OUT/$tag" > "$OUT/$tag.log" 2>&1 ;;
  esac
  echo "== $tag rc=$? in $(( $(date +%s) - t0 )) s"
  case $what in
    tests|pytest) cat "$OUT/$tag/summary.txt" 2>/dev/null ;;
    *) tail -14 "$OUT/$tag.log" ;;
  esac
done
