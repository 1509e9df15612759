#!/usr/bin/env bash
# The offload program (bench/torch/multistream.py) with three builds, one round each in turn:
# own = build-stage-new (1925baf's code, env switches of experiment_build2.diff unset),
# noown = the same with XNOOWN=1 (9e8c740's behaviour), base = build-stage-base (7c1d54e).
set -u
out=$1
export PYTHONPATH=$PWD/python
for r in 1 2; do for v in own base noown; do
  [ $r = 2 ] && [ $v = noown ] && continue
  case $v in own) st=build-stage-new; e="";; noown) st=build-stage-new; e="XNOOWN=1";; base) st=build-stage-base; e="";; esac
  mkdir -p $out/$v
  env $e LD_LIBRARY_PATH=$PWD/$st/lib UMPOOL_LIBRARY=$PWD/$st/lib/libumpool.so timeout 200 python3 bench/torch/multistream.py --out $out/$v/r$r --rounds 1 --allocators native,umpool > $out/$v/log$r.txt 2>&1
  echo "$v r$r rc=$? $(grep '^| umpool' $out/$v/r$r/multistream.md | awk -F'|' '{print $5, $7}') native $(grep '^| native' $out/$v/r$r/multistream.md | awk -F'|' '{print $5, $7}')"
done; done
