#!/usr/bin/env python3
"""umpool under PyTorch, against the allocators it replaces, in one run on one card.

Modes (each runs in its own process: PyTorch picks its allocator once):
  native           PyTorch's CUDACachingAllocator
  seed             the original per-request managed allocator (bench/torch/seed_alloc.cc)
  mempool_managed  torch.cuda.MemPool over a plain managed pluggable allocator (Megatron-LM style)
  umpool           umpool.torch.enable(): every tensor through PyTorch's pluggable-allocator path
  umpool_mempool   umpool.torch.enable(mode="mempool"): PyTorch's caching allocator on umpool segments

Workloads:
  empty_del   torch.empty + del, us per pair, at 4 KiB, 1 MiB, 64 MiB
  mlp_step    one training step of an 8-layer bf16 MLP (launch-bound), ms
  generate    greedy generation, randomly initialised 12-layer Llama-style model
              (transformers, no downloads), 8 sequences x 128 new tokens, tokens/s;
              the generated tokens are hashed and must agree across modes

The modes are alternated for --rounds rounds and the median of each figure is
reported. Usage (from the repository root, on a GPU machine):
  python3 bench/torch/bench_torch.py --seed-lib build/bench/libumpool_seed_alloc.so --out DIR
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("native", "seed", "mempool_managed", "umpool", "umpool_mempool")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# The allocators the side-by-side benchmarks (memory.py, multistream.py) run,
# one table: name -> (PYTORCH_CUDA_ALLOC_CONF, UMPOOL_CONF). umpool is
# umpool.torch.enable() as a user gets it: the C defaults plus its
# TORCH_PROFILE (drain_idle_caches:on, give_back_slack:0.01; docs/conf.md,
# "Under PyTorch"). The umpool_* variants change one thing: umpool_c_defaults
# the C defaults (no profile), umpool_nodrain drain_idle_caches:off,
# umpool_wait reuse_pending_blocks:0 (grows rather than reuse blocks pending
# behind other streams), umpool_keep_pages give_back_free_pages:0 (no pages
# given back), umpool_slack3 give_back_slack:0.03 (the C default),
# umpool_slab256k default.slab_max:256KiB (the default role's 256 KiB-1 MiB
# requests best-fit blocks of its large space, not slab classes), umpool_vmm
# backend:vmm (GPU memory through CUDA's virtual memory API instead of
# managed memory).
ALLOCATOR_ENVS = {
    "native": (None, None),
    "expandable": ("expandable_segments:True", None),
    "umpool": (None, None),
    "umpool_wait": (None, "reuse_pending_blocks:0"),
    "umpool_keep_pages": (None, "give_back_free_pages:0"),
    "umpool_c_defaults": (None, "drain_idle_caches:off,give_back_slack:0.03"),
    "umpool_nodrain": (None, "drain_idle_caches:off"),
    "umpool_slack3": (None, "give_back_slack:0.03"),
    "umpool_slab256k": (None, "default.slab_max:256KiB"),
    "umpool_vmm": (None, "backend:vmm"),
}


def allocator_env(alloc, umpool_conf=None):
    """os.environ with `alloc`'s settings (ALLOCATOR_ENVS) and `umpool_conf`
    (more UMPOOL_CONF options) added."""
    env = dict(os.environ)
    torch_conf, conf = ALLOCATOR_ENVS[alloc]
    if torch_conf:
        env["PYTORCH_CUDA_ALLOC_CONF"] = torch_conf
    confs = [c for c in (conf, umpool_conf) if c]
    if confs:
        env["UMPOOL_CONF"] = ",".join(confs)
    return env


def parse_allocators(text):
    """The allocators of a comma-separated --allocators value, checked: each
    one of ALLOCATOR_ENVS, native first (the tables' reference)."""
    allocators = text.split(",")
    if set(allocators) - set(ALLOCATOR_ENVS) or allocators[0] != "native":
        raise SystemExit(f"--allocators: native first, then any of {', '.join(ALLOCATOR_ENVS)}")
    return allocators


def rotated(allocators, r):
    """Round r's order: the allocators rotated by r (each leads in turn)."""
    k = r % len(allocators)
    return allocators[k:] + allocators[:k]


def run_worker(script, args, what, env=None, timeout=1500):
    """Runs `script` with `args` in a fresh Python process (PyTorch picks its
    allocator once, before CUDA starts) and returns the JSON object it printed
    last; exits naming `what` with the end of its output if it failed."""
    p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"{what} failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])


def empty_del_us(torch, nbytes, iters, warmup):
    """Microseconds per torch.empty(nbytes) + del on the current stream, after warmup pairs."""
    for _ in range(warmup):
        t = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        del t
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        t = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        del t
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e6


def worker(mode, seed_lib, quick):
    import torch

    ctx = None
    if mode in ("umpool", "umpool_mempool"):
        sys.path.insert(0, os.path.join(REPO, "python"))
        import umpool.torch
        umpool.torch.enable(mode="pluggable" if mode == "umpool" else "mempool")
    elif mode == "seed":
        alloc = torch.cuda.memory.CUDAPluggableAllocator(seed_lib, "seed_malloc", "seed_free")
        torch.cuda.memory.change_current_allocator(alloc)
    elif mode == "mempool_managed":
        alloc = torch.cuda.memory.CUDAPluggableAllocator(seed_lib, "managed_malloc", "managed_free")
        pool = torch.cuda.MemPool(alloc.allocator())
        ctx = torch.cuda.use_mem_pool(pool)
        ctx.__enter__()
    elif mode != "native":
        raise SystemExit(f"unknown mode {mode}")

    out = {"mode": mode, "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}

    # 1. torch.empty + del
    out["empty_del_us"] = {}
    for nbytes, iters in ((4096, 20000), (1 << 20, 20000), (64 << 20, 5000)):
        if quick:
            iters //= 10
        if mode == "seed":
            iters = min(iters, 2000)
        out["empty_del_us"][str(nbytes)] = empty_del_us(torch, nbytes, iters, warmup=100)

    # 2. 8-layer bf16 MLP training step
    torch.manual_seed(0)
    layers = []
    for _ in range(8):
        layers += [torch.nn.Linear(1024, 1024), torch.nn.GELU()]
    mlp = torch.nn.Sequential(*layers).to(device="cuda", dtype=torch.bfloat16)
    opt = torch.optim.AdamW(mlp.parameters(), lr=1e-4)
    x = torch.randn(64, 1024, device="cuda", dtype=torch.bfloat16)

    def step():
        loss = mlp(x).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(20):
        step()
    torch.cuda.synchronize()
    steps = 40 if quick else 200
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    out["mlp_step_ms"] = (time.perf_counter() - t0) / steps * 1e3
    del mlp, opt, x

    # 3. greedy generation with a random Llama-style model
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers
    transformers.logging.set_verbosity_error()
    cfg = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816,
                      num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=16,
                      max_position_embeddings=1024, pad_token_id=0, bos_token_id=1,
                      eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).to("cuda").eval()
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(3, 32000, (8, 16), generator=g).to("cuda")
    new = 16 if quick else 128
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        gen = model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    out["generate_tok_s"] = ids.shape[0] * new / dt
    out["tokens_sha1"] = hashlib.sha1(gen.cpu().numpy().tobytes()).hexdigest()[:16]
    if mode in ("umpool", "umpool_mempool"):
        import umpool
        s = umpool.memory_stats()
        out["umpool_stats"] = {k: s[k] for k in (
            "allocation.all.allocated", "num_device_alloc", "umpool.cache_hits",
            "reserved_bytes.all.peak", "allocated_bytes.all.peak")}
    if ctx is not None:
        ctx.__exit__(None, None, None)
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--seed-lib", default=os.path.join(REPO, "build", "bench", "libumpool_seed_alloc.so"))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="short run (smoke test)")
    ap.add_argument("--out", help="directory for results.json and results.md")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.seed_lib, a.quick)
        return
    modes = a.modes.split(",")
    runs = {m: [] for m in modes}
    for r in range(a.rounds):
        for m in (modes if r % 2 == 0 else list(reversed(modes))):  # alternate the order
            args = ["--worker", m, "--seed-lib", a.seed_lib] + (["--quick"] if a.quick else [])
            res = run_worker(__file__, args, f"mode {m}", timeout=1200)
            runs[m].append(res)
            print(f"round {r} {m}: mlp {res['mlp_step_ms']:.3f} ms, "
                  f"{res['generate_tok_s']:.1f} tok/s, empty+del 4K {res['empty_del_us']['4096']:.2f} us",
                  flush=True)

    def med(m, f):
        return statistics.median(f(x) for x in runs[m])

    gpu = runs[modes[0]][0]["gpu"]
    rows = []
    figures = [("torch.empty+del 4 KiB (us)", lambda x: x["empty_del_us"]["4096"], False),
               ("torch.empty+del 1 MiB (us)", lambda x: x["empty_del_us"][str(1 << 20)], False),
               ("torch.empty+del 64 MiB (us)", lambda x: x["empty_del_us"][str(64 << 20)], False),
               ("8-layer bf16 MLP step (ms)", lambda x: x["mlp_step_ms"], False),
               ("greedy generation (tok/s)", lambda x: x["generate_tok_s"], True)]
    base = "native" if "native" in modes else modes[0]
    lines = [f"PyTorch workloads on {gpu}, torch {runs[modes[0]][0]['torch']}, median of "
             f"{a.rounds} alternating rounds (`bench/torch/bench_torch.py`).", "",
             "| figure | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for name, f, _higher in figures:
        cells = []
        for m in modes:
            v = med(m, f)
            ratio = v / med(base, f)
            cells.append(f"{v:.2f} ({ratio:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        rows.append({"figure": name, **{m: med(m, f) for m in modes}})
    hashes = {m: sorted({x["tokens_sha1"] for x in runs[m]}) for m in modes}
    same = len({h for hs in hashes.values() for h in hs}) == 1
    lines += ["", f"Ratios are to {base} (time: lower is better; tok/s: higher is better).",
              f"Generated tokens identical across modes and rounds: {'yes' if same else 'NO'} "
              f"({hashes})."]
    text = "\n".join(lines)
    print("\n" + text)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "torch_results.json"), "w") as fh:
            json.dump({"runs": runs, "medians": rows, "same_tokens": same}, fh, indent=1)
        with open(os.path.join(a.out, "torch_results.md"), "w") as fh:
            fh.write(text + "\n")
    if not same:
        sys.exit(2)


if __name__ == "__main__":
    main()
