#!/bin/bash
# x-vit-duel.sh ROUNDS: the ViT training step (memory.py's vit workload) timed
# as a duel against native, with umpool's defaults and then with
# give_back_slack:0.01; results under $OUT/vit_duel and $OUT/vit_duel_slack1.
set -u
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
python3 bench/torch/torch_integration.py --speed-only --tasks vit --rounds "$1" \
  --out "$OUT/vit_duel" > "$OUT/vit_duel_log.txt" 2>&1
echo "defaults rc=$?"
python3 bench/torch/torch_integration.py --speed-only --tasks vit --rounds "$1" \
  --umpool-conf give_back_slack:0.01 --out "$OUT/vit_duel_slack1" > "$OUT/vit_duel_slack1_log.txt" 2>&1
echo "slack1 rc=$?"
for d in vit_duel vit_duel_slack1; do echo "== $d"; sed -n 3,6p "$OUT/$d/torch_integration.md"; done
tail -3 "$OUT/vit_duel_log.txt"
