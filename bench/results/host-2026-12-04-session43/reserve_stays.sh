#!/bin/bash
# reserve_stays.sh BASE_REPLAY NEW_REPLAY: host replays for "a reserve stays with its space".
# BASE is umpool-replay built at 1e3cadd, NEW at 84783e9 (the rule). Writes, beside itself:
# - defaults.txt: both binaries on the forty-second session's sets (variants.sh: the six
#   recorded programs, 22 steady traces in one role, the same with roles at event lag 0 and 100);
# - one_role_lag100.txt: the 22 one-role steady traces at event lag 100;
# - slab_max.txt: the 11 per-layer steady traces with roles at event lag 100 with
#   activations.slab_max of 1, 4 and 8 MiB, and the mappings each made (maps at the warm-up
#   mark, peak mapped MiB) on per-layer seed 5;
# - default_slab_max.txt: NEW on the 22 one-role steady traces at event lag 0 with
#   default.slab_max of 1 (the default), 4 and 8 MiB (not the rule's doing: BASE reads the same).
# Traces as variants.sh makes them (TRACES, default /tmp/nowait-traces).
set -u
H=$(cd "$(dirname "$0")" && pwd)
base=$(realpath "$1"); new=$(realpath "$2")
TRACES=${TRACES:-/tmp/nowait-traces} bash "$H/../host-2026-12-04-session42/variants.sh" "$H/defaults.txt" "$base" "$new"
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$H/../H200-2026-12-04-session41/host/traces.sh"  # moves to the repository root; $runset
mkdir -p "$T/per-layer"
for f in "$T"/roles/per-layer-*.csv; do ln -sf "$(realpath "$f")" "$T/per-layer/"; done
{
  for b in "$base" "$new"; do echo "== $(basename "$b")"; bash $runset "$b" "$T/one" --one-role --event-lag 100; done
} > "$H/one_role_lag100.txt" 2>&1
{
  for mib in 1 4 8; do
    for b in "$base" "$new"; do
      echo "== $(basename "$b") activations.slab_max:${mib}MiB, lag 100"
      bash $runset "$b" "$T/per-layer" --event-lag 100 --conf activations.slab_max:${mib}MiB
      "$b" "$T/per-layer/per-layer-5.csv" --allocators umpool --backend host --event-lag 100 \
        --conf activations.slab_max:${mib}MiB --verbose 2>&1 |
        awk '/warm-up mark/ {for (i = 1; i <= NF; i++) if ($i == "maps") m = $(i + 1)}
             /^\| umpool/ {split($0, a, "|"); gsub(/ /, "", a[12]); print "per-layer-5 maps at warm-up " m " peak mapped MiB " a[12]}'
    done
  done
} > "$H/slab_max.txt" 2>&1
{
  for mib in 1 4 8; do
    echo "== $(basename "$new") default.slab_max:${mib}MiB, one role, lag 0"
    bash $runset "$new" "$T/one" --one-role --conf default.slab_max:${mib}MiB
  done
  echo "== $(basename "$base") default.slab_max:4MiB, one role, lag 0"
  bash $runset "$base" "$T/one" --one-role --conf default.slab_max:4MiB | tail -1
} > "$H/default_slab_max.txt" 2>&1
