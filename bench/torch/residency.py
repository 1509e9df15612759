#!/usr/bin/env python3
"""Sleep, wake and discard on one card, measured for issue 15.

Writes OUT/residency.json (and residency.md):
  discard_reuse_vs_plain   BM_ResidentKvReuse with discard on free / without
                           (pool_benchmark: 32 x 16 MiB KV freed, reused, written)
  evicted_kv_reuse_gain    BM_EvictedKvReuse without discard / with
  sleep_benchmark          sleep_benchmark: 16 GiB of weights offloaded by
                           staging and by eviction, sleep and wake seconds
  engine                   a Llama-style transformers model with >= 16 GiB of
                           bf16 weights (weights MemPool), a KV pool (kv
                           MemPool) and a CUDA graph captured before sleeping,
                           under umpool.torch.enable(); the staging buffer
                           pinned by reserve_staging, then five cycles:
                             1, 2 sleep/wake
                             3 the card filled by cudaMalloc, sleep, a second
                               process (native PyTorch) takes what it can, wake;
                               then a plain sleep/wake
                             4 the same with cudaMalloc in this process
                             5 a sleep that only discards (KV, default)
                           after each wake: the graph replays to the same
                           output; after the last, every weight is compared
                           bit for bit at the same data_ptr
  sleep_s_16GiB, wake_s_16GiB, discard_sleep_s, reclaimable_fraction,
  graph_replay_after_wake_matches, weights_identical_after_wake: the engine's
  (the slowest sleep and wake of the full cycles, each listed in
  sleep_s_each / wake_s_each; the smaller of the two reclaimed fractions).
The other allocators always give their memory back before umpool wakes.

Usage (repository root, GPU machine, libumpool.so and the benchmarks built):
  PYTHONPATH=python python3 bench/torch/residency.py --out DIR \\
      --bin .gpu-stage/bin
"""
import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GIB = 1 << 30
CHUNK_TAIL = 64 << 20  # the second allocator's last pieces


def bench_json(binary, args):
    p = subprocess.run([binary, "--benchmark_format=json"] + args, capture_output=True, text=True,
                       timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{binary} failed:\n{p.stderr[-2000:]}")
    return {b["name"]: b for b in json.loads(p.stdout)["benchmarks"]}


def kv_reuse(binary):
    b = bench_json(binary, ["--benchmark_filter=KvReuse"])
    t = {n.split("/")[0][3:] + "/" + n.split("discard:")[1].split("/")[0]: b[n]["real_time"]
         for n in b}
    return {
        "kv_reuse_ms": {k: v / 1e6 for k, v in t.items()},  # real_time is in ns
        "discard_reuse_vs_plain": t["ResidentKvReuse/1"] / t["ResidentKvReuse/0"],
        "evicted_kv_reuse_gain": t["EvictedKvReuse/0"] / t["EvictedKvReuse/1"],
    }


def sleep_bench(binary):
    b = bench_json(binary, [])
    keep = ("GiB", "first_sleep_s", "first_wake_s", "sleep_s", "wake_s", "sleep_GB/s",
            "wake_GB/s", "freed_GiB")
    return {n: {k: b[n][k] for k in keep if k in b[n]} for n in b}


# --- the second process: native PyTorch takes what it can ---------------------

def trainer(limit_gib):
    """Takes what it can, up to `limit_gib`: 1 GiB tensors, then 64 MiB ones
    (each written), so the figure is not rounded down to whole GiB."""
    import torch
    free0, _ = torch.cuda.mem_get_info()
    held, got = [], 0
    for chunk in (GIB, CHUNK_TAIL):
        try:
            while got + chunk <= limit_gib * GIB:
                t = torch.empty(chunk, dtype=torch.uint8, device="cuda")
                t.fill_(1)
                torch.cuda.synchronize()
                held.append(t)
                got += chunk
        except torch.OutOfMemoryError:
            pass
    print(json.dumps({"free_at_start": free0, "obtained": got}))


# --- the engine: umpool under PyTorch -----------------------------------------

def cudart():
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            pass
    raise RuntimeError("libcudart not found")


def cuda_malloc_chunks(rt, limit, tail=False):
    """cudaMalloc 1 GiB chunks (each written) until one fails or `limit` GiB;
    with `tail`, then 64 MiB ones. Returns [(pointer, bytes)]."""
    held, got = [], 0
    for chunk in (GIB, CHUNK_TAIL) if tail else (GIB,):
        while got + chunk <= limit * GIB:
            p = ctypes.c_void_p()
            if rt.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(chunk)) != 0:
                rt.cudaGetLastError()
                break
            rt.cudaMemset(p, 1, ctypes.c_size_t(chunk))
            held.append((p, chunk))
            got += chunk
    rt.cudaDeviceSynchronize()
    return held


