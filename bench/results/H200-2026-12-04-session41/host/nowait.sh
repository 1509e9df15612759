#!/bin/bash
# nowait.sh REPLAY OUT [TRACES]: host replays with reuse_pending_blocks:0 (pending blocks wait for
# their events) and events 10 / 100 trace ops late, through the umpool-replay binary REPLAY:
# the 22 steady traces in one role (seeds 1-10 and 40, both KV modes, --one-role), the 20 with
# roles (seeds 1-10), then the recorded offload program at lags 1-1000. Writes OUT (per trace:
# ratio, calls after warm-up, mean allocation ns; a MEAN line per set). TRACES: where the
# generated traces are kept between runs (made if missing).
set -u
cd "$(dirname "$0")/../../../.." || exit 2  # the repository root
B=$1; O=$2; T=${3:-/tmp/nowait-traces}
runset=bench/results/H200-2026-12-03-session37/host/runset.sh
mkdir -p "$T/one" "$T/roles"
for seed in 1 2 3 4 5 6 7 8 9 10 40; do for mode in blocks per-layer; do
  f=$T/roles/$mode-$seed.csv
  [ -f "$f" ] || python3 tools/umpool-tracegen --seed $seed --kv-mode $mode --steps 60 --cycles 6 -o "$f" 2>/dev/null
  [ -e "$T/one/$mode-$seed.csv" ] || ln -s "$f" "$T/one/$mode-$seed.csv"
done; done
mkdir -p "$T/roles10"; for f in "$T"/roles/*.csv; do
  case $(basename "$f") in *-40.csv) ;; *) ln -sf "$f" "$T/roles10/";; esac
done
off=$T/offload.csv
[ -f "$off" ] || cat bench/traces/offload/part-*.csv.gz | gzip -dc > "$off"
{
  for lag in 10 100; do
    echo "one lag $lag"; bash $runset "$B" "$T/one" --one-role --event-lag $lag --conf reuse_pending_blocks:0
    echo "roles lag $lag"; bash $runset "$B" "$T/roles10" --event-lag $lag --conf reuse_pending_blocks:0
  done
  for lag in 1 10 100 300 1000; do
    echo -n "offload lag $lag: "
    "$B" "$off" --allocators umpool --backend host --event-lag $lag --conf reuse_pending_blocks:0 2>/dev/null |
      grep "umpool (host)" | awk -F'|' '{print $5, $7}'
  done
} > "$O" 2>&1
