#!/bin/bash
# small_slabs.sh OUT BIN: umpool-replay BIN built with the forty-second
# session's small_slabs.patch (bench/results/host-2026-12-04-session42/: the
# slab space 64 KiB granular, a small class's slab the smallest 64 KiB multiple
# holding 8 blocks), on the labelled vit and train traces at the defaults and
# at default.slab_max:256KiB (peak reserved MiB, ratio, calls after warm-up;
# two threads, then --one-thread), then snapshot.sh's figures at peak live
# for the ViT. Writes OUT/small_slabs.txt.
set -eu
out=$(cd "$1" && pwd); bin=$(realpath "$2")
source "$(dirname "$0")/common.sh"
Training
{
  echo "# small_slabs.sh: peak reserved MiB, reserved/live, calls after warm-up; two threads, then one"
  for t in vit train; do
    for conf in "" default.slab_max:256KiB; do
      printf '%-6s %-28s' "$t" "${conf:-defaults}"
      for m in "" --one-thread; do Replayed "$bin" "$work/${t}_thr.csv" ${conf:+--conf $conf} $m; done
      echo
    done
  done
  bash "$here/snapshot.sh" "$work" "$bin" > /dev/null 2>&1
  cat "$work/snapshot.txt"
} > "$out/small_slabs.txt"
cat "$out/small_slabs.txt"
