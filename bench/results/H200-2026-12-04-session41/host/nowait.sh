#!/bin/bash
# nowait.sh REPLAY OUT [TRACES]: host replays with reuse_pending_blocks:0 (pending blocks wait for
# their events) and events 10 / 100 trace ops late, through the umpool-replay binary REPLAY:
# the 22 steady traces in one role (seeds 1-10 and 40, both KV modes, --one-role), the 20 with
# roles (seeds 1-10), then the recorded offload program at lags 1-1000. Writes OUT (per trace:
# ratio, calls after warm-up, mean allocation ns; a MEAN line per set). TRACES: where the
# generated traces are kept between runs (made if missing).
set -u
B=$(realpath "$1"); O=$(realpath -m "$2"); T=$(realpath -m "${3:-/tmp/nowait-traces}")
. "$(dirname "$0")/traces.sh"
Traces "$T"
off=$T/rec/offload.csv
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
