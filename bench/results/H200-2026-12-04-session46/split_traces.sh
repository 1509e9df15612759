#!/bin/bash
# split_traces.sh: stores each vit_card_TAG.csv.gz that x-mem.sh wrote as
# vit_card_TAG/part-NNN.csv.gz, parts of 15000 lines each gzipped on its own,
# as bench/traces stores traces (the parts concatenate into the trace); checks
# that they do, then removes the single file.
set -eu
cd "$(dirname "$0")"
for f in vit_card_*.csv.gz; do
  d=${f%.csv.gz}
  mkdir -p "$d"
  gzip -dc "$f" | split -l 15000 -d -a 3 --additional-suffix=.csv - "$d/part-"
  gzip -n "$d"/part-*.csv
  cmp <(gzip -dc "$f") <(cat "$d"/part-*.csv.gz | gzip -dc)
  rm "$f"
done
ls vit_card_*/
