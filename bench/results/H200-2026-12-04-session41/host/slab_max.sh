#!/bin/bash
# slab_max.sh REPLAY OUT [TRACES]: host replays of the six recorded programs (bench/traces) and
# the 22 steady generated traces in one role (seeds 1-10 and 40, both KV modes, --one-role),
# with the defaults, then with the default role's slab_max at 256 KiB and at 128 KiB (its
# tensors above that as large blocks instead of slabs). Writes OUT (per trace: ratio, calls
# after warm-up, mean allocation ns; a MEAN line per set). TRACES: where the traces are kept
# between runs (host/traces.sh).
set -u
B=$(realpath "$1"); O=$(realpath -m "$2"); T=$(realpath -m "${3:-/tmp/nowait-traces}")
. "$(dirname "$0")/traces.sh"
Traces "$T"
{
  for conf in "" default.slab_max:256KiB default.slab_max:128KiB; do
    echo "recorded [${conf:-defaults}]"; bash $runset "$B" "$T/rec" ${conf:+--conf $conf}
    echo "one role [${conf:-defaults}]"; bash $runset "$B" "$T/one" --one-role ${conf:+--conf $conf} | tail -1
  done
} > "$O" 2>&1
