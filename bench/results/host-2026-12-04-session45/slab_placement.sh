#!/bin/bash
# slab_placement.sh OUT BIN: host replays of where the default role's 256 KiB-1 MiB slabs go
# (the ViT training against the one-role per-layer traces), each variant on the six recorded
# programs and the 22 one-role steady traces: per trace reserved/live, calls after warm-up,
# mean allocation ns; a MEAN line per set. BIN is umpool-replay built at c8d8b51 with
# slab_placement.patch, whose knobs (environment, read once) are:
#   UMPOOL_X_APART=n  a class's first n slabs from the slab space, the rest as before;
#   UMPOOL_X_HOLE=k   a slab range from the large space only out of a free block of at most
#                     k times its bytes (a hole), else from the slab space;
#   UMPOOL_X_RET=b    empty slabs of classes above b bytes go back at once past those kept,
#                     wherever they are; UMPOOL_X_KEEP the bytes of empty slabs kept per class;
#   UMPOOL_X_SLABDROP=1 a large space about to populate first drops as many free whole pages
#                     of the heap's slab spaces, whatever the room (give_back_slack).
# Unset, the patched build is c8d8b51. Traces as the forty-first session's traces.sh makes them.
set -u
O=$(realpath -m "$1"); B=$(realpath "$2")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$(dirname "$0")/../H200-2026-12-04-session41/host/traces.sh"
Traces "$T"
variant() {  # label, env assignments..., -- conf
  local label=$1; shift
  local envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  local conf=("$@")
  echo "== $label"
  echo "recorded"; env "${envs[@]}" bash $runset "$B" "$T/rec" "${conf[@]}"
  echo "one role"; env "${envs[@]}" bash $runset "$B" "$T/one" --one-role "${conf[@]}"
}
{
  variant "defaults" --
  variant "default.slab_space_max:1MiB" -- --conf default.slab_space_max:1MiB
  for n in 1 4 16; do variant "APART=$n" UMPOOL_X_APART=$n --; done
  for k in 2 4 8; do variant "HOLE=$k" UMPOOL_X_HOLE=$k --; done
  variant "slab_space_max:1MiB RET=256KiB" UMPOOL_X_RET=262144 -- --conf default.slab_space_max:1MiB
  variant "slab_space_max:1MiB RET=256KiB KEEP=0" UMPOOL_X_RET=262144 UMPOOL_X_KEEP=0 -- --conf default.slab_space_max:1MiB
  variant "slab_space_max:1MiB SLABDROP" UMPOOL_X_SLABDROP=1 -- --conf default.slab_space_max:1MiB
} > "$O" 2>&1
