#!/bin/bash
# band.sh EXP_REPLAY: umpool-replay built at 84783e9 with exp_band_debuggrow.patch (an
# experiment build, not kept: BAND_LO/BAND_HI in KiB send activations' requests in that band to
# the large path, the shared KV space, as activations.slab_max:1MiB does for all of 1-32 MiB;
# DEBUGGROW=1 prints a space's free blocks of 4 MiB and more before it grows for 64 MiB or more).
# Writes beside itself band.txt (the 11 blocks-KV and 11 per-layer steady traces with roles,
# lag 0 and 100, per band) and grow_debug.txt (per-layer seed 3, activations.slab_max:1MiB, lag
# 100: the growths around its two calls after warm-up). Traces as variants.sh makes them.
set -u
H=$(cd "$(dirname "$0")" && pwd)
exp=$(realpath "$1")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$H/../H200-2026-12-04-session41/host/traces.sh"  # moves to the repository root; $runset
Traces "$T"
mkdir -p "$T/blocks" "$T/per-layer"
for f in "$T"/roles/blocks-*.csv; do ln -sf "$(realpath "$f")" "$T/blocks/"; done
for f in "$T"/roles/per-layer-*.csv; do ln -sf "$(realpath "$f")" "$T/per-layer/"; done
{
  for band in "0 0" "1024 32768" "1024 16384" "1024 8192" "1024 4096" "4096 32768" "8192 32768" "16384 32768"; do
    set -- $band
    for lag in 0 100; do for d in blocks per-layer; do
      echo -n "band $1-$2 KiB, lag $lag, $d: "
      BAND_LO=$1 BAND_HI=$2 bash $runset "$exp" "$T/$d" --event-lag $lag | tail -1
    done; done
  done
} > "$H/band.txt" 2>&1
DEBUGGROW=1 "$exp" "$T/per-layer/per-layer-3.csv" --allocators umpool --backend host --event-lag 100 \
  --conf activations.slab_max:1MiB --verbose 2>&1 | grep -v '^|' | grep -B12 'backend call after' \
  > "$H/grow_debug.txt"
