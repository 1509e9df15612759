#!/usr/bin/env python3
"""Host-to-device copies into blocks of PyTorch's allocator or umpool's, per
size: pageable `.cuda()` (what a training loop's inputs made on the CPU do),
pinned `.cuda()`, and pinned `.cuda(non_blocking=True)`. The ViT workload of
bench/torch/memory.py copies 19-57 MiB of images per step this way.

  python3 bench/probes/h2d_copy.py [--allocators native,umpool] [--procs 3]

Each allocator runs in its own processes, alternated; per size and kind the
median over processes of each process's median of 20 timed copies (ms)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES_MIB = (4, 19, 57)


def worker(alloc):
    import torch
    if alloc.startswith("umpool"):
        sys.path.insert(0, os.path.join(REPO, "python"))
        import umpool.torch
        umpool.torch.enable(mode="allocator")
    out = {}
    for mib in SIZES_MIB:
        host = torch.randn(mib << 18)  # fp32: mib MiB
        pinned = host.pin_memory()
        kinds = {"pageable": lambda: host.cuda(), "pinned": lambda: pinned.cuda(),
                 "pinned_async": lambda: pinned.cuda(non_blocking=True)}
        for kind, f in kinds.items():
            for _ in range(3):
                f()
            times = []
            for _ in range(20):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                y = f()
                torch.cuda.synchronize()
                times.append((time.perf_counter() - t0) * 1e3)
                del y
            out[f"{kind} {mib} MiB"] = statistics.median(times)
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--allocators", default="native,umpool")
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--worker")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker)
        return
    allocs = a.allocators.split(",")
    got = {x: [] for x in allocs}
    for p in range(a.procs):
        for x in allocs[p % len(allocs):] + allocs[:p % len(allocs)]:
            r = subprocess.run([sys.executable, __file__, "--worker", x], capture_output=True,
                               text=True, check=True)
            got[x].append(json.loads(r.stdout.strip().splitlines()[-1]))
    import torch
    print(f"H2D copies, {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"{a.procs} processes per allocator (ms, median)")
    print("| copy | " + " | ".join(allocs) + " | " + " | ".join(f"{x} / {allocs[0]}" for x in allocs[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(allocs) - 1))
    for key in got[allocs[0]][0]:
        med = [statistics.median(r[key] for r in got[x]) for x in allocs]
        print(f"| {key} | " + " | ".join(f"{m:.3f}" for m in med) + " | "
              + " | ".join(f"{m / med[0]:.3f}" for m in med[1:]) + " |")


if __name__ == "__main__":
    main()
