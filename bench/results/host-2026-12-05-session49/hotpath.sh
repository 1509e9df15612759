#!/bin/bash
# hotpath.sh COMMIT...: instructions per cached pair (Allocate + Deallocate of 4 KiB on one
# stream, host backend) at each COMMIT, linked statically and through libumpool.so:
# callgrind's total for 1,200,000 pairs less its total for 200,000, over 1,000,000
# (pairs.cc). Each commit is built in a temporary worktree (-O3 -DNDEBUG, no CUDA).
# Then tools/ab-bench times pool_benchmark's host cached pairs and churn, the first
# COMMIT against the last (6 alternating rounds of 3). Writes hotpath.txt beside this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
work=$(mktemp -d); trap 'git worktree remove --force "$work/src" 2>/dev/null || true; rm -rf "$work"; git worktree prune' EXIT
Ir() {  # Ir BINARY: instructions per pair
  local n t=()
  for n in 200000 1200000; do
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" "$1" "$n" 4096 > /dev/null 2>&1
    t+=("$(callgrind_annotate "$work/cg.$n" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')")
  done
  echo $(( (t[1] - t[0]) / 1000000 ))
}
{
  echo "# hotpath.sh: callgrind instructions per cached 4 KiB pair (host backend)"
  echo "# commit   static  shared"
  for c in "$@"; do
    git worktree add -f --detach "$work/src" "$c" -q
    cmake -S "$work/src" -B "$work/b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DUMPOOL_CUDA=OFF > /dev/null
    ninja -C "$work/b" umpool umpool_shared bench/pool_benchmark > /dev/null
    cp "$work/b/bench/pool_benchmark" "$work/bench-$c"
    libs=$(ninja -C "$work/b" -t commands bench/pool_benchmark | tail -1 | sed 's/.*libumpool.a//; s/&&.*//')
    g++ -O3 -DNDEBUG -std=c++20 -I"$work/src/include" "$here/pairs.cc" -o "$work/static" "$work/b/libumpool.a" $libs
    g++ -O3 -DNDEBUG -std=c++20 -I"$work/src/include" "$here/pairs.cc" -o "$work/shared" \
      "$work/b/libumpool.so" -Wl,-rpath,"$work/b" $libs
    printf '%s  %6s  %6s\n' "$(git rev-parse --short "$c")" "$(Ir "$work/static")" "$(Ir "$work/shared")"
    git worktree remove --force "$work/src"; rm -rf "$work/b"
  done
  echo "# tools/ab-bench $1 (A) against ${!#} (B)"
  AB_REPS=3 tools/ab-bench "$work/bench-$1" "$work/bench-${!#}" 6 \
    'BM_(CachedPair/umpool_host/(4096|1048576)$|Churn/umpool_host$)' "$work/ab"
} > "$here/hotpath.txt"
cat "$here/hotpath.txt"
