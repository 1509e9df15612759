#!/bin/bash
# long_steady.sh REPLAY: do the growths after warm-up of activations.slab_max:1MiB on the
# per-layer steady traces at event lag 100 stop? Per-layer seeds 2, 3 and 5 made with 12
# cycles of 60 steps (twice the usual 6), replayed with roles at lag 100, defaults and
# activations.slab_max:1MiB: reserved/live, calls after warm-up, and the cycle each
# backend call after warm-up falls in (op / ops per cycle). Writes long_steady.txt beside
# itself; traces in TRACES (default /tmp/long-traces).
set -u
H=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "$1")
T=$(realpath -m "${TRACES:-/tmp/long-traces}")
cd "$H/../../.." || exit 2
mkdir -p "$T"
{
  for seed in 2 3 5; do
    f=$T/per-layer-$seed-12.csv
    [ -f "$f" ] || python3 tools/umpool-tracegen --seed $seed --kv-mode per-layer --steps 60 --cycles 12 -o "$f" 2>/dev/null
    for conf in "" activations.slab_max:1MiB; do
      "$bin" "$f" --allocators umpool --backend host --event-lag 100 ${conf:+--conf $conf} --verbose 2>&1 |
        awk -v name="per-layer-$seed x12 [${conf:-defaults}]" '
          /ops, .* allocations/ {for (i = 1; i <= NF; i++) if ($(i + 1) == "ops,") ops = $i}
          /backend call after warm-up: op/ {for (i = 1; i <= NF; i++) if ($i == "op") c = c " " int($(i + 1) / (ops / 12)) + 1}
          /^\| umpool/ {split($0, a, "|"); r = a[5]; n = a[7]}
          END {gsub(/ /, "", r); gsub(/ /, "", n); print name, "reserved/live", r, "calls after warm-up", n, "in cycles:" c}'
    done
  done
} > "$H/long_steady.txt" 2>&1
