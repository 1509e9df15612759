#!/bin/bash
# refill_stamp.sh BASE_REPLAY NEW_REPLAY: host replays before and after LargeHeap::RefilledOn
# (pages refilled on a stream raise its group's stamp). BASE is umpool-replay built at 84783e9
# (the pool code of e36e4c6: 9a473a5 and e36e4c6 change no figure), NEW at the fix. Writes,
# beside itself, defaults.txt: both binaries on the forty-second session's sets (variants.sh:
# the six recorded programs, 22 steady traces in one role, the same with roles at event lag 0
# and 100), and lag100_one.txt: the 22 one-role steady traces at event lag 100.
# Traces as variants.sh makes them (TRACES, default /tmp/nowait-traces).
set -u
H=$(cd "$(dirname "$0")" && pwd)
base=$(realpath "$1"); new=$(realpath "$2")
TRACES=${TRACES:-/tmp/nowait-traces} bash "$H/../host-2026-12-04-session42/variants.sh" "$H/defaults.txt" "$base" "$new"
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$H/../H200-2026-12-04-session41/host/traces.sh"  # moves to the repository root; $runset
{
  for b in "$base" "$new"; do echo "== $(basename "$b")"; bash $runset "$b" "$T/one" --one-role --event-lag 100; done
} > "$H/lag100_one.txt" 2>&1
