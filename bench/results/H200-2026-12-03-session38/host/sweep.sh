#!/bin/bash
# /tmp/sweep.sh BIN TAG [env...]: runs dev, held, rec, offmodel lag 100 with env
bin=$1; tag=$2; shift 2
out=/tmp/sw/$tag; mkdir -p $out
[ $# -gt 0 ] && export "$@"
/tmp/runset.sh $bin /tmp/tr/dev > $out/dev.txt
/tmp/runset.sh $bin /tmp/tr/held > $out/held.txt
/tmp/runset.sh $bin /tmp/tr/rec > $out/rec.txt
/tmp/runset.sh $bin /tmp/tr/dev --event-lag 100 > $out/dev100.txt
( cd /tmp/tr && mkdir -p om && ln -sf ../offmodel.csv om/offmodel.csv )
/tmp/runset.sh $bin /tmp/tr/om --event-lag 100 > $out/om100.txt
echo "$tag dev $(tail -1 $out/dev.txt) | held $(tail -1 $out/held.txt)"
echo "$tag dev100 $(tail -1 $out/dev100.txt)"
echo "$tag rec: $(head -4 $out/rec.txt | awk '{printf "%s %s/%s  ", $1,$2,$3}') om100 $(head -1 $out/om100.txt | awk '{print $2"/"$3}')"
