#!/bin/bash
# periodic.sh BIN: the recorded training program (bench/traces/train, backward
# passes on a second thread) made periodic by periodic.py (steps 5-8, one period
# of its four batch lengths, played 12 times; warm-up mark after the second) and
# replayed by umpool-replay BIN at the C defaults and with umpool.torch's profile.
# Writes periodic.txt beside this script: peak reserved MiB, reserved/live, calls
# after warm-up, then those calls by repetition (a loop whose pool has settled
# makes none).
set -eu
bin=$(realpath "$1")
source "$(dirname "$0")/../host-2026-12-04-session46/common.sh"
Labelled train
read -r prefix unit < <(python3 "$here/../host-2026-12-05-session49/periodic.py" \
  "$work/train_thr.csv" "$work/per.csv" 5 4 12)
{
  echo "# periodic.sh: recorded training, steps 5-8 played 12 times (two threads), host backend"
  echo "# conf, peak reserved MiB, reserved/live, calls after warm-up; then the allocations"
  echo "# that made backend calls after warm-up, by repetition (3-12)"
  for conf in drain_idle_caches:off,give_back_slack:0.03 drain_idle_caches:on,give_back_slack:0.01; do
    printf '%-44s' "$conf"
    Replayed "$bin" "$work/per.csv" --conf "$conf"
    "$bin" "$work/per.csv" --allocators umpool --backend host --conf "$conf" --verbose 2>&1 >/dev/null |
      PREFIX=$prefix UNIT=$unit python3 -c '
import collections, os, re, sys
p, u = int(os.environ["PREFIX"]), int(os.environ["UNIT"])
reps = collections.Counter((int(m.group(1)) - p) // u + 1
                           for m in map(re.compile(r"call after warm-up: op (\d+)").search, sys.stdin) if m)
print("   by repetition:", " ".join(f"{r}:{reps[r]}" for r in range(3, 13)))'
  done
} > "$here/periodic.txt"
cat "$here/periodic.txt"
