#!/usr/bin/env bash
# Session 37 card call 2 (final code): replay-vs-torch seeds 1 2 40 and pool_benchmark's
# cached pairs and churn, base (b0fc0ee) against new, alternating.
set -u
o=$OUT/s37b; mkdir -p $o
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > $o/gpu.txt 2>&1
timeout 250 tools/replay-vs-torch $o/rvt "1 2 40" > $o/rvt_log.txt 2>&1; echo "rvt rc=$?"
LD_LIBRARY_PATH=$PWD/.gpu-stage/lib AB_REPS=3 timeout 200 tools/ab-bench build-stage-base/bin/pool_benchmark .gpu-stage/bin/pool_benchmark 4 'BM_(CachedPair/umpool_managed/(4096|1048576)$|Churn/umpool_managed$)' $o/ab > $o/ab.txt 2>&1; echo "ab rc=$?"
cat $o/ab.txt; tail -4 $o/rvt/replay_vs_torch.md
cd $OUT && tar czf s37b.tar.gz s37b && rm -rf s37b
