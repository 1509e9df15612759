#!/bin/bash
# roles_seeds11-45_slack.sh: steady generated traces with roles, seeds 11-45, both KV modes,
# replayed on the host: reserved/live and calls after warm-up with the defaults,
# with --conf give_back_slack:0.0125, and with it at --event-lag 100 (REPLAY: the binary).
cd "$(dirname "$0")/../../../.."  # the repository root
B=${REPLAY:-build/tools/umpool-replay}
one() { $B $1 --allocators umpool --backend host --json ${TMPDIR:-/tmp}/o.json --quiet "${@:2}" >/dev/null 2>&1; python3 -c "
import json;r=json.load(open('${TMPDIR:-/tmp}/o.json'))['results'][0];print('%.4f %d'%(r['ratio'],r['backend_calls_after_warmup']),end=' ')"; }
for seed in $(seq 11 45); do for mode in blocks per-layer; do
  f=${TMPDIR:-/tmp}/$mode-$seed.csv
  python3 tools/umpool-tracegen --seed $seed --kv-mode $mode --steps 60 --cycles 6 -o $f 2>/dev/null
  echo -n "$mode-$seed "; one $f; one $f --conf give_back_slack:0.0125; one $f --conf give_back_slack:0.0125 --event-lag 100; echo
  rm -f $f
done; done
