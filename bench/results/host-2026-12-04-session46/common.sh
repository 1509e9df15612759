# common.sh (sourced by this folder's scripts): the repository root, a work
# folder removed at exit, and Labelled NAME [SIZES]: bench/traces' NAME as
# $work/NAME.csv and, labelled by label_threads.py, $work/NAME_thr.csv.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../../.." || exit 2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
Labelled() {
  cat "bench/traces/$1/part-"*.csv.gz | gzip -dc > "$work/$1.csv"
  python3 "$here/label_threads.py" "$work/$1.csv" "$work/$1_thr.csv" ${2:+"$2"} >&2
}
# Training: the two recorded training programs, labelled (the ViT's
# parameters are not created in parameters() order: its optimizer's first
# four sizes are given).
Training() {
  Labelled vit 3072,605184,2359296,3072
  Labelled train
}
# Replayed BIN TRACE [args]: "peak ratio calls" of umpool-replay's table row.
Replayed() {
  local b=$1 t=$2; shift 2
  "$b" "$t" --allocators umpool --backend host --quiet "$@" 2>/dev/null | tail -1 |
    awk -F'|' '{gsub(/ /,""); printf "  %8s %6s %3s", $4, $5, $7}'
}
