#!/bin/bash
# /tmp/sweepc.sh BIN TAG [replay args...]: dev, held, rec, dev lag100, om lag100
bin=$1; tag=$2; shift 2
out=/tmp/sw/$tag; mkdir -p $out
/tmp/runset.sh $bin /tmp/tr/dev "$@" > $out/dev.txt
/tmp/runset.sh $bin /tmp/tr/held "$@" > $out/held.txt
/tmp/runset.sh $bin /tmp/tr/rec "$@" > $out/rec.txt
/tmp/runset.sh $bin /tmp/tr/dev --event-lag 100 "$@" > $out/dev100.txt
/tmp/runset.sh $bin /tmp/tr/om --event-lag 100 "$@" > $out/om100.txt
echo "$tag dev $(tail -1 $out/dev.txt) | held $(tail -1 $out/held.txt)"
echo "$tag dev100 $(tail -1 $out/dev100.txt)"
echo "$tag rec: $(head -6 $out/rec.txt | awk '{printf "%s %s/%s  ", $1,$2,$3}') om100 $(head -1 $out/om100.txt | awk '{print $2"/"$3}')"
