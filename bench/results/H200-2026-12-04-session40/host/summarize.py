#!/usr/bin/env python3
"""summarize.py: the summary of this folder's replays of the steady traces with roles
(defaults against activations.slab_max:1MiB), written to summary.txt. Inputs:
roles_seeds11-45_act_slab_max_1MiB.txt (roles_act_slab_max.sh: trace | defaults |
1MiB | 1MiB at lag 100, each "ratio calls mean_ns") and the seeds 1-10 files (two
runset.sh outputs side by side: trace ratio calls mean_ns, defaults first)."""
import os

here = os.path.dirname(os.path.abspath(__file__))


def seeds_11_45():
    rows = []
    for line in open(os.path.join(here, "roles_seeds11-45_act_slab_max_1MiB.txt")):
        parts = line.split("|")
        if len(parts) < 4:
            continue
        rows.append([tuple(map(float, p.split())) for p in parts[1:4]])
    return rows


def seeds_1_10(name):
    rows = []
    for line in open(os.path.join(here, name)):
        f = line.split()
        if len(f) == 8 and not f[0].startswith("MEAN"):
            rows.append((tuple(map(float, f[1:4])), tuple(map(float, f[5:8]))))
    return rows


def stats(label, xs):
    n = len(xs)
    calls = sum(x[1] for x in xs)
    return (f"{label}: n={n} mean {sum(x[0] for x in xs) / n:.4f} worst {max(x[0] for x in xs):.4f} "
            f"calls after warm-up {calls:.0f} on {sum(1 for x in xs if x[1] > 0)} traces, "
            f"mean alloc {sum(x[2] for x in xs) / n:.0f} ns")


out = []
r = seeds_11_45()
out += [stats("seeds 11-45, defaults", [x[0] for x in r]),
        stats("seeds 11-45, activations.slab_max:1MiB", [x[1] for x in r]),
        stats("seeds 11-45, activations.slab_max:1MiB, lag 100", [x[2] for x in r]),
        f"seeds 11-45: 1MiB lower than the defaults on {sum(x[1][0] < x[0][0] for x in r)} of {len(r)}"]
for name, lag in (("roles_seeds1-10_defaults_vs_act_slab_max_1MiB.txt", "lag 0"),
                  ("roles_seeds1-10_lag100_defaults_vs_act_slab_max_1MiB.txt", "lag 100")):
    r = seeds_1_10(name)
    out += [stats(f"seeds 1-10, {lag}, defaults", [x[0] for x in r]),
            stats(f"seeds 1-10, {lag}, activations.slab_max:1MiB", [x[1] for x in r]),
            f"seeds 1-10, {lag}: 1MiB lower on {sum(x[1][0] < x[0][0] for x in r)} of {len(r)}"]
text = "\n".join(out) + "\n"
open(os.path.join(here, "summary.txt"), "w").write(text)
print(text, end="")
