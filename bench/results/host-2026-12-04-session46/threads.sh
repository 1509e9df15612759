#!/bin/bash
# threads.sh OUT BIN [TAGS_BIN]: the recorded training programs (bench/traces
# vit and train) replayed with their backward passes on a second thread, as
# PyTorch's autograd runs them (label_threads.py), against the same traces on
# one thread (--one-thread), for umpool-replay BIN (and TAGS_BIN, a build
# with thread_tags.patch) at the defaults and three option sets. Writes
# OUT/threads.txt: per row the peak reserved MiB, ratio and calls after
# warm-up, threaded then one thread. Also checks that the card's own ViT
# traces (../H200-2026-12-04-session46/vit_card_*/, recorded by the
# pool on the H200 this session, no thread column) replay as the recorded
# trace does.
set -eu
out=$(cd "$1" && pwd); bin=$(realpath "$2"); tags=${3:+$(realpath "$3")}
source "$(dirname "$0")/common.sh"
Training
row() {  # row BIN LABEL TRACE CONF
  local b=$1 label=$2 t=$3 conf=$4 m
  printf '%-8s %-6s %-50s' "$label" "$t" "${conf:-defaults}"
  for m in "" --one-thread; do
    Replayed "$b" "$work/${t}_thr.csv" ${conf:+--conf $conf} $m
  done
  echo
}
{
  echo "# threads.sh: peak reserved MiB, reserved/live, calls after warm-up;"
  echo "# first on two threads (backward passes on thread 1), then --one-thread"
  for t in vit train; do
    for conf in "" thread_cache_bytes:4MiB default.slab_max:256KiB \
                default.slab_max:256KiB,thread_cache_bytes:4MiB; do
      row "$bin" head "$t" "$conf"
      [ -z "$tags" ] || row "$tags" tags "$t" "$conf"
    done
  done
  echo "# the card's ViT traces (recorded by the pool on the H200, one thread column-less file each)"
  for v in default:"" slab256k:default.slab_max:256KiB; do
    tag=${v%%:*}; conf=${v#*:}
    cat "$here/../H200-2026-12-04-session46/vit_card_$tag/part-"*.csv.gz | gzip -dc > "$work/card.csv"
    for f in "$work/card.csv" "$work/vit.csv"; do
      printf '%-40s %-28s' "$(basename "$f")" "${conf:-defaults}"
      Replayed "$bin" "$f" ${conf:+--conf $conf}
      echo
    done
  done
} > "$out/threads.txt"
cat "$out/threads.txt"
