# traces.sh (sourced by nowait.sh and slab_max.sh): moves to the repository root and names the
# replay-set script (runset); Traces DIR makes,
# where missing, the steady generated traces of seeds 1-10 and 40 (both KV modes, with roles:
# DIR/roles; the same files as DIR/one for --one-role replays; seeds 1-10: DIR/roles10) and the
# six recorded programs of bench/traces (DIR/rec).
cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." || exit 2  # the repository root
runset=bench/results/H200-2026-12-03-session37/host/runset.sh
Traces() {
  local T=$1 seed mode f name
  mkdir -p "$T/one" "$T/roles" "$T/roles10" "$T/rec"
  for seed in 1 2 3 4 5 6 7 8 9 10 40; do for mode in blocks per-layer; do
    f=$T/roles/$mode-$seed.csv
    [ -f "$f" ] || python3 tools/umpool-tracegen --seed $seed --kv-mode $mode --steps 60 --cycles 6 -o "$f" 2>/dev/null
    [ -e "$T/one/$mode-$seed.csv" ] || ln -s "$f" "$T/one/$mode-$seed.csv"
    [ $seed = 40 ] || [ -e "$T/roles10/$mode-$seed.csv" ] || ln -s "$f" "$T/roles10/$mode-$seed.csv"
  done; done
  for name in generate train compile offload beam vit; do
    [ -f "$T/rec/$name.csv" ] || cat bench/traces/$name/part-*.csv.gz | gzip -dc > "$T/rec/$name.csv"
  done
}
