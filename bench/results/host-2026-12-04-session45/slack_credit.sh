#!/bin/bash
# slack_credit.sh OUT BIN: a low give_back_slack with and without a refill credit (host
# replays): the six recorded programs, the 22 steady traces with roles (lag 0) and the same 22
# in one role; per trace reserved/live, calls after warm-up, mean allocation ns; a MEAN line
# per set. BIN is umpool-replay built at c8d8b51 with slab_placement.patch, whose
#   UMPOOL_X_CREDIT=f  adds the bytes of every bare refill to the room above peak live
#                      (give_back_slack's), up to f of peak live: a drop the workload undid
#                      was of pages it needed.
# Unset, the patched build is c8d8b51. Traces as the forty-first session's traces.sh makes them.
set -u
O=$(realpath -m "$1"); B=$(realpath "$2")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$(dirname "$0")/../H200-2026-12-04-session41/host/traces.sh"
Traces "$T"
variant() {  # label, env assignments..., -- replay args
  local label=$1; shift
  local envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  echo "== $label"
  echo "recorded"; env "${envs[@]}" bash $runset "$B" "$T/rec" "$@"
  echo "roles, lag 0"; env "${envs[@]}" bash $runset "$B" "$T/roles" "$@"
  echo "one role"; env "${envs[@]}" bash $runset "$B" "$T/one" --one-role "$@"
}
{
  variant "give_back_slack 0.01" -- --give-back-slack 0.01
  variant "give_back_slack 0.01, credit to 0.03" UMPOOL_X_CREDIT=0.03 -- --give-back-slack 0.01
  variant "give_back_slack 0.0125, credit to 0.03" UMPOOL_X_CREDIT=0.03 -- --give-back-slack 0.0125
} > "$O" 2>&1
