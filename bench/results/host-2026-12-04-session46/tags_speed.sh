#!/bin/bash
# tags_speed.sh OUT BENCH TAGS_BENCH: what the two thread-cache changes cost
# the hot path, on this host: tools/ab-bench (alternated runs, median and
# best) of pool_benchmark's CachedPair and Churn on the host backend, (1)
# BENCH against TAGS_BENCH (a build with thread_tags.patch), (2) BENCH
# against itself with UMPOOL_BENCH_CONF=thread_cache_bytes:4MiB.
# Writes OUT/tags_speed.txt.
set -eu
out=$(cd "$1" && pwd); a=$(realpath "$2"); tags=$(realpath "$3")
source "$(dirname "$0")/common.sh"
cat > "$work/small_cache.sh" <<EOS
#!/bin/bash
UMPOOL_BENCH_CONF=thread_cache_bytes:4MiB exec "$a" "\$@"
EOS
chmod +x "$work/small_cache.sh"
filter='(CachedPair|Churn)/umpool_host'
{
  echo "# (1) A: $(basename "$a") at the defaults, B: thread_tags.patch"
  tools/ab-bench "$a" "$tags" 6 "$filter" "$work/ab1" 2>&1
  echo "# (2) A: the defaults, B: thread_cache_bytes:4MiB"
  tools/ab-bench "$a" "$work/small_cache.sh" 6 "$filter" "$work/ab2" 2>&1
} > "$out/tags_speed.txt"
cat "$out/tags_speed.txt"
