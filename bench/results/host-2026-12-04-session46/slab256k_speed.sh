#!/bin/bash
# slab256k_speed.sh OUT BENCH: what default.slab_max:256KiB costs the
# allocation paths on this host: tools/ab-bench (6 alternated rounds, median
# and best) of pool_benchmark's CachedPair and Churn on the host backend, A at
# the defaults, B with UMPOOL_BENCH_CONF=default.slab_max:256KiB (the default
# role's 256 KiB-1 MiB requests served best fit from its large space, off the
# thread caches). Writes OUT/slab256k_speed.txt.
set -eu
out=$(cd "$1" && pwd); a=$(realpath "$2")
source "$(dirname "$0")/common.sh"
cat > "$work/slab256k.sh" <<EOS
#!/bin/bash
UMPOOL_BENCH_CONF=default.slab_max:256KiB exec "$a" "\$@"
EOS
chmod +x "$work/slab256k.sh"
{
  echo "# A: $(basename "$a") at the defaults, B: default.slab_max:256KiB"
  tools/ab-bench "$a" "$work/slab256k.sh" 6 '(CachedPair|Churn)/umpool_host' "$work/ab" 2>&1
} > "$out/slab256k_speed.txt"
cat "$out/slab256k_speed.txt"
