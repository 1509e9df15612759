#!/bin/bash
# /tmp/runset.sh BIN DIR [extra replay args]: ratio calls alloc_mean per trace, then mean
bin=$1; dir=$2; shift 2
for f in $dir/*.csv; do
  $bin $f --allocators umpool --backend host --json /tmp/rs.$$.json --quiet "$@" >/dev/null 2>&1
  python3 -c "
import json,sys;r=json.load(open('/tmp/rs.$$.json'))['results'][0]
print('%-16s %.4f %4d %6.1f'%(sys.argv[1],r['ratio'],r['backend_calls_after_warmup'],r['alloc_mean_ns']))" $(basename $f .csv)
done | tee /tmp/rs.$$.out
awk '{s+=$2; c+=$3; a+=$4; if($2>w)w=$2; n++} END {printf "MEAN %.4f worst %.4f calls %d alloc %.1f (n=%d)\n", s/n, w, c, a/n, n}' /tmp/rs.$$.out
rm -f /tmp/rs.$$.*
