#!/bin/bash
# variants.sh OUT BASE_REPLAY [VARIANT_REPLAY...]: host replays, one block per binary, of
# the six recorded programs (bench/traces), the 22 steady generated traces in one role
# (--one-role) and the same 22 with roles (at event lag 0 and 100): per trace reserved/live,
# calls after warm-up, mean allocation ns; a MEAN line per set. Traces are made as the
# forty-first session's host/traces.sh makes them (in /tmp/nowait-traces unless TRACES is set).
# Run as `variants.sh small_slabs.txt BASE SMALL128 SMALL512 SMALL2048` and
# `variants.sh first_slab_apart.txt APART`, where BASE is umpool-replay built at b2098e9,
# SMALLn that commit with small_slabs.patch applied and kSmallSlabLimit set to n KiB (the
# patch as written: 2048), APART that commit with first_slab_apart.patch.
# With REPEAT=N only the recorded programs, each run N times in one pool (umpool-replay
# --repeat N: the warm-up mark after the first run): `REPEAT=4 variants.sh repeat4.txt BASE
# APART SMALL128 SMALL512 SMALL2048`.
set -u
O=$(realpath -m "$1"); shift
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$(dirname "$0")/../H200-2026-12-04-session41/host/traces.sh"
Traces "$T"
{
  for b in "${bins[@]}"; do
    echo "== $(basename "$b")"
    if [ -n "${REPEAT:-}" ]; then bash $runset "$b" "$T/rec" --repeat "$REPEAT"; continue; fi
    echo "recorded"; bash $runset "$b" "$T/rec"
    echo "one role"; bash $runset "$b" "$T/one" --one-role
    echo "roles, lag 0"; bash $runset "$b" "$T/roles" | tail -1
    echo "roles, lag 100"; bash $runset "$b" "$T/roles" --event-lag 100 | tail -1
  done
} > "$O" 2>&1
