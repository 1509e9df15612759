#!/usr/bin/env bash
# temporary experiment (not committed): one-role traces, XFENCE=0 vs 1, managed backend
set -u
out=$1; seeds=${2:-"1 2 40"}
export LD_LIBRARY_PATH="$PWD/.gpu-stage/lib:${LD_LIBRARY_PATH:-}"
replay=.gpu-stage/bin/umpool-replay
d=$(mktemp -d)
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > $out/gpu.txt
for seed in $seeds; do for mode in blocks per-layer; do
  t=$mode-$seed
  python3 tools/umpool-tracegen --seed $seed --kv-mode $mode --steps 60 --cycles 6 -o $d/$t.csv 2>/dev/null
  awk -F, 'BEGIN { OFS = "," } /^#/ || /^op,/ { print; next } { if ($1 == "a") $6 = "default"; print }' $d/$t.csv > $d/$t-one.csv
  for v in 0 1 0 1; do
    r=$(XFENCE=$v $replay $d/$t-one.csv --allocators umpool --backend managed 2>/dev/null | grep "^| umpool" | awk -F'|' '{print $5, $7, $9}')
    echo "$t xf=$v $r" | tee -a $out/xfence_ab.txt
  done
  r=$($replay $d/$t.csv --allocators umpool --backend managed 2>/dev/null | grep "^| umpool" | awk -F'|' '{print $5, $7, $9}')
  echo "$t roles $r" | tee -a $out/xfence_ab.txt
  rm -f $d/$t.csv $d/$t-one.csv
done; done
