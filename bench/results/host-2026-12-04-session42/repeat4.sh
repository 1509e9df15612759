#!/bin/bash
# repeat4.sh OUT REPLAY...: the six recorded programs run four times in one pool
# (umpool-replay --repeat 4: the warm-up mark after the first run), one block per binary:
# per program reserved/live, calls after the first run, mean allocation ns; a MEAN line.
# Binaries as in variants.sh (BASE, APART, SMALL128, SMALL512, SMALL2048); traces as there (TRACES, default /tmp/nowait-traces).
set -u
O=$(realpath -m "$1"); shift
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$(dirname "$0")/../H200-2026-12-04-session41/host/traces.sh"
Traces "$T"
for b in "${bins[@]}"; do
  echo "== $(basename "$b")"; bash $runset "$b" "$T/rec" --repeat 4
done > "$O" 2>&1
