#!/bin/bash
# The device call that measured all five real workloads with native, expandable
# segments and umpool in one run (bench/torch/memory.py, one round).
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
o=$OUT/m5; mkdir -p $o
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader | tee $o/gpu.txt
t0=$(date +%s)
timeout 560 python3 bench/torch/memory.py --out $o --rounds 1 --only vit,beam,generate,train,compile \
  --allocators native,expandable,umpool > $o/memory_real.log 2>&1
echo "memory: $(( $(date +%s) - t0 )) s"
tail -5 $o/memory_real.log
cat $o/memory_real.md
