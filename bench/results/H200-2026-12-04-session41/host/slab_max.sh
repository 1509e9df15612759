#!/bin/bash
# slab_max.sh REPLAY OUT [TRACES]: host replays of the six recorded programs (bench/traces) and
# the 22 steady generated traces in one role (seeds 1-10 and 40, both KV modes, --one-role),
# with the defaults, then with the default role's slab_max at 256 KiB and at 128 KiB (its
# tensors above that as large blocks instead of slabs). Writes OUT (per trace: ratio, calls
# after warm-up, mean allocation ns; a MEAN line per set). TRACES as in nowait.sh.
set -u
cd "$(dirname "$0")/../../../.." || exit 2  # the repository root
B=$1; O=$2; T=${3:-/tmp/nowait-traces}
runset=bench/results/H200-2026-12-03-session37/host/runset.sh
mkdir -p "$T/one" "$T/rec"
for seed in 1 2 3 4 5 6 7 8 9 10 40; do for mode in blocks per-layer; do
  f=$T/one/$mode-$seed.csv
  [ -e "$f" ] || python3 tools/umpool-tracegen --seed $seed --kv-mode $mode --steps 60 --cycles 6 -o "$f" 2>/dev/null
done; done
for name in generate train compile offload beam vit; do
  [ -f "$T/rec/$name.csv" ] || cat bench/traces/$name/part-*.csv.gz | gzip -dc > "$T/rec/$name.csv"
done
{
  for conf in "" default.slab_max:256KiB default.slab_max:128KiB; do
    echo "recorded [${conf:-defaults}]"; bash $runset "$B" "$T/rec" ${conf:+--conf $conf}
    echo "one role [${conf:-defaults}]"; bash $runset "$B" "$T/one" --one-role ${conf:+--conf $conf} | tail -1
  done
} > "$O" 2>&1
