#!/bin/bash
# summarize.sh: summary.md from slab_placement.txt and slack_credit.txt (this folder): per
# variant the vit row and each set's MEAN line (ratio / calls after warm-up).
cd "$(dirname "$0")" || exit 2
table() {  # FILE SET-NAMES...: one row per variant block of FILE
  local f=$1; shift
  printf '| variant | vit |'; for s in "$@"; do printf ' %s mean / calls |' "$s"; done; echo
  printf '|---|---:|'; for s in "$@"; do printf -- '---:|'; done; echo
  awk -v n=$# '
    function flush() { if (v != "") { printf "| %s | %s |", v, vit; for (i = 1; i <= n; i++) printf " %s |", m[i]; print "" } }
    /^== / { flush(); v = substr($0, 4); k = 0; vit = "" }
    /^vit / { vit = $2 }
    /^MEAN/ { m[++k] = $2 " / " $6 }
    END { flush() }' "$f"
}
{
  echo "From \`slab_placement.txt\` (written by \`summarize.sh\`):"; echo
  table slab_placement.txt recorded one-role; echo
  echo "From \`slack_credit.txt\`:"; echo
  table slack_credit.txt recorded "roles (lag 0)" one-role
} > summary.md
