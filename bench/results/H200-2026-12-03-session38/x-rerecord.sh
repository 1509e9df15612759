#!/bin/bash
# Re-records train and vit with record_workloads.py after its training loop was
# shared (train_loop) and compares the allocation streams with bench/traces
# (op, id, bytes, device, stream, role; not the times).
o=$OUT/rr; mkdir -p $o
timeout 400 python3 bench/torch/record_workloads.py --out $o --only vit,train > $o/record.log 2>&1
for w in vit train; do
  a=$(cat bench/traces/$w/part-*.csv.gz | gzip -dc | grep -v '^#' | cut -d, -f1-6 | md5sum)
  b=$(cat $o/$w/part-*.csv.gz | gzip -dc | grep -v '^#' | cut -d, -f1-6 | md5sum)
  echo "$w committed $a new $b $([ "$a" = "$b" ] && echo SAME || echo DIFFERENT)"
  if [ "$a" != "$b" ]; then
    diff <(cat bench/traces/$w/part-*.csv.gz | gzip -dc | grep -v '^#' | cut -d, -f1-6) \
         <(cat $o/$w/part-*.csv.gz | gzip -dc | grep -v '^#' | cut -d, -f1-6) | head -5
  fi
done | tee $o/compare.txt
tail -4 $o/record.log
rm -rf $o/vit $o/train
