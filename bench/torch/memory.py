#!/usr/bin/env python3
"""Memory on real PyTorch workloads (issue 14): the same programs with
PyTorch's native caching allocator, with expandable segments and with
umpool's allocator, in one run on one card.

Workloads (bench/torch/record_workloads.py, random-weight Llama-style bf16
models from transformers, each in its own process):
  generate  12-layer model, HF generate with DynamicCache over a series of
            batch sizes, prompt lengths and output lengths (tokens/s)
  train     8-layer model, AdamW, 12 steps over varied lengths (ms per step)
  compile   4-layer model under torch.compile (inductor), six calls over varied
            shapes (seconds, compilation included: each process compiles into
            a fresh inductor / Triton cache, so no allocator finds it warm)
  beam      12-layer model, HF generate with beam search (4 beams) over varied
            batches and lengths (tokens/s)
  vit       ViT-Base classifier, bf16 autocast over fp32 weights, AdamW, 12
            steps over batches of 32-96 images (ms per step)

Speed per process: train and vit the mean of their last eight steps (each of
the four input shapes' first step pays one-time setup), generate and beam
tokens/s over the whole run, compile the run's seconds (compilation included).
Host load moves it between processes by more than the allocators differ: the
"vs native" ratio is printed from MIN_SPEED_ROUNDS rounds on, and
bench/torch/torch_integration.py times speed as a duel (--tasks train,vit,...).

Per process: peak reserved and peak allocated as torch.cuda reports them
(under umpool: its populated bytes and its blocks), their ratio, and the
peak reserved over native's peak allocated for the same program (one
denominator for all three). Rounds alternate the order of the allocators;
memory figures are the same in every round (the programs are deterministic),
speed is the median over rounds.

Writes OUT/memory_real.json and OUT/memory_real.md (the table, with the card).

  PYTHONPATH=python python3 bench/torch/memory.py --out DIR [--rounds 2]
      [--only generate,train,compile,beam,vit] [--allocators native,expandable,umpool,umpool_vmm]
      [--trace-dir DIR]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench_torch import (  # noqa: E402
    ALLOCATOR_ENVS, allocator_env, parse_allocators, rotated, run_worker)
# umpool: its defaults (free pages given back beyond give_back_slack above peak
# live bytes); umpool_keep_pages: every populated page kept, as before the
# thirteenth session; umpool_vmm: GPU memory, not managed (--allocators;
# bench_torch.ALLOCATOR_ENVS).
ALLOCATORS = ("native", "expandable", "umpool", "umpool_keep_pages")
MIN_SPEED_ROUNDS = 5  # rounds before the speed column is a comparison (report)
SPEED = {"generate": ("tokens_per_s", "tok/s"), "train": ("step_ms", "ms/step"),
         "beam": ("tokens_per_s", "tok/s"), "vit": ("step_ms", "ms/step"),
         "compile": ("seconds", "s")}


def worker(name, alloc):
    import torch
    if alloc.startswith("umpool"):
        sys.path.insert(0, os.path.join(REPO, "python"))
        import umpool.torch
        umpool.torch.enable(mode="allocator")
    import record_workloads
    res = record_workloads.WORKLOADS[name](torch)
    torch.cuda.synchronize()
    res["peak_reserved"] = torch.cuda.max_memory_reserved()
    res["peak_allocated"] = torch.cuda.max_memory_allocated()
    res["gpu"] = torch.cuda.get_device_name(0)
    res["torch"] = torch.__version__
    if alloc.startswith("umpool"):
        import umpool
        s = umpool.memory_stats()
        res["umpool"] = {k: s[k] for k in (
            "umpool.mapped_bytes_peak", "num_device_alloc", "num_device_free",
            "umpool.grown_in_place", "umpool.reserves_cut", "requested_bytes.all.peak",
            "umpool.page_drops", "umpool.bare_refills", "umpool.bare_bytes_peak")}
    print(json.dumps(res), flush=True)


def run(name, alloc, trace_dir=None):
    # --trace-dir: umpool's runs record the pool's own trace (UMPOOL_CONF
    # trace:..., with each op's thread: umpool-replay then runs a training
    # program's backward passes on their own thread, as autograd did).
    trace = (f"trace:{os.path.join(trace_dir, f'{name}_{alloc}.csv')}"
             if trace_dir and alloc.startswith("umpool") else None)
    env = allocator_env(alloc, trace)
    with tempfile.TemporaryDirectory(prefix=f"umpool_memory_{alloc}_") as cache:
        if name == "compile":
            env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache, "inductor")
            env["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
        return run_worker(__file__, ["--worker", name, "--alloc", alloc], f"{name}/{alloc}",
                          env=env, timeout=900)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", default="generate,train,compile,beam,vit")
    ap.add_argument("--allocators", default=",".join(ALLOCATORS),
                    help="which, native first (the reference): any of " + ", ".join(ALLOCATOR_ENVS))
    ap.add_argument("--trace-dir", help="umpool's runs of the first round record their pool's "
                    "trace there (NAME_ALLOCATOR.csv, docs/trace.md), for umpool-replay")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--alloc", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.alloc)
        return
    names = a.only.split(",")
    allocators = parse_allocators(a.allocators)
    if a.trace_dir:
        a.trace_dir = os.path.abspath(a.trace_dir)
        os.makedirs(a.trace_dir, exist_ok=True)
    runs = {n: {al: [] for al in allocators} for n in names}
    for r in range(a.rounds):
        for name in names:
            for alloc in rotated(allocators, r):
                res = run(name, alloc, a.trace_dir if r == 0 else None)
                runs[name][alloc].append(res)
                key = SPEED[name][0]
                print(f"round {r} {name:8s} {alloc:10s} reserved {res['peak_reserved'] / 2**20:8.1f} "
                      f"MiB allocated {res['peak_allocated'] / 2**20:8.1f} MiB "
                      f"{key} {res[key]:.2f}", flush=True)
            # After every workload: a time limit loses only the one running.
            report(a, [n for n in names if runs[n]["native"]], runs, r + 1)


def report(a, names, runs, rounds):
    gpu = runs[names[0]]["native"][0]["gpu"]
    table = {}
    for name in names:
        key, unit = SPEED[name]
        native_alloc = runs[name]["native"][0]["peak_allocated"]
        native_speed = statistics.median(x[key] for x in runs[name]["native"])
        for alloc in runs[name]:
            xs = runs[name][alloc]
            reserved = max(x["peak_reserved"] for x in xs)
            allocated = max(x["peak_allocated"] for x in xs)
            speed = statistics.median(x[key] for x in xs)
            table.setdefault(name, {})[alloc] = {
                "peak_reserved": reserved, "peak_allocated": allocated,
                "reserved_over_allocated": reserved / allocated,
                "reserved_over_native_allocated": reserved / native_alloc,
                key: speed,
                "speed_vs_native": (speed / native_speed if key == "tokens_per_s"
                                    else native_speed / speed),
                "same_losses_as_native": (xs[0].get("losses") == runs[name]["native"][0].get("losses")
                                          if "losses" in xs[0] else None),
            }
            if alloc.startswith("umpool"):
                table[name][alloc]["umpool"] = xs[-1]["umpool"]
    # A process's speed moves with the host's load at the time: with fewer
    # than MIN_SPEED_ROUNDS rounds per allocator the column is not a
    # comparison (H200, thirty-ninth session: native's ViT step over its last
    # eight steps read 80-110 ms in three processes, umpool's 82-109, where
    # the duel put them within 1%). torch_integration.py's duels time speed.
    compared = rounds >= MIN_SPEED_ROUNDS
    lines = [f"Peak memory on real PyTorch workloads, {gpu}, torch {runs[names[0]]['native'][0]['torch']}, "
             f"{rounds} alternating rounds (`bench/torch/memory.py`; speed: median over "
             f"rounds of each process's figure"
             + (", higher is better for umpool / native)." if compared else
                f"; with fewer than {MIN_SPEED_ROUNDS} rounds not a comparison, so no ratio: "
                f"`bench/torch/torch_integration.py` times speed as a duel)."), "",
             "| workload | allocator | peak reserved (MiB) | peak allocated (MiB) | reserved / allocated "
             "| reserved / native allocated | speed | vs native |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        key, unit = SPEED[name]
        for alloc in table[name]:
            t = table[name][alloc]
            lines.append(f"| {name} | {alloc} | {t['peak_reserved'] / 2**20:.1f} | "
                         f"{t['peak_allocated'] / 2**20:.1f} | {t['reserved_over_allocated']:.3f} | "
                         f"{t['reserved_over_native_allocated']:.3f} | {t[key]:.2f} {unit} | "
                         + (f"{t['speed_vs_native']:.3f} |" if compared else "— |"))
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "memory_real.json"), "w") as f:
            json.dump({"gpu": gpu, "rounds": rounds, "table": table, "raw": runs}, f, indent=1)
        with open(os.path.join(a.out, "memory_real.md"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
