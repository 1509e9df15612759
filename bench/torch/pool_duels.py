#!/usr/bin/env python3
"""Pools the per-round ratios of several duel runs of the same code on the same
card (each run's torch_integration_rounds.jsonl) and reports, per task, each
run's median and the pooled median with its quartiles and bootstrap 95%
interval (bench/torch/duel.py's statistics). Runs on different hosts differ by
more than a run's own interval; pooling says where the code stands across them.

  python3 bench/torch/pool_duels.py RUN_DIR... [--tasks train,generate] [--out FILE.md]
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duel import bootstrap_ci, emit, quartiles  # noqa: E402


def ratios_of(run_dir):
    found = {}
    with open(os.path.join(run_dir, "torch_integration_rounds.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "ratios" in row:
                found[row["task"]] = row["ratios"]
    card = "?"
    summary = os.path.join(run_dir, "torch_integration.json")
    if os.path.exists(summary):
        with open(summary) as f:
            card = json.load(f).get("gpu", card)
    return card, found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--tasks", default="train,generate")
    ap.add_argument("--out")
    a = ap.parse_args()
    runs = [(d, *ratios_of(d)) for d in a.runs]
    cards = sorted({c for _, c, _ in runs})
    lines = [f"Duel runs pooled, {', '.join(cards)} (`bench/torch/pool_duels.py`): umpool / native "
             "time per round (generation: 1 / tokens per second); below 1, umpool is faster.", "",
             "| task | " + " | ".join(f"`{d}`" for d, _, _ in runs)
             + " | pooled: rounds, median (quartiles) [95% interval], share of rounds below 1 |",
             "|---|" + "---:|" * (len(runs) + 1)]
    for task in a.tasks.split(","):
        cells, pooled = [], []
        for _, _, found in runs:
            rs = found.get(task, [])
            pooled += rs
            cells.append(f"{statistics.median(rs):.3f} ({len(rs)})" if rs else "-")
        if not pooled:
            continue
        q, ci = quartiles(pooled), bootstrap_ci(pooled)
        below = sum(r < 1 for r in pooled) / len(pooled)
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {len(pooled)}, "
                     f"{statistics.median(pooled):.3f} ({q[0]:.3f}-{q[1]:.3f}) "
                     f"[{ci[0]:.3f}-{ci[1]:.3f}], {below:.2f} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
