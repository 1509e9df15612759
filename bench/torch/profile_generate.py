#!/usr/bin/env python3
"""Where generation time goes, native vs umpool: torch.profiler over greedy
generation (the torch_integration model), CPU-side ops and CUDA runtime calls
by total time, and steps per second. One process per allocator.

  PYTHONPATH=python python3 bench/torch/profile_generate.py native|umpool [--tokens N]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_integration import llama, setup  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("use", choices=("native", "umpool"))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--top", type=int, default=18)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch = setup(a.use)
    model = llama(torch, 12, 1024, 16, torch.bfloat16).eval()
    ids = torch.randint(3, 32000, (8, 16), generator=torch.Generator().manual_seed(1)).cuda()
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=a.tokens, min_new_tokens=a.tokens, do_sample=False)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model.generate(ids, max_new_tokens=a.tokens, min_new_tokens=a.tokens, do_sample=False)
            torch.cuda.synchronize()
    ka = prof.key_averages()
    rows = sorted(ka, key=lambda e: e.cpu_time_total, reverse=True)
    print(f"== {a.use}: {8 * a.tokens / min(times):.1f} tok/s (best of 3: "
          f"{', '.join(f'{t * 1e3:.1f}' for t in times)} ms)")
    print(f"{'op':48s} {'calls':>7s} {'cpu total ms':>12s} {'self ms':>9s} {'cuda ms':>9s}")
    for e in rows[:a.top]:
        print(f"{e.key[:48]:48s} {e.count:7d} {e.cpu_time_total / 1e3:12.2f} "
              f"{e.self_cpu_time_total / 1e3:9.2f} {getattr(e, 'device_time_total', 0) / 1e3:9.2f}")
    rt = [e for e in ka if e.key.startswith("cuda")]
    print("-- CUDA runtime calls")
    for e in sorted(rt, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]:
        print(f"{e.key[:48]:48s} {e.count:7d} {e.self_cpu_time_total / 1e3:12.2f}")
    if a.out:
        prof.export_chrome_trace(os.path.join(a.out, f"generate_{a.use}.trace.json"))


if __name__ == "__main__":
    main()
