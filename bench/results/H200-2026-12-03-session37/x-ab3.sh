#!/usr/bin/env bash
# Session 37 card call: GPU suites, replay-vs-torch seeds 1 2 40, and the offload program
# (bench/torch/multistream.py, one round per process) alternating new (.gpu-stage) and base
# (build-stage-base, b0fc0ee). Everything under $OUT/s37, tarred at the end.
set -u
o=$OUT/s37; mkdir -p $o
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > $o/gpu.txt 2>&1
UMPOOL_GPU_STEPS=tests timeout 120 tools/gpu-check run $o/gc > $o/gpu_check.txt 2>&1; echo "gpu-check rc=$?"
tail -12 $o/gpu_check.txt
timeout 200 tools/replay-vs-torch $o/rvt "1 2 40" > $o/rvt_log.txt 2>&1; echo "rvt rc=$?"
for r in 1 2; do for v in new base; do
  case $v in new) st=.gpu-stage;; base) st=build-stage-base;; esac
  mkdir -p $o/off_$v
  LD_LIBRARY_PATH=$PWD/$st/lib UMPOOL_LIBRARY=$PWD/$st/lib/libumpool.so timeout 110 python3 bench/torch/multistream.py --out $o/off_$v/r$r --rounds 1 --allocators native,umpool > $o/off_$v/log$r.txt 2>&1
  echo "$v r$r rc=$? $(grep '^| umpool' $o/off_$v/r$r/multistream.md | awk -F'|' '{print $5, $7}') native $(grep '^| native' $o/off_$v/r$r/multistream.md | awk -F'|' '{print $5, $7}')"
done; done
cd $OUT && tar czf s37.tar.gz s37 && rm -rf s37
