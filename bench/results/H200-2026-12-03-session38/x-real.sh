#!/bin/bash
# The device call that recorded the beam-search and ViT workloads and measured
# them with native, expandable segments and umpool (one call, under $OUT).
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
o=$OUT/s38; mkdir -p $o
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader | tee $o/gpu.txt
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a $o/gpu.txt
t0=$(date +%s)
timeout 240 python3 bench/torch/record_workloads.py --out $o/rec --only ${ONLY:-beam,vit} 2>&1 | tail -20 | tee $o/record.log
echo "record: $(( $(date +%s) - t0 )) s"
t0=$(date +%s)
timeout 300 python3 bench/torch/memory.py --out $o/mem --rounds 1 --only ${ONLY:-beam,vit} \
  --allocators native,expandable,umpool 2>&1 | tail -30 > $o/memory.log
echo "memory: $(( $(date +%s) - t0 )) s"
tar czf $OUT/s38.tgz -C $OUT s38
cat $o/mem/memory_real.md 2>/dev/null || tail -20 $o/memory.log
