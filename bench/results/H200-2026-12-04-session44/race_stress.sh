#!/bin/bash
# race_stress.sh OUT SECONDS JOBS BIN...: runs model_test's concurrent phase, round 0 alone
# (each BIN a scratch build of model_test that returns after round 0 when ROUND0 is set), over
# and over for SECONDS, JOBS processes per binary at once (all binaries at the same time, so
# they share the load), each pinned to no core, with yield_shim.so preloaded (built here from
# yield_shim.c). Seeds: the default (20261128) in half the runs, varied in the others.
# Writes OUT/<bin>.runs (one line per run: seed, pass/FAIL) and OUT/<bin>.fail (the failing
# runs' output), and OUT/table.md (printed too): binary, runs, failures. With ALL_ROUNDS=1 each
# run goes through all 50 rounds (ROUND0 unset). `race_stress.sh --report OUT BIN...` writes the
# table again from OUT's .runs files.
set -u
table() {  # OUT BIN...: the table from OUT/<bin>.runs
  local o=$1; shift
  { printf '| binary | runs | failures |\n|---|---:|---:|\n'
    for bin in "$@"; do
      local tag; tag=$(basename "$bin")
      printf '| %s | %s | %s |\n' "$tag" "$(wc -l < "$o/$tag.runs")" "$(grep -c FAIL "$o/$tag.runs")"
    done; } | tee "$o/table.md"
}
if [ "$1" = --report ]; then shift; table "$@"; exit; fi
out=$1; secs=$2; jobs=$3; shift 3
r0=ROUND0=1; [ "${ALL_ROUNDS:-0}" = 1 ] && r0=''

H=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
gcc -O2 -shared -fPIC -o "$out/yield_shim.so" "$H/yield_shim.c" -ldl || exit 1
end=$(( $(date +%s) + secs ))
worker() {  # bin tag k
  local bin=$1 tag=$2 k=$3 i=0 seed o
  while [ "$(date +%s)" -lt "$end" ]; do
    if (( i % 2 == 0 )); then seed=20261128; else seed=$(( 100000 * k + i + 7000000 )); fi
    o=$(env $r0 UMPOOL_TEST_SEED=$seed LD_PRELOAD="$out/yield_shim.so" "$bin" --gtest_filter='*Concurrent*' 2>&1)
    if grep -q "PASSED  \] 2 tests" <<<"$o"; then echo "$seed pass"; else
      echo "$seed FAIL"; { echo "== seed $seed worker $k run $i"; grep -v "^\[ \|^$" <<<"$o" | tail -30; } >> "$out/$tag.fail.$k"; fi
    i=$((i + 1))
  done > "$out/$tag.runs.$k"
}
for bin in "$@"; do
  tag=$(basename "$bin")
  for k in $(seq 1 "$jobs"); do worker "$bin" "$tag" "$k" & done
done
wait
for bin in "$@"; do
  tag=$(basename "$bin")
  cat "$out/$tag".runs.* > "$out/$tag.runs"; rm -f "$out/$tag".runs.*
  cat "$out/$tag".fail.* > "$out/$tag.fail" 2>/dev/null; rm -f "$out/$tag".fail.*
done
table "$out" "$@"
