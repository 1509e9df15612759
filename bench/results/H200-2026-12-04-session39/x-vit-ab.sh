#!/bin/bash
# x-vit-ab.sh ROUNDS: the ViT duel (torch_integration --tasks vit) four times in
# a row, umpool's defaults and give_back_slack:0.0125 alternating (each run
# against its own native worker); results under $OUT/vit_ab_<i>_<setting>.
set -u
export LD_LIBRARY_PATH=$PWD/.gpu-stage/lib PYTHONPATH=$PWD/python UMPOOL_LIBRARY=$PWD/.gpu-stage/lib/libumpool.so
i=0
for setting in defaults slack0125 defaults slack0125; do
  i=$((i + 1))
  conf=()
  [ "$setting" = slack0125 ] && conf=(--umpool-conf give_back_slack:0.0125)
  d="$OUT/vit_ab_${i}_$setting"
  python3 bench/torch/torch_integration.py --speed-only --tasks vit --rounds "$1" "${conf[@]}" \
    --out "$d" > "$d.log" 2>&1
  echo "$i $setting rc=$? $(grep -o 'ViT[^|]*| [0-9.]* | [0-9.]* | [^|]*' "$d/torch_integration.md")"
done
