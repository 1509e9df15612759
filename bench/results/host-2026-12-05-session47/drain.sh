#!/bin/bash
# drain.sh OUT BIN: the recorded training programs (bench/traces vit and
# train) replayed by umpool-replay BIN with their backward passes on a second
# thread, as PyTorch's autograd runs them (label_threads.py of the forty-sixth
# session), and on one thread (--one-thread), with and without
# drain_idle_caches:on (caches of threads outside the pool emptied before the
# pool grows). Writes OUT/drain.txt: per row the peak reserved MiB,
# reserved/live and calls after warm-up, two threads then one.
set -eu
out=$(cd "$1" && pwd); bin=$(realpath "$2")
source "$(dirname "$0")/../host-2026-12-04-session46/common.sh"
Training
{
  echo "# drain.sh: peak reserved MiB, reserved/live, calls after warm-up;"
  echo "# first on two threads (backward passes on thread 1), then --one-thread"
  for t in vit train; do
    for conf in "" drain_idle_caches:on default.slab_max:256KiB \
                default.slab_max:256KiB,drain_idle_caches:on; do
      printf '%-6s %-46s' "$t" "${conf:-defaults}"
      for m in "" --one-thread; do
        Replayed "$bin" "$work/${t}_thr.csv" ${conf:+--conf $conf} $m
      done
      echo
    done
  done
} > "$out/drain.txt"
cat "$out/drain.txt"
