#!/bin/bash
# x-check.sh ROUNDS: the GPU and CPU test suites (tools/gpu-check run, tests step),
# then the ViT training step's duel against native at umpool's defaults
# (torch_integration.py --tasks vit, ROUNDS alternated rounds). Stage first
# (tools/gpu-check stage), carry .gpu-stage; results under $OUT.
set -u
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
UMPOOL_GPU_STEPS=tests tools/gpu-check run "$OUT/suites" > "$OUT/suites.log" 2>&1
echo "suites rc=$?"; tail -12 "$OUT/suites.log"
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
python3 bench/torch/torch_integration.py --speed-only --tasks vit --rounds "$1" \
  --out "$OUT/vit_duel" > "$OUT/vit_duel_log.txt" 2>&1
echo "vit duel rc=$?"
sed -n 1,12p "$OUT/vit_duel/torch_integration.md"
