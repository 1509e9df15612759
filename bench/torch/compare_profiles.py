#!/usr/bin/env python3
"""Op by op, where two allocators' profiles differ: reads the WHAT_USE.ops.json
files that profile_generate.py --out writes (several runs per allocator), and
prints per op the self CPU time per step of each run and the difference of the
fastest runs (umpool's least minus native's least: the host's noise only adds
time, so the least is the fairest figure). Largest differences both ways.

  python3 bench/torch/compare_profiles.py DIR [--rows 20] [--out FILE.md]
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duel import emit  # noqa: E402


def load(folder, use):
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, f"*_{use}*.ops.json"))):
        with open(path) as f:
            doc = json.load(f)
        runs.append((doc.get("card", "?"), {o["op"]: o for o in doc["ops"]}))
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--out")
    a = ap.parse_args()
    native, umpool = load(a.folder, "native"), load(a.folder, "umpool")
    if not native or not umpool:
        raise SystemExit(f"{a.folder}: needs *_native*.ops.json and *_umpool*.ops.json")
    card = native[0][0]

    def self_us(runs, op):
        return [r.get(op, {}).get("self_cpu_us", 0.0) for _, r in runs]

    ops = set().union(*(r.keys() for _, r in native + umpool))
    rows = []
    for op in ops:
        n, u = self_us(native, op), self_us(umpool, op)
        calls = max(r.get(op, {}).get("calls", 0) for _, r in native + umpool)
        rows.append((min(u) - min(n), op, n, u, calls))
    rows.sort()

    def total(runs):
        return [sum(o["self_cpu_us"] for o in r.values()) for _, r in runs]

    fmt = lambda xs: " / ".join(f"{x:.0f}" for x in xs)  # noqa: E731
    lines = [f"Self CPU time per step (us), torch.profiler, {card}: {len(native)} native and "
             f"{len(umpool)} umpool runs (`bench/torch/compare_profiles.py {a.folder}`).", "",
             f"All ops: native {fmt(total(native))}; umpool {fmt(total(umpool))}.", "",
             "| op | calls (all steps) | native | umpool | least umpool - least native |",
             "|---|---:|---:|---:|---:|"]
    shown = rows[:a.rows] + rows[-a.rows:] if len(rows) > 2 * a.rows else rows
    for d, op, n, u, calls in shown:
        if abs(d) < 1.0:
            continue
        lines.append(f"| {op[:60]} | {calls} | {fmt(n)} | {fmt(u)} | {d:+.0f} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
