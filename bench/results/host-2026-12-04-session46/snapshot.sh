#!/bin/bash
# snapshot.sh OUT BIN: where the labelled ViT trace's memory is at peak live
# bytes (umpool-replay --snapshot), two threads and one, at the defaults and
# at default.slab_max:256KiB: MiB of the large space's and the slab space's
# segments by block state (L live, F free populated, B bare), live blocks
# split into the caller's blocks and slab ranges, and the live blocks in
# slabs; then the ideal best-fit model of the same requests split at 256 KiB.
# Writes OUT/snapshot.txt.
set -eu
out=$(cd "$1" && pwd); bin=$(realpath "$2")
source "$(dirname "$0")/common.sh"
Labelled vit 3072,605184,2359296,3072
{
  echo "# snapshot.sh: MiB at peak live bytes of the ViT training, by segment kind and block state"
  for conf in "" default.slab_max:256KiB; do
    for m in "" --one-thread; do
      "$bin" "$work/vit_thr.csv" --allocators umpool --backend host --quiet ${conf:+--conf $conf} $m \
          --snapshot "$work/s.json" > /dev/null 2>&1
      python3 - "$work/s.json" "${conf:-defaults}" "${m:-two threads}" <<'PY'
import collections, json, sys
d = json.load(open(sys.argv[1]))
M = 2 ** 20
by = collections.defaultdict(float)
small = 0.0  # live blocks in slabs (MiB)
for s in d["spans"]:
    if s["kind"] != "segment":
        small += sum(size * n for _o, size, n, state, _r in s["blocks"] if state == "L") / M
        continue
    space = "slab space" if s["slab_space"] else "large space"
    for _off, size, n, state, requested in s["blocks"]:
        what = state if state != "L" else ("L caller" if requested else "L slab ranges")
        by[(space, what)] += size * n / M
print(f"{sys.argv[2]:26s} {sys.argv[3]:12s} reserved {d['reserved_bytes'] / M:7.1f}  "
      + "  ".join(f"{sp}: {w} {v:.1f}" for (sp, w), v in sorted(by.items()))
      + f"  (live in slabs {small:.1f})")
PY
    done
  done
  echo "# the ideal best fit of the same requests, split at 256 KiB (tools/umpool-fit-model):"
  python3 tools/umpool-fit-model "$work/vit.csv" --partition default-role-256k | sed "s|$work/||"
} > "$out/snapshot.txt"
cat "$out/snapshot.txt"
