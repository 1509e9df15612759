#!/bin/bash
# stress_suites.sh OUT SECONDS JOBS NAME=BINARY[:FILTER]...: runs each host-backend suite
# again and again for SECONDS, JOBS processes per suite at once (all suites at the same time),
# with yield_shim.so preloaded (built here from yield_shim.c) and a new UMPOOL_TEST_SEED each
# run. A run passes when it exits 0. Writes OUT/<name>.runs (seed and pass/FAIL per run),
# OUT/<name>.fail (failing runs' output) and OUT/table.md (printed too).
set -u
out=$1; secs=$2; jobs=$3; shift 3
H=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
gcc -O2 -shared -fPIC -o "$out/yield_shim.so" "$H/yield_shim.c" -ldl || exit 1
end=$(( $(date +%s) + secs ))
worker() {  # name bin filter k
  local name=$1 bin=$2 filter=$3 k=$4 i=0 seed o
  while [ "$(date +%s)" -lt "$end" ]; do
    seed=$(( 1000000 * k + i + 90000000 ))
    if o=$(UMPOOL_TEST_SEED=$seed LD_PRELOAD="$out/yield_shim.so" "$bin" ${filter:+--gtest_filter=$filter} 2>&1); then
      echo "$seed pass"
    else
      echo "$seed FAIL"; { echo "== seed $seed worker $k run $i"; grep -v "^\[ \|^$\|^shim" <<<"$o" | tail -40; } >> "$out/$name.fail.$k"
    fi
    i=$((i + 1))
  done > "$out/$name.runs.$k"
}
names=()
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}; bin=${rest%%:*}; filter=''; [ "$rest" != "$bin" ] && filter=${rest#*:}
  names+=("$name")
  for k in $(seq 1 "$jobs"); do worker "$name" "$bin" "$filter" "$k" & done
done
wait
{ printf '| suite | runs | failures |\n|---|---:|---:|\n'
  for name in "${names[@]}"; do
    cat "$out/$name".runs.* > "$out/$name.runs"; rm -f "$out/$name".runs.*
    cat "$out/$name".fail.* > "$out/$name.fail" 2>/dev/null; rm -f "$out/$name".fail.*
    printf '| %s | %s | %s |\n' "$name" "$(wc -l < "$out/$name.runs")" "$(grep -c FAIL "$out/$name.runs")"
  done; } | tee "$out/table.md"
