#!/bin/bash
# recorded.sh BIN...: the six recorded programs (bench/traces; vit and train with their
# backward passes on a second thread, as autograd runs them) replayed by each
# umpool-replay BIN at the C defaults and with umpool.torch's profile: peak reserved MiB,
# reserved/live, calls after warm-up. Writes recorded.txt beside this script.
set -eu
self=$(cd "$(dirname "$0")" && pwd)
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
source "$self/../host-2026-12-04-session46/common.sh"
Training
for t in beam compile generate offload; do cat "bench/traces/$t/part-"*.csv.gz | gzip -dc > "$work/$t.csv"; done
{
  echo "# recorded.sh: peak reserved MiB, reserved/live, calls after warm-up (host backend)"
  for bin in "${bins[@]}"; do
    for conf in drain_idle_caches:off,give_back_slack:0.03 drain_idle_caches:on,give_back_slack:0.01; do
      echo "## $bin, $conf"
      for t in vit_thr train_thr beam generate compile offload; do
        printf '%-10s' "$t"; Replayed "$bin" "$work/$t.csv" --conf "$conf"; echo
      done
    done
  done
} > "$self/recorded.txt"
cat "$self/recorded.txt"
