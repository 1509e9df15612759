#!/bin/bash
# x-mem.sh WORKLOADS TAG: memory.py on the card, one round, native / expandable
# segments / umpool's defaults / umpool with give_back_slack:0.01, for
# WORKLOADS (e.g. vit,beam); results under $OUT/TAG. Stage first
# (tools/gpu-check stage), carry .gpu-stage.
set -u
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
python3 bench/torch/memory.py --out "$OUT/$2" --rounds 1 --only "$1" \
  --allocators native,expandable,umpool,umpool_slack1 > "$OUT/$2.log" 2>&1
echo "memory.py rc=$?"
tail -25 "$OUT/$2.log"
