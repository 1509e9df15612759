#!/bin/bash
# roles_act_slab_max.sh FIRST LAST: steady generated traces with roles, seeds FIRST-LAST, both KV
# modes, replayed on the host (REPLAY: the binary, default build/tools/umpool-replay): per trace
# reserved/live, calls after warm-up and mean allocation ns with the defaults, with
# --conf activations.slab_max:1MiB, and with that at --event-lag 100.
cd "$(dirname "$0")/../../../.." || exit 2  # the repository root
B=${REPLAY:-build/tools/umpool-replay}
tmp=$(mktemp -d)
one() {
  "$B" "$1" --allocators umpool --backend host --json "$tmp/o.json" --quiet "${@:2}" >/dev/null 2>&1
  python3 -c "
import json; r = json.load(open('$tmp/o.json'))['results'][0]
print('%.4f %d %.0f' % (r['ratio'], r['backend_calls_after_warmup'], r['alloc_mean_ns']), end=' | ')"
}
for seed in $(seq "$1" "$2"); do
  for mode in blocks per-layer; do
    f=$tmp/$mode-$seed.csv
    python3 tools/umpool-tracegen --seed "$seed" --kv-mode "$mode" --steps 60 --cycles 6 -o "$f" 2>/dev/null
    echo -n "$mode-$seed | "
    one "$f"; one "$f" --conf activations.slab_max:1MiB
    one "$f" --conf activations.slab_max:1MiB --event-lag 100; echo
    rm -f "$f"
  done
done
rm -rf "$tmp"
