#!/bin/bash
# band.sh BEFORE AFTER: umpool-replay binaries without and with the repeated-request
# band (docs/arena.md, "A repeated request grows into a band") on the 22 steady
# generated serving traces, with roles and in one role, at event lags 0 and 100,
# at the C defaults and with umpool.torch's profile (runset.sh: per trace
# reserved/live, calls after warm-up, mean allocation ns; a MEAN line per set).
# Traces as the forty-first session's host/traces.sh makes them (TRACES, default
# /tmp/nowait-traces). Writes band.txt beside this script.
set -u
H=$(cd "$(dirname "$0")" && pwd)
before=$(realpath "$1"); after=$(realpath "$2")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$H/../H200-2026-12-04-session41/host/traces.sh"  # moves to the repository root; $runset
Traces "$T"
profile=drain_idle_caches:on,give_back_slack:0.01
{
  for lag in 0 100; do
    for set in "roles" "one --one-role"; do
      read -r dir flag <<< "$set"
      for conf in "" "$profile"; do
        for b in before after; do
          bin=$before; [ $b = after ] && bin=$after
          echo "== $b, ${conf:-C defaults}, $dir, lag $lag"
          bash $runset "$bin" "$T/$dir" $flag --event-lag $lag ${conf:+--conf "$conf"} | grep MEAN
        done
      done
    done
  done
} > "$H/band.txt" 2>&1
cat "$H/band.txt"
