#!/usr/bin/env python3
"""What stream-ordered reuse of pending blocks (PoolOptions::
reuse_pending_blocks, docs/arena-streams.md "Pending blocks behind a stream wait")
costs and saves on a multi-stream PyTorch program, beside PyTorch's two
allocators, in one run on one card.

Workload: training with activation offloading, the pattern of torchtune's
OffloadActivations and Megatron's CPU offload. An 8-layer Llama-style bf16
model (transformers, random weights), AdamW, batch 8 over a cycle of lengths
(256, 512, 384, 1024, 640), three cycles. Every tensor autograd saves that is
1 MiB or more and not a parameter is copied to pinned host memory on a side
stream (saved_tensors_hooks) while the compute stream goes on; the GPU tensor
is freed on the compute stream with a record_stream of the side stream, so it
is pending until the copy is done. Backward copies it back on the compute
stream after waiting for that copy. The next batch's token ids are copied to
the GPU on a second side stream into memory allocated there and used on the
compute stream (record_stream). Every step frees hundreds of blocks whose
last use is on another stream.

When a request would grow the pool, umpool with reuse_pending_blocks (its
default) makes the compute stream wait on the device for the side stream's
copies and reuses the pending blocks; "umpool_wait" (UMPOOL_CONF=
reuse_pending_blocks:0) grows instead, as PyTorch's allocators do. The cost,
if any, is in the first cycle (growth) and in the step time; the saving in
peak reserved memory.

Allocators (one process each, order rotated every round): native,
expandable (expandable_segments:True), umpool, umpool_wait. Per process: the
first cycle's seconds, the median step of the later cycles, peak reserved
and allocated as torch.cuda reports them, the losses (compared with
native's: the offloaded activations must come back intact; bf16 training is
not bitwise the same from run to run, so the table gives the largest
relative gap, native's own later runs included), and umpool's
ordered_reuses / cross_stream_reuses / device calls. Then, for attribution,
two more cycles without offloading (median step of the second) and the copy
bandwidth between a 256 MiB block and pinned host memory.

Writes OUT/multistream.md (the table, with the card), OUT/multistream.json (its
figures) and OUT/multistream_runs.jsonl (every run, one a line).
--allocators picks some (native first); umpool_vmm (backend:vmm: GPU memory, not
managed) tells what the managed memory's copy bandwidth costs. --trace FILE
runs umpool once and records its trace of the offloaded cycles, with a
warmup_end mark after the first, for umpool-replay (bench/traces/offload).
--profile splits two long steps' GPU time by kind.

  PYTHONPATH=python python3 bench/torch/multistream.py --out DIR [--rounds 3]
  PYTHONPATH=python python3 bench/torch/multistream.py --trace offload.csv
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench_torch import (  # noqa: E402
    ALLOCATOR_ENVS, allocator_env, parse_allocators, rotated, run_worker)

# bench_torch.ALLOCATOR_ENVS says what each is; umpool_vmm's GPU memory (not
# managed) copies to and from pinned memory at cudaMalloc's speed.
ALLOCATORS = tuple(ALLOCATOR_ENVS)  # all of them, by default
LENGTHS = (256, 512, 384, 1024, 640)
CYCLES = 3
BATCH = 8
MARK_BYTES = 4093  # the size of the allocation that marks the end of the first cycle
UMPOOL_STATS = ("umpool.ordered_reuses", "umpool.cross_stream_reuses", "num_device_alloc",
                "num_device_free", "umpool.page_drops", "umpool.bare_refills")


class Offload:
    """saved_tensors_hooks that move saved activations to pinned host memory
    on a side stream and back on the compute stream."""

    def __init__(self, torch, params, min_bytes=1 << 20):
        self.torch = torch
        self.stream = torch.cuda.Stream()
        self.params = {p.untyped_storage().data_ptr() for p in params}
        self.min_bytes = min_bytes
        self.offloaded = 0

    def pack(self, t):
        torch = self.torch
        if (not t.is_cuda or t.numel() * t.element_size() < self.min_bytes
                or t.untyped_storage().data_ptr() in self.params):
            return t
        host = torch.empty(t.size(), dtype=t.dtype, pin_memory=True)
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            host.copy_(t, non_blocking=True)
        t.record_stream(self.stream)  # freed on the compute stream, pending on this one
        self.offloaded += 1
        return (host, self.stream.record_event())

    def unpack(self, packed):
        if not isinstance(packed, tuple):
            return packed
        host, copied = packed
        self.torch.cuda.current_stream().wait_event(copied)
        return host.to("cuda", non_blocking=True)


def copy_gbps(torch, nbytes=256 << 20, reps=8):
    """GB/s of copies between a block of the allocator and pinned host memory."""
    dev = torch.ones(nbytes, dtype=torch.uint8, device="cuda")
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    out = {}
    for name, dst, src in (("d2h_GBps", host, dev), ("h2d_GBps", dev, host)):
        dst.copy_(src, non_blocking=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            dst.copy_(src, non_blocking=True)
        torch.cuda.synchronize()
        out[name] = nbytes * reps / (time.perf_counter() - t0) / 1e9
    return out


def profile_steps(torch, steps):
    """GPU time per step by kind (copies each way, memsets, kernels) and the
    largest entries, over the steps `steps()` runs under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _, step_s = steps()
    n = len(step_s)
    kinds, top = {"d2h": 0.0, "h2d": 0.0, "memset": 0.0, "kernels": 0.0}, []
    for e in prof.key_averages():
        if "CUDA" not in str(getattr(e, "device_type", "")):
            continue  # CPU ops: their GPU time is their kernels', counted there
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = getattr(e, "self_cuda_time_total", 0)
        kind = ("d2h" if "DtoH" in e.key else "h2d" if "HtoD" in e.key else
                "memset" if "Memset" in e.key else "kernels")
        kinds[kind] += us / 1e3 / n
        top.append((us / 1e3 / n, e.key[:80], e.count // n))
    top.sort(reverse=True)
    return {"step_ms": [x * 1e3 for x in step_s], "gpu_ms_per_step": kinds, "top": top[:10]}


def worker(alloc):
    import torch
    if alloc.startswith("umpool"):
        sys.path.insert(0, os.path.join(REPO, "python"))
        import umpool.torch
        umpool.torch.enable(mode="allocator")
    from record_workloads import llama
    model = llama(torch, 8, 1024, 16).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    offload = Offload(torch, model.parameters())
    inputs = torch.cuda.Stream()
    g = torch.Generator(device="cpu").manual_seed(4)

    def next_batch(seq):  # on the input stream, in memory allocated there
        cpu = torch.randint(3, 32000, (BATCH, seq), generator=g).pin_memory()
        with torch.cuda.stream(inputs):
            ids = cpu.to("cuda", non_blocking=True)
        return ids, inputs.record_event()

    def marker():  # an allocation of MARK_BYTES, freed at once: finish_trace finds it
        torch.empty(MARK_BYTES, dtype=torch.uint8, device="cuda")

    def train(lengths, hooks, mark_after=None):
        losses, step_s = [], []
        batch = next_batch(lengths[0])
        torch.cuda.synchronize()
        for step in range(len(lengths)):
            t0 = time.perf_counter()
            ids, ready = batch
            torch.cuda.current_stream().wait_event(ready)
            ids.record_stream(torch.cuda.current_stream())
            if step + 1 < len(lengths):
                batch = next_batch(lengths[step + 1])
            with torch.autograd.graph.saved_tensors_hooks(*hooks):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            del ids, loss
            torch.cuda.synchronize()
            step_s.append(time.perf_counter() - t0)
            if step == mark_after:  # an allocation --trace turns into the warm-up mark
                marker()
        return losses, step_s

    mark = os.environ.get("UMPOOL_MS_MARK")
    losses, step_s = train(LENGTHS * CYCLES, (offload.pack, offload.unpack),
                           len(LENGTHS) - 1 if mark else None)
    if mark:  # a second marker: --trace ends the trace there (the offloaded cycles only)
        marker()
    first = len(LENGTHS)
    res = {"first_cycle_s": sum(step_s[:first]),
           "steady_step_ms": statistics.median(step_s[first:]) * 1e3,
           "total_s": sum(step_s), "step_s": step_s, "losses": losses,
           "offloaded": offload.offloaded,
           "peak_reserved": torch.cuda.max_memory_reserved(),
           "peak_allocated": torch.cuda.max_memory_allocated(),
           "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if alloc.startswith("umpool"):
        import umpool
        s = umpool.memory_stats()
        res["umpool"] = {k: s[k] for k in UMPOOL_STATS}
    # Attribution, after the figures above: two cycles of the same steps
    # without offloading (the step's cost apart from other streams; the
    # second cycle's median) and the copy bandwidth between the allocator's
    # memory and pinned host memory.
    _, plain = train(LENGTHS * 2, (lambda t: t, lambda t: t))
    res["plain_step_ms"] = statistics.median(plain[len(LENGTHS):]) * 1e3
    res.update(copy_gbps(torch))
    if os.environ.get("UMPOOL_MS_PROFILE"):
        res["profile"] = profile_steps(torch, lambda: train((1024, 1024), (offload.pack, offload.unpack)))
    print(json.dumps(res), flush=True)


def run(alloc, conf=None):
    return run_worker(__file__, ["--worker", alloc], alloc, env=allocator_env(alloc, conf), timeout=900)


def loss_gap(xs, ref):
    """Largest relative difference between the losses of runs xs and ref's."""
    return max(abs(a - b) / abs(b) for x in xs for a, b in zip(x["losses"], ref["losses"]))


def report(a, runs, rounds):
    native = runs["native"][0]
    table = {}
    for alloc in runs:
        xs = runs[alloc]
        if not xs:
            continue
        t = table[alloc] = {
            "peak_reserved": max(x["peak_reserved"] for x in xs),
            "peak_allocated": max(x["peak_allocated"] for x in xs),
            "loss_gap_to_native": loss_gap(xs, native),
        }
        for key in ("first_cycle_s", "steady_step_ms", "plain_step_ms", "d2h_GBps", "h2d_GBps"):
            t[key] = statistics.median(x[key] for x in xs)
        t["reserved_over_allocated"] = t["peak_reserved"] / t["peak_allocated"]
        for key in ("first_cycle_s", "steady_step_ms", "plain_step_ms"):
            t[key + "_vs_native"] = table["native"][key] / t[key]
        if "umpool" in xs[-1]:
            t["umpool"] = xs[-1]["umpool"]
    lines = [f"Activation-offloading training on three streams, {native['gpu']}, torch "
             f"{native['torch']}, {rounds} rounds, allocator order rotated "
             f"(`bench/torch/multistream.py`; times: medians over rounds; (x): native's time / "
             f"this one's, higher is faster; loss gap: largest relative difference from native's "
             f"first run, native's own runs included).", "",
             "| allocator | peak reserved (MiB) | peak allocated (MiB) | reserved / allocated | "
             "first cycle (s) | later steps (ms) | steps without offload (ms) | D2H / H2D GB/s | "
             "loss gap | ordered reuses | device allocs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for alloc, t in table.items():
        u = t.get("umpool", {})
        lines.append(f"| {alloc} | {t['peak_reserved'] / 2**20:.1f} | {t['peak_allocated'] / 2**20:.1f} | "
                     f"{t['reserved_over_allocated']:.3f} | {t['first_cycle_s']:.3f} "
                     f"({t['first_cycle_s_vs_native']:.3f}) | {t['steady_step_ms']:.1f} "
                     f"({t['steady_step_ms_vs_native']:.3f}) | {t['plain_step_ms']:.1f} "
                     f"({t['plain_step_ms_vs_native']:.3f}) | {t['d2h_GBps']:.1f} / {t['h2d_GBps']:.1f} | "
                     f"{t['loss_gap_to_native']:.1e} | {u.get('umpool.ordered_reuses', '')} | "
                     f"{u.get('num_device_alloc', '')} |")
    text = "\n".join(lines)
    print(text, flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "multistream.json"), "w") as f:
            json.dump({"gpu": native["gpu"], "rounds": rounds, "table": table}, f, indent=1)
        with open(os.path.join(a.out, "multistream_runs.jsonl"), "w") as f:  # one run a line
            for alloc, xs in runs.items():
                for r, x in enumerate(xs):
                    f.write(json.dumps({"allocator": alloc, "run": r, **x}) + "\n")
        with open(os.path.join(a.out, "multistream.md"), "w") as f:
            f.write(text + "\n")


def finish_trace(path):
    """Puts the trace's warmup_end mark before the first marker allocation the
    worker made (after the first cycle; umpool-replay counts backend calls
    after it) and ends the trace before the second (after the offloaded
    cycles: the attribution runs after them are not the program). Blocks
    live there (weights, optimizer state) stay live at the trace's end."""
    with open(path) as f:
        lines = f.readlines()
    markers = [n for n, line in enumerate(lines)
               if line.startswith("a,") and line.split(",")[2] == str(MARK_BYTES)]
    if len(markers) < 2:
        raise SystemExit(f"{path}: {len(markers)} marker allocations of {MARK_BYTES} bytes, not 2")
    f = lines[markers[0]].split(",")
    # The mark keeps the marker's t_ns (and thread, if the trace has the column).
    mark = ",".join(["m", "0", "0", f[3], "0", "warmup_end"] + f[6:])
    lines = lines[:markers[0]] + [mark] + lines[markers[0]:markers[1]]
    with open(path, "w") as f:
        f.writelines(lines)


def profile_main(a):
    os.environ["UMPOOL_MS_PROFILE"] = "1"
    allocators = parse_allocators(a.allocators or "native,umpool")
    runs = {al: [] for al in allocators}
    for r in range(a.rounds):
        for alloc in rotated(allocators, r):
            p = run(alloc)["profile"]
            runs[alloc].append(p)
            g = p["gpu_ms_per_step"]
            print(f"round {r} {alloc:10s} steps {' '.join(f'{x:.0f}' for x in p['step_ms'])} ms; GPU ms "
                  f"a step: D2H {g['d2h']:.1f} H2D {g['h2d']:.1f} memset {g['memset']:.1f} "
                  f"kernels {g['kernels']:.1f}", flush=True)
            for ms, name, count in p["top"][:6]:
                print(f"    {ms:8.2f} ms x{count:<5d} {name}", flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "multistream_profile.json"), "w") as f:
            json.dump(runs, f, indent=1)


def load_runs(path):
    """The runs of a multistream_runs.jsonl (or of an older multistream.json's
    "raw"), by allocator, as report() takes them."""
    if path.endswith(".json"):
        with open(path) as f:
            return json.load(f)["raw"]
    runs = {}
    with open(path) as f:
        for line in f:
            x = json.loads(line)
            runs.setdefault(x.pop("allocator"), []).append(x)
            x.pop("run")
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--allocators",
                    help="which, in this order (native first: the table's reference); "
                         "default all six (with --profile: native,umpool)")
    ap.add_argument("--trace", metavar="FILE",
                    help="only run umpool once, recording its trace (UMPOOL_CONF trace:FILE) "
                         "for umpool-replay")
    ap.add_argument("--profile", action="store_true",
                    help="native and umpool (or --allocators), ROUNDS each: GPU time of two "
                         "1024-token steps "
                         "by kind under torch.profiler (OUT/multistream_profile.json)")
    ap.add_argument("--report", metavar="RUNS",
                    help="no runs: the table and files again from a multistream_runs.jsonl")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker)
        return
    if a.report:
        runs = load_runs(a.report)
        report(a, runs, max(len(xs) for xs in runs.values()))
        return
    if a.profile:
        profile_main(a)
        return
    if a.trace:
        os.environ["UMPOOL_MS_MARK"] = "1"
        res = run("umpool", conf=f"trace:{os.path.abspath(a.trace)}")
        finish_trace(a.trace)
        print(f"{a.trace}: peak reserved {res['peak_reserved'] / 2**20:.1f} MiB allocated "
              f"{res['peak_allocated'] / 2**20:.1f} MiB {res['umpool']}")
        return
    allocators = parse_allocators(a.allocators or ",".join(ALLOCATORS))
    runs = {al: [] for al in allocators}
    for r in range(a.rounds):
        for alloc in rotated(allocators, r):
            res = run(alloc)
            runs[alloc].append(res)
            print(f"round {r} {alloc:11s} reserved {res['peak_reserved'] / 2**20:8.1f} MiB allocated "
                  f"{res['peak_allocated'] / 2**20:8.1f} MiB first cycle {res['first_cycle_s']:.3f} s "
                  f"later steps {res['steady_step_ms']:.1f} ms without offload {res['plain_step_ms']:.1f} ms "
                  f"D2H {res['d2h_GBps']:.1f} H2D {res['h2d_GBps']:.1f} GB/s {res.get('umpool', '')}",
                  flush=True)
        if runs["native"]:
            report(a, runs, r + 1)  # after every round: a time limit loses only the last


if __name__ == "__main__":
    main()
