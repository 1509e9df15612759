#!/usr/bin/env python3
"""Where generation (or training) time goes, native vs umpool: torch.profiler
over greedy generation or AdamW training steps (the torch_integration models),
CPU-side ops and CUDA runtime calls by total time, the GPU's kernel time, and
the speed. One process per allocator.

  PYTHONPATH=python python3 bench/torch/profile_generate.py native|umpool [--tokens N]
      [--workload generate|train]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_integration import llama, setup, trainer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("use", choices=("native", "umpool"))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--top", type=int, default=18)
    ap.add_argument("--out")
    ap.add_argument("--workload", choices=("generate", "train"), default="generate")
    a = ap.parse_args()
    torch = setup(a.use)
    if a.workload == "train":
        return train(torch, a)
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
    print(f"== {a.use}: {8 * a.tokens / min(times):.1f} tok/s (best of 3: "
          f"{', '.join(f'{t * 1e3:.1f}' for t in times)} ms)")
    report(prof, a, "generate", 1, torch)


def train(torch, a, steps=5):
    """AdamW steps of the torch_integration training workload."""
    step = trainer(torch)

    for _ in range(5):
        step()
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / steps)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    print(f"== {a.use}: {min(times) * 1e3:.2f} ms per training step (best of 3 chunks: "
          f"{', '.join(f'{t * 1e3:.2f}' for t in times)} ms)")
    report(prof, a, "train", steps, torch)


def report(prof, a, what, steps, torch):
    ka = prof.key_averages()
    rows = sorted(ka, key=lambda e: e.cpu_time_total, reverse=True)
    gpu = [e for e in ka if getattr(getattr(e, "device_type", None), "name", "") == "CUDA"]
    kernels = sum(e.self_device_time_total for e in gpu)
    print(f"GPU kernel time: {kernels / 1e3 / steps:.3f} ms per {'step' if steps > 1 else 'run'}")
    for e in sorted(gpu, key=lambda e: e.self_device_time_total, reverse=True)[:a.top]:
        print(f"  kernel {e.key[:60]:60s} {e.count:6d} {e.self_device_time_total / 1e3 / steps:9.3f} ms")
    print(f"== {a.use}: profiled {what}")
    print(f"{'op':48s} {'calls':>7s} {'cpu total ms':>12s} {'self ms':>9s} {'cuda ms':>9s}")
    for e in rows[:a.top]:
        print(f"{e.key[:48]:48s} {e.count:7d} {e.cpu_time_total / 1e3:12.2f} "
              f"{e.self_cpu_time_total / 1e3:9.2f} {getattr(e, 'device_time_total', 0) / 1e3:9.2f}")
    rt = [e for e in ka if e.key.startswith("cuda")]
    print("-- CUDA runtime calls")
    for e in sorted(rt, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]:
        print(f"{e.key[:48]:48s} {e.count:7d} {e.self_cpu_time_total / 1e3:12.2f}")
    if a.out:
        prof.export_chrome_trace(os.path.join(a.out, f"{what}_{a.use}.trace.json"))
        ops = [{"op": e.key, "calls": e.count, "cpu_total_us": e.cpu_time_total / steps,
                "self_cpu_us": e.self_cpu_time_total / steps,
                "device_us": getattr(e, "device_time_total", 0) / steps} for e in ka]
        write_ops(os.path.join(a.out, f"{what}_{a.use}.ops.json"),
                  {"card": torch.cuda.get_device_name(), "use": a.use,
                   "per": "step" if steps > 1 else "run"}, ops)


def write_ops(path, head, ops):
    """One JSON document, one op to a line (about 200 lines for a training
    profile): head's keys, then "ops"."""
    with open(path, "w") as f:
        f.write(json.dumps(head)[:-1] + ', "ops": [\n')
        f.write(",\n".join(json.dumps(op) for op in ops))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
