#!/bin/bash
# speed.sh OUT BASE NEW: what drain_idle_caches costs the hot path on this
# host: tools/ab-bench of pool_benchmark BASE (the commit before the drains)
# against NEW with the option off (the default), then against NEW with it on
# (UMPOOL_BENCH_CONF), cached pairs and churn, 6 alternated rounds each.
# Writes OUT/speed.txt.
set -eu
out=$(cd "$1" && pwd); base=$(realpath "$2"); new=$(realpath "$3")
cd "$(dirname "$0")/../../.."
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\nUMPOOL_BENCH_CONF=drain_idle_caches:on exec %s "$@"\n' "$new" > "$work/on"
chmod +x "$work/on"
filter='(CachedPair|Churn)/umpool_host'
{
  echo "# speed.sh on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo "## A: base; B: drain_idle_caches off (the default)"
  tools/ab-bench "$base" "$new" 6 "$filter" "$work/off"
  echo "## A: base; B: drain_idle_caches:on"
  tools/ab-bench "$base" "$work/on" 6 "$filter" "$work/on_runs"
} > "$out/speed.txt"
cat "$out/speed.txt"
