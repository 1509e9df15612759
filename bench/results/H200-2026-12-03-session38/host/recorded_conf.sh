#!/bin/bash
# recorded_conf.sh REPLAY TRACEDIR: the recorded traces (TRACEDIR/<name>.csv, from
# bench/traces) replayed on the host backend with the default options and with
# each --conf variant: reserved/live and calls after warm-up per trace.
replay=$1 dir=$2
for c in "" default.slab_space_max:1MiB default.slab_space_max:512KiB default.slab_space_max:320KiB \
         default.slab_max:256KiB default.tail_last:true give_back_slack:0.025 give_back_slack:0.01; do
  printf '%-32s' "${c:-defaults}"
  for w in vit beam generate train compile offload; do
    "$replay" "$dir/$w.csv" --allocators umpool --backend host ${c:+--conf $c} 2>/dev/null | grep '^| umpool' |
      awk -F'|' -v w=$w '{gsub(/ /, "", $5); gsub(/ /, "", $7); printf " %s %s/%s", w, $5, $7}'
  done
  echo
done
