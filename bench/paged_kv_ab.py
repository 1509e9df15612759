#!/usr/bin/env python3
"""bench/paged_kv_ab.py: an A/B of one paged-KV demo setting, alternated.

Runs examples/paged_kv's demo (paged_kv_demo STEPS REQUESTS OUT TURN GROUPS
CONTEXT) with an environment variable at each of its values, the values
alternating round by round (A B A B ...: the card's speed drifts between runs),
and writes paged_kv_ab.json and paged_kv_ab.md: per value, every round's
tokens/s of each mode, the ratios to all resident and to page faults, and
their medians; mismatches summed (every round trip is checked by the demo).

  python3 bench/paged_kv_ab.py --out DIR --env PAGED_KV_KEEP_RUNNING --values 0,1 \\
      [--rounds 3] [--bin .gpu-stage/bin] [--config 512:2:96:4096] [--requests 32]

Exit status: 0 when every run wrote its JSON with 0 mismatches; 1 otherwise
(a run that failed is reported with the end of its output); 2 for bad
arguments. Where no GPU is usable the demo does nothing: reported, status 1.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATIOS = ("kv_budget50_vs_resident", "kv_budget50_vs_faulting")


def parse_config(text):
    try:
        turn, groups, context, steps = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--config wants TURN:GROUPS:CONTEXT:STEPS, got {text!r}")
    if min(turn, groups, context, steps) <= 0 or groups < 2:
        raise argparse.ArgumentTypeError(f"--config: positive values and 2 groups or more, got {text!r}")
    return turn, groups, context, steps


def run_once(demo, config, requests, env_name, value, path):
    turn, groups, context, steps = config
    env = dict(os.environ, **{env_name: value})
    p = subprocess.run([demo, str(steps), str(requests), path, str(turn), str(groups), str(context)],
                       capture_output=True, text=True, env=env, timeout=1200)
    if p.returncode != 0 or not os.path.exists(path):
        return None, (p.stdout + p.stderr)[-2000:]
    with open(path) as f:
        return json.load(f), p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--env", required=True, help="the environment variable to vary")
    ap.add_argument("--values", required=True, help="its values, comma-separated (two or more)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(REPO, ".gpu-stage", "bin"))
    ap.add_argument("--config", type=parse_config, default=parse_config("512:2:96:4096"),
                    help="TURN:GROUPS:CONTEXT:STEPS (default 512:2:96:4096)")
    ap.add_argument("--requests", type=int, default=32)
    a = ap.parse_args()
    values = a.values.split(",")
    if len(values) < 2 or a.rounds < 1 or a.requests < a.config[1]:
        ap.error("--values wants two or more, --rounds one or more, --requests at least the groups")
    demo = os.path.join(a.bin, "paged_kv_demo")
    if not os.access(demo, os.X_OK):
        ap.error(f"no demo binary at {demo} (build it: tools/gpu-check stage)")
    os.makedirs(a.out, exist_ok=True)
    runs = {v: [] for v in values}
    failures = []
    for r in range(a.rounds):
        for v in values:
            path = os.path.join(a.out, f"paged_kv_{a.env}_{v}_round{r + 1}.json")
            res, text = run_once(demo, a.config, a.requests, a.env, v, path)
            if res is None:
                failures.append({"value": v, "round": r + 1, "output_tail": text})
                print(f"round {r + 1} {a.env}={v}: failed\n{text}", file=sys.stderr)
                continue
            runs[v].append(res)
            print(f"round {r + 1} {a.env}={v}: " +
                  ", ".join(f"{k} {res[k]:.3f}" for k in RATIOS) + f", mismatches {res['mismatches']}")
    out = {"command": " ".join(["bench/paged_kv_ab.py"] + sys.argv[1:]), "env": a.env,
           "config": dict(zip(("turn_steps", "groups", "context", "steps"), a.config)),
           "gpu": next((x["gpu"] for v in values for x in runs[v]), None), "failures": failures,
           "values": {}}
    for v in values:
        rs = runs[v]
        out["values"][v] = {
            "rounds": len(rs),
            "tokens_per_s_each_round": [x["tokens_per_s"] for x in rs],
            "mismatches": sum(x["mismatches"] for x in rs),
            **{k + "_each_round": [x[k] for x in rs] for k in RATIOS},
            **{k: statistics.median(x[k] for x in rs) if rs else None for k in RATIOS},
        }
    with open(os.path.join(a.out, "paged_kv_ab.json"), "w") as f:
        json.dump(out, f, indent=1)
    lines = [f"Paged-KV demo A/B of {a.env} on {out['gpu']}, {a.rounds} alternated rounds "
             f"(`{out['command']}`); medians, each round in brackets.", "",
             "| value | vs all resident | vs page faults | mismatches |", "|---|---|---|---|"]
    for v, s in out["values"].items():
        cells = [f"{s[k]:.3f} ({' / '.join(f'{x:.3f}' for x in s[k + '_each_round'])})"
                 if s[k] is not None else "no run" for k in RATIOS]
        lines.append(f"| {v} | {cells[0]} | {cells[1]} | {s['mismatches']} |")
    with open(os.path.join(a.out, "paged_kv_ab.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = not failures and all(s["rounds"] == a.rounds and s["mismatches"] == 0
                              for s in out["values"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
