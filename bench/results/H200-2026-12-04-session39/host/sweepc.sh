#!/bin/bash
# sweepc.sh BIN TAG [replay args...]: the one-role steady traces /tmp/tr/dev (seeds 1-5, 40)
# and /tmp/tr/held (6-13), both KV modes, the recorded programs /tmp/tr/rec, dev at
# --event-lag 100, and the offload model /tmp/tr/om at lag 100 (made as the thirty-eighth
# session's README says); tables in /tmp/sw/TAG, summary lines on stdout.
bin=$1; tag=$2; shift 2
runset=$(dirname "$0")/../../H200-2026-12-03-session37/host/runset.sh  # per trace: ratio, calls
out=/tmp/sw/$tag; mkdir -p $out
$runset $bin /tmp/tr/dev "$@" > $out/dev.txt
$runset $bin /tmp/tr/held "$@" > $out/held.txt
$runset $bin /tmp/tr/rec "$@" > $out/rec.txt
$runset $bin /tmp/tr/dev --event-lag 100 "$@" > $out/dev100.txt
$runset $bin /tmp/tr/om --event-lag 100 "$@" > $out/om100.txt
echo "$tag dev $(tail -1 $out/dev.txt) | held $(tail -1 $out/held.txt)"
echo "$tag dev100 $(tail -1 $out/dev100.txt)"
echo "$tag rec: $(head -6 $out/rec.txt | awk '{printf "%s %s/%s  ", $1,$2,$3}') om100 $(head -1 $out/om100.txt | awk '{print $2"/"$3}')"
