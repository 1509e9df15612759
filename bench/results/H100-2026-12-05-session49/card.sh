#!/bin/bash
# card.sh STEP...: the forty-ninth session's device calls. Steps as in the
# forty-eighth session's card.sh (SECONDS:WHAT[:ARG[:ROUNDS]], each under
# `timeout SECONDS`), which runs tests, pytest, mem and duel steps, plus
#   S:ab:ROUNDS   pool_benchmark's cached pairs (4 KiB, 1 MiB) and churn on managed
#                 memory, issue 14's starting code (.gpu-stage/base/pool_benchmark,
#                 built from 3794366) against this build, alternating (tools/ab-bench,
#                 3 repetitions a run)
#   S:dueldef:TASKS:ROUNDS  the duel with umpool at the C defaults
#                 (--umpool-conf drain_idle_caches:off,give_back_slack:0.03)
# Stage first (tools/gpu-check stage; the base binary copied to .gpu-stage/base/),
# carry .gpu-stage; results under $OUT.
set -u
here=$(dirname "$0")
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib
for step in "$@"; do
  IFS=: read -r secs what arg rounds <<< "$step"
  if [[ $what == dueldef ]]; then
    t0=$(date +%s)
    PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so timeout "$secs" \
      python3 bench/torch/torch_integration.py --speed-only --tasks "$arg" --rounds "$rounds" \
      --umpool-conf drain_idle_caches:off,give_back_slack:0.03 --out "$OUT/dueldef-$arg" \
      > "$OUT/dueldef-$arg.log" 2>&1
    echo "== dueldef-$arg rc=$? in $(( $(date +%s) - t0 )) s"
    tail -8 "$OUT/dueldef-$arg.log"
    continue
  fi
  if [[ $what != ab ]]; then
    bash "$here/../H200-2026-12-05-session48/card.sh" "$step"
    continue
  fi
  t0=$(date +%s)
  AB_REPS=3 timeout "$secs" tools/ab-bench .gpu-stage/base/pool_benchmark .gpu-stage/bin/pool_benchmark \
    "$arg" 'BM_(CachedPair/umpool_managed/(4096|1048576)$|Churn/umpool_managed$)' "$OUT/ab" > "$OUT/ab.txt" 2>&1
  echo "== ab rc=$? in $(( $(date +%s) - t0 )) s"
  cat "$OUT/ab.txt"
done
