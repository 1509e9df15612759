#!/bin/bash
# slab_peak.sh OUT BIN: umpool-replay BIN built with slab_peak.patch (the
# forty-fifth session's slab_placement.patch plus UMPOOL_X_SLABPEAK: a large
# space about to set a new reserved peak first drops free whole pages of the
# slab spaces, at most the excess over the high-water mark), on the labelled
# vit and train traces, with and without the knob, at the defaults and at
# default.slab_max:256KiB. Writes OUT/slab_peak.txt (peak reserved MiB,
# ratio, calls after warm-up; two threads, then --one-thread).
set -eu
out=$(cd "$1" && pwd); bin=$(realpath "$2")
source "$(dirname "$0")/common.sh"
Training
{
  echo "# slab_peak.sh: peak reserved MiB, reserved/live, calls after warm-up; two threads, then one"
  for knob in "" UMPOOL_X_SLABPEAK=1; do
    for t in vit train; do
      for conf in "" default.slab_max:256KiB; do
        printf '%-20s %-6s %-28s' "${knob:-base}" "$t" "${conf:-defaults}"
        for m in "" --one-thread; do
          env $knob bash -c "$(declare -f Replayed); Replayed \"\$@\"" _ "$bin" "$work/${t}_thr.csv" \
              ${conf:+--conf $conf} $m
        done
        echo
      done
    done
  done
} > "$out/slab_peak.txt"
cat "$out/slab_peak.txt"
