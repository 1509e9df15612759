#!/bin/bash
# x-duel.sh: umpool's PyTorch allocator against native, 80 alternating duel
# rounds of the training step and greedy generation (as the thirty-fourth
# session's duel_80), at this session's code; results under $OUT/duel.
set -u
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
python3 bench/torch/torch_integration.py --speed-only --tasks train,generate --rounds 80 \
  --out "$OUT/duel" > "$OUT/duel_log.txt" 2>&1
echo "torch_integration rc=$?"
cat "$OUT"/duel/*.md 2>/dev/null | head -12
