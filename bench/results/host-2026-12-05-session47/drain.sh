#!/bin/bash
# drain.sh OUT BIN: the recorded programs replayed by umpool-replay BIN.
# 1. The training programs (bench/traces vit and train) with their backward
#    passes on a second thread, as PyTorch's autograd runs them
#    (label_threads.py of the forty-sixth session), and on one thread
#    (--one-thread), with and without drain_idle_caches:on, and with
#    umpool.torch's profile (drains and give_back_slack:0.01).
# 2. Every recorded program at the defaults and with the profile: one run,
#    then four runs in one pool (--repeat 4: calls after the first run).
# Writes OUT/drain.txt: peak reserved MiB, reserved/live, calls after warm-up.
set -eu
out=$(cd "$1" && pwd); bin=$(realpath "$2")
source "$(dirname "$0")/../host-2026-12-04-session46/common.sh"
Training
profile=drain_idle_caches:on,give_back_slack:0.01
{
  echo "# drain.sh: peak reserved MiB, reserved/live, calls after warm-up;"
  echo "# first on two threads (backward passes on thread 1), then --one-thread"
  for t in vit train; do
    for conf in "" drain_idle_caches:on default.slab_max:256KiB \
                default.slab_max:256KiB,drain_idle_caches:on $profile; do
      printf '%-6s %-46s' "$t" "${conf:-defaults}"
      for m in "" --one-thread; do
        Replayed "$bin" "$work/${t}_thr.csv" ${conf:+--conf $conf} $m
      done
      echo
    done
  done
  echo "# every recorded program (vit, train: two threads), defaults then $profile;"
  echo "# one run, then --repeat 4 (calls after the first run)"
  for t in beam compile generate offload train vit; do
    f=$work/${t}_thr.csv
    [ -f "$f" ] || { cat "bench/traces/$t/part-"*.csv.gz | gzip -dc > "$work/$t.csv"; f=$work/$t.csv; }
    for conf in "" $profile; do
      printf '%-9s %-46s' "$t" "${conf:-defaults}"
      Replayed "$bin" "$f" ${conf:+--conf $conf}
      Replayed "$bin" "$f" ${conf:+--conf $conf} --repeat 4
      echo
    done
  done
} > "$out/drain.txt"
cat "$out/drain.txt"