def free_chunks(rt, held):
    for p, _ in held:
        rt.cudaFree(p)


def engine(weights_gib, kv_gib):
    sys.path.insert(0, os.path.join(REPO, "python"))
    import torch
    import umpool
    import umpool.torch
    umpool.torch.enable()
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers
    transformers.logging.set_verbosity_error()
    rt = cudart()
    h, inter, heads, kvh, vocab = 4096, 14336, 32, 8, 32000
    per_layer = 2 * h * h + 2 * h * (h * kvh // heads) + 3 * h * inter + 2 * h
    # Whole layers below the target, the vocabulary (embedding and head,
    # a multiple of 64) grown to reach it: weights_gib of weights, not a
    # layer's 0.4 GiB more.
    layers = math.floor((weights_gib * GIB / 2 - 2 * vocab * h - h) / per_layer)
    vocab = 64 * math.ceil((weights_gib * GIB / 2 - layers * per_layer - h) / (2 * h * 64))
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=h, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kvh, max_position_embeddings=2048)
    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "umpool_mode": umpool.torch.mode(), "umpool_conf": os.environ.get("UMPOOL_CONF"),
           "layers": layers}
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.cuda.use_mem_pool(umpool.torch.mem_pool("weights")):
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
        torch.set_default_dtype(default_dtype)
    model.eval()
    params = list(model.parameters())
    out["weights_bytes"] = sum(p.numel() * p.element_size() for p in params)
    with torch.cuda.use_mem_pool(umpool.torch.mem_pool("kv")):
        kv = [torch.ones(256 << 20, dtype=torch.uint8, device="cuda")
              for _ in range(int(kv_gib * 4))]
    out["kv_bytes"] = sum(t.numel() for t in kv)
    out["build_s"] = time.perf_counter() - t0

    ids_cpu = torch.randint(0, vocab, (1, 64), generator=torch.Generator().manual_seed(1))
    ids = ids_cpu.cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(2):
            model(ids, use_cache=False)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        logits = model(ids, use_cache=False).logits
    graph.replay()
    ref = logits.float().cpu()
    ptrs = [p.data_ptr() for p in params]
    saved = [p.detach().cpu() for p in params]
    torch.cuda.synchronize()
    slept = out["weights_bytes"] + out["kv_bytes"]
    full = dict(offload=("weights",), discard=("kv", "default", "activations"))

    def timed(f):
        torch.cuda.synchronize()
        t = time.perf_counter()
        f()
        torch.cuda.synchronize()
        return time.perf_counter() - t

    def replay_matches():
        ids.copy_(ids_cpu.cuda())  # the static input slept with "default"
        graph.replay()
        return torch.equal(ref, logits.float().cpu())

    cycles = []
    # Pinning the staging buffer up front (an engine does it after loading).
    out["reserve_staging_s"] = timed(lambda: umpool.reserve_staging(offload=("weights",)))
    # 1: two plain cycles.
    for _ in range(2):
        c = {"sleep_s": timed(lambda: umpool.sleep(**full))}
        c["wake_s"] = timed(umpool.wake_up)
        c["graph_matches"] = replay_matches()
        cycles.append(c)
    # 2 and 3: the card filled, then a second allocator takes what the sleep gave.
    for who in ("second_process", "same_process"):
        free, total = torch.cuda.mem_get_info()
        filler = cuda_malloc_chunks(rt, max(0, free // GIB - 3))
        c = {"who": who, "filler_bytes": sum(b for _, b in filler),
             "free_before_sleep": torch.cuda.mem_get_info()[0]}
        c["sleep_s"] = timed(lambda: umpool.sleep(**full))
        c["free_while_asleep"] = torch.cuda.mem_get_info()[0]
        limit = int(slept * 1.2 / GIB) + 4
        if who == "second_process":
            p = subprocess.run([sys.executable, __file__, "--trainer", str(limit)],
                               capture_output=True, text=True, timeout=600)
            got = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {}
            c["trainer_stderr"] = p.stderr[-500:] if p.returncode != 0 else ""
            obtained, free0 = got.get("obtained", 0), got.get("free_at_start", 0)
        else:
            free0 = torch.cuda.mem_get_info()[0]
            held = cuda_malloc_chunks(rt, limit, tail=True)
            obtained = sum(b for _, b in held)
            free_chunks(rt, held)
        c["obtained"], c["free_at_start"] = obtained, free0
        # Beyond what was free before the sleep or at its own start, whichever
        # is less: managed memory's slept pages never show as free (the second
        # allocator makes the driver evict them), vmm's do.
        c["reclaimed_fraction"] = max(0, obtained - min(free0, c["free_before_sleep"])) / slept
        free_chunks(rt, filler)  # the other allocators give back before umpool wakes
        rt.cudaDeviceSynchronize()
        c["wake_s"] = timed(umpool.wake_up)
        c["graph_matches"] = replay_matches()
        cycles.append(c)
        if who == "second_process":
            # A plain cycle right after the wake that followed another process:
            # the sleep after it was the slow one in the ninth session's runs.
            c = {"who": "after_second_process", "sleep_s": timed(lambda: umpool.sleep(**full))}
            c["wake_s"] = timed(umpool.wake_up)
            c["graph_matches"] = replay_matches()
            cycles.append(c)
    # 4: a sleep that only discards.
    c = {"discard_sleep_s": timed(lambda: umpool.sleep(discard=("kv", "default", "activations")))}
    c["wake_s"] = timed(umpool.wake_up)
    c["graph_matches"] = replay_matches()
    cycles.append(c)
    out["cycles"] = cycles
    out["same_data_ptr"] = ptrs == [p.data_ptr() for p in params]
    out["weights_identical"] = out["same_data_ptr"] and all(
        torch.equal(a, p.detach().cpu()) for a, p in zip(saved, params))
    out["slept_bytes"] = slept
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--bin", default=os.path.join(REPO, ".gpu-stage", "bin"))
    ap.add_argument("--weights-gib", type=float, default=16.0)
    ap.add_argument("--kv-gib", type=float, default=4.0)
    ap.add_argument("--umpool-conf", default=None,
                    help="UMPOOL_CONF for the engine (e.g. backend:vmm)")
    ap.add_argument("--skip-benchmarks", action="store_true",
                    help="the engine only (no pool_benchmark / sleep_benchmark runs)")
    ap.add_argument("--trainer", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--engine", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.trainer is not None:
        return trainer(a.trainer)
    if a.engine:
        return engine(a.weights_gib, a.kv_gib)
    res = {"command": " ".join(["bench/torch/residency.py"] + sys.argv[1:])}
    res["umpool_conf"] = a.umpool_conf
    res["sleep_benchmark"] = {}
    if not a.skip_benchmarks:
        res.update(kv_reuse(os.path.join(a.bin, "pool_benchmark")))
        res["sleep_benchmark"] = sleep_bench(os.path.join(a.bin, "sleep_benchmark"))
    env = dict(os.environ)
    if a.umpool_conf is not None:
        env["UMPOOL_CONF"] = a.umpool_conf
    p = subprocess.run([sys.executable, __file__, "--engine", "--weights-gib", str(a.weights_gib),
                        "--kv-gib", str(a.kv_gib)], capture_output=True, text=True, timeout=1200,
                       env=env)
    if p.returncode != 0:
        res["engine_error"] = p.stderr[-3000:]
    else:
        eng = json.loads(p.stdout.strip().splitlines()[-1])
        res["engine"] = eng
        cyc = eng["cycles"]
        res["gpu"] = eng["gpu"]
        res["reserve_staging_s_16GiB"] = eng["reserve_staging_s"]
        full = [c for c in cyc if "sleep_s" in c]
        res["sleep_s_16GiB"] = max(c["sleep_s"] for c in full)
        res["wake_s_16GiB"] = max(c["wake_s"] for c in full)
        res["sleep_s_each"] = [round(c["sleep_s"], 4) for c in full]
        res["wake_s_each"] = [round(c["wake_s"], 4) for c in full]
        res["discard_sleep_s"] = next(c["discard_sleep_s"] for c in cyc if "discard_sleep_s" in c)
        res["reclaimable_fraction"] = min(c["reclaimed_fraction"] for c in cyc
                                          if "reclaimed_fraction" in c)
        res["graph_replay_after_wake_matches"] = all(c["graph_matches"] for c in cyc)
        res["weights_identical_after_wake"] = eng["weights_identical"]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "residency.json"), "w") as f:
        json.dump(res, f, indent=1)
    rows = [(k, res.get(k)) for k in (
        "gpu", "discard_reuse_vs_plain", "evicted_kv_reuse_gain", "reserve_staging_s_16GiB",
        "sleep_s_16GiB", "wake_s_16GiB", "sleep_s_each", "wake_s_each", "discard_sleep_s",
        "reclaimable_fraction", "graph_replay_after_wake_matches", "weights_identical_after_wake")]
    for n, b in res["sleep_benchmark"].items():
        rows.append((n, ", ".join(f"{k} {v:.3g}" for k, v in b.items())))
    table = "| figure | value |\n|---|---|\n" + "\n".join(
        f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows)
    with open(os.path.join(a.out, "residency.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    if "engine_error" in res:
        print(res["engine_error"])


if __name__ == "__main__":
    main()
