#!/bin/bash
# profile_steady.sh REPLAY: the 22 steady generated serving traces (seeds 1-10 and 40,
# both KV modes, 6 cycles of 60 steps) in one role, as a PyTorch serving program sees
# them, at event lags 0 and 100: the C defaults against umpool.torch's profile
# (drain_idle_caches:on, give_back_slack:0.01; python/umpool/torch.py TORCH_PROFILE).
# Per trace reserved/live, backend calls after warm-up, mean allocation ns; a MEAN line
# per set. Writes profile_steady.txt beside itself. Traces as the forty-first session's
# host/traces.sh makes them (TRACES, default /tmp/nowait-traces).
set -u
H=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "$1")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$H/../H200-2026-12-04-session41/host/traces.sh"  # moves to the repository root; $runset
Traces "$T"
profile=drain_idle_caches:on,give_back_slack:0.01
{
  for lag in 0 100; do
    echo "== C defaults, one role, lag $lag"; bash $runset "$bin" "$T/one" --one-role --event-lag $lag
    echo "== profile ($profile), one role, lag $lag"
    bash $runset "$bin" "$T/one" --one-role --event-lag $lag --conf "$profile"
  done
} > "$H/profile_steady.txt" 2>&1
