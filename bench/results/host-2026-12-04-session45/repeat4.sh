#!/bin/bash
# repeat4.sh OUT BIN: the six recorded programs each run four times in one pool
# (umpool-replay --repeat 4, the warm-up mark after the first run), at the defaults and at
# give_back_slack 0.0125 with the refill credit (UMPOOL_X_CREDIT=0.03, slack_credit.sh).
# BIN as in slack_credit.sh.
set -u
O=$(realpath -m "$1"); B=$(realpath "$2")
T=$(realpath -m "${TRACES:-/tmp/nowait-traces}")
. "$(dirname "$0")/../H200-2026-12-04-session41/host/traces.sh"
Traces "$T"
{
  echo "== defaults"; bash $runset "$B" "$T/rec" --repeat 4
  echo "== give_back_slack 0.0125, credit to 0.03"
  UMPOOL_X_CREDIT=0.03 bash $runset "$B" "$T/rec" --repeat 4 --give-back-slack 0.0125
} > "$O" 2>&1
