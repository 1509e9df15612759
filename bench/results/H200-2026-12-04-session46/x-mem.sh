#!/bin/bash
# x-mem.sh WORKLOADS: on the card, (1) the ViT training once under umpool's
# defaults and once with default.slab_max:256KiB, each recording the pool's own
# trace (UMPOOL_CONF trace:...) for host replays; (2) memory.py, one round,
# native / expandable segments / umpool / umpool_slab256k for WORKLOADS.
# Stage first (tools/gpu-check stage), carry .gpu-stage; results under $OUT.
set -u
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
for v in "default:" "slab256k:default.slab_max:256KiB,"; do
  tag=${v%%:*}; conf=${v#*:}
  UMPOOL_CONF="${conf}trace:$OUT/vit_card_$tag.csv" timeout 300 \
    python3 bench/torch/memory.py --worker vit --alloc umpool > "$OUT/vit_card_$tag.json" 2> "$OUT/vit_card_$tag.err"
  echo "vit $tag rc=$? $(tail -c 300 "$OUT/vit_card_$tag.json" | tr '\n' ' ' | cut -c1-200)"
done
gzip "$OUT"/vit_card_*.csv
python3 bench/torch/memory.py --out "$OUT/mem" --rounds 1 --only "$1" \
  --allocators native,expandable,umpool,umpool_slab256k > "$OUT/mem.log" 2>&1
echo "memory.py rc=$?"
tail -25 "$OUT/mem.log"
