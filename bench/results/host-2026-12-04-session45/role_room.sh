#!/bin/bash
# role_room.sh OUT BIN: a give-back room for the default role alone (UMPOOL_X_DEFROOM=0.01:
# a growth of the default role gives back at a 1% room, the other roles' at give_back_slack)
# on engines that put some tensors in the default role. From the 22 steady traces with roles
# it makes two sets: "sampling" (the sampling stream's allocations, stream 2, in the default
# role) and "third" (activations whose byte count is a multiple of 3, in the default role);
# replays each at lag 0 at the defaults and with the room, and the six recorded programs with
# the room; "third" and the recorded programs also with UMPOOL_X_DEFOWN=1 (what the tighter
# room asks beyond give_back_slack's comes from the default role's own large space only).
# Per trace reserved/live, calls after warm-up, mean allocation ns (only traces
# with calls after warm-up, and a MEAN line, for the sets). BIN: umpool-replay built at
# c8d8b51 with slab_placement.patch.
set -u
O=$(realpath -m "$1"); B=$(realpath "$2")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$(dirname "$0")/../H200-2026-12-04-session41/host/traces.sh"
Traces "$T"
mkdir -p "$T/sampling" "$T/third"
for f in "$T"/roles/*.csv; do
  awk -F, 'BEGIN{OFS=","} $1=="a" && $5=="2" {$6="default"} {print}' "$f" > "$T/sampling/${f##*/}"
  awk -F, 'BEGIN{OFS=","} $1=="a" && $6=="activations" && $3 % 3 == 0 {$6="default"} {print}' \
      "$f" > "$T/third/${f##*/}"
done
{
  for set in sampling third; do
    echo "== $set, defaults"; bash $runset "$B" "$T/$set" | awk '$3 > 0 || /MEAN/'
    echo "== $set, default role's room 0.01"
    UMPOOL_X_DEFROOM=0.01 bash $runset "$B" "$T/$set" | awk '$3 > 0 || /MEAN/'
  done
  echo "== third, default role's room 0.01, from its own space"
  UMPOOL_X_DEFROOM=0.01 UMPOOL_X_DEFOWN=1 bash $runset "$B" "$T/third" | awk '$3 > 0 || /MEAN/'
  echo "== recorded, default role's room 0.01, from its own space"
  UMPOOL_X_DEFROOM=0.01 UMPOOL_X_DEFOWN=1 bash $runset "$B" "$T/rec"
  echo "== recorded, default role's room 0.01"; UMPOOL_X_DEFROOM=0.01 bash $runset "$B" "$T/rec"
} > "$O" 2>&1
