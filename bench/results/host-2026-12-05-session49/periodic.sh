#!/bin/bash
# periodic.sh BIN...: the recorded training program (bench/traces/train, backward
# passes on a second thread) made into training loops by tools/umpool-trace-loop and replayed
# by each umpool-replay BIN at the C defaults and with umpool.torch's profile:
#   - steps 5-8 (one period of its four batch lengths) played 12 times, the
#     warm-up mark after the second;
#   - each of steps 5-8 alone played 40 times (a fixed-shape loop, as
#     torch_integration.py's duel trains), the mark after the second.
# Writes periodic.txt beside this script: peak live and reserved MiB,
# reserved/live, calls after warm-up, then the allocations that made calls
# after warm-up, by repetition (a loop whose pool has settled makes none).
set -eu
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
self=$(cd "$(dirname "$0")" && pwd)
source "$self/../host-2026-12-04-session46/common.sh"
Labelled train
Loop() {  # Loop FIRST PERIOD REPEATS: the table rows for that loop
  local prefix unit conf
  read -r prefix unit < <(tools/umpool-trace-loop "$work/train_thr.csv" -o "$work/per.csv" --first "$1" \
    --period "$2" --repeats "$3")
  for bin in "${bins[@]}"; do
  echo "## steps $1-$(($1 + $2 - 1)) x $3, $bin"
  for conf in drain_idle_caches:off,give_back_slack:0.03 drain_idle_caches:on,give_back_slack:0.01; do
    printf '%-42s' "$conf"
    "$bin" "$work/per.csv" --allocators umpool --backend host --conf "$conf" --quiet 2>/dev/null | tail -1 |
      awk -F'|' '{gsub(/ /,""); printf "  %8s %8s %6s %3s", $3, $4, $5, $7}'
    "$bin" "$work/per.csv" --allocators umpool --backend host --conf "$conf" --verbose 2>&1 >/dev/null |
      PREFIX=$prefix UNIT=$unit REPS=$3 python3 -c '
import collections, os, re, sys
p, u, n = (int(os.environ[k]) for k in ("PREFIX", "UNIT", "REPS"))
reps = collections.Counter((int(m.group(1)) - p) // u + 1
                           for m in map(re.compile(r"call after warm-up: op (\d+)").search, sys.stdin) if m)
print("   by repetition:", " ".join(f"{r}:{reps[r]}" for r in range(3, n + 1) if reps[r]) or "none")'
  done
  done
}
{
  echo "# periodic.sh: recorded training made into loops (two threads), host backend"
  echo "# conf, peak live MiB, peak reserved MiB, reserved/live, calls after warm-up;"
  echo "# then the repetitions (3..) whose allocations made calls, and how many"
  Loop 5 4 12
  for s in 5 6 7 8; do Loop "$s" 1 40; done
} > "$self/periodic.txt"
cat "$self/periodic.txt"
