#!/usr/bin/env python3
"""umpool's own PyTorch allocator against PyTorch's, in one run on one card.

Writes OUT/torch_integration.json (and .md, and the duel's raw rounds in
OUT/torch_integration_rounds.jsonl) with what issue 13 asks for:
  compile_matches_native        torch.compile(mode="reduce-overhead") of a
                                Llama-style transformers model over several
                                input shapes (the graph tree branches) and of
                                a training step: logits and losses equal native's
  oom_is_torch_OutOfMemoryError a request over the cap raises it; training goes on
  memory_stats_within_1pct      torch.cuda.memory_stats() peaks vs umpool's own
  memory_viz_snapshot_ok        _record_memory_history + _dump_snapshot load in
                                torch.cuda._memory_viz (trace and segment plots)
                                with stack frames
  empty_del_vs_native           torch.empty + del time, umpool / native, at
                                4 KiB, 1 MiB and 64 MiB
  generate / train              tokens/s of greedy generation (12-layer
                                Llama-style, 8 x 128 tokens) and ms per training
                                step (8-layer Llama-style, bf16, AdamW), with the
                                tokens and losses compared
  vit (--tasks ...,vit)         ms per ViT-Base training step (bf16 autocast,
                                AdamW, batches 64/32/96/48 copied from host
                                memory: memory.py's vit workload)
Speed is timed by bench/torch/duel.py: one long-lived worker process per
allocator (PyTorch picks its allocator once per process), both loaded and
warmed up, timing one short chunk each in turn with the order alternating
every round (empty+del 5000 pairs per size, 5 training steps, one 8 x 32-token
generation), so each round's two figures are taken under the same host load;
the report is the median of the per-round ratios, with quartiles. The checks
(compile, memory_stats, snapshot, OOM) run in processes of their own.

Usage (repository root, GPU machine, libumpool.so built):
  PYTHONPATH=python python3 bench/torch/torch_integration.py --out DIR
"""
import argparse
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench_torch import empty_del_us, run_worker  # noqa: E402  (shared with bench_torch.py)
import duel  # noqa: E402
from micro_ops import op_tasks, timed_chunk  # noqa: E402


def setup(use):
    import torch
    if use == "umpool":
        sys.path.insert(0, os.path.join(REPO, "python"))
        import umpool.torch
        umpool.torch.enable(mode="allocator")
    return torch


def llama(torch, layers, hidden, heads, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers
    transformers.logging.set_verbosity_error()
    cfg = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, max_position_embeddings=1024, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(dtype).to("cuda")


def trainer(torch):
    """The training workload: 8-layer Llama-style, bf16, AdamW, four batches of
    8 x 256 tokens in turn. Returns step(), which runs one step and returns its
    loss (a tensor: no synchronisation)."""
    model = llama(torch, 8, 1024, 16, torch.bfloat16).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator(device="cpu").manual_seed(2)
    batches = [torch.randint(3, 32000, (8, 256), generator=g).cuda() for _ in range(4)]
    steps = [0]

    def step():
        ids = batches[steps[0] % len(batches)]
        steps[0] += 1
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


EMPTY_DEL = (("4KiB", 4096), ("1MiB", 1 << 20), ("64MiB", 64 << 20))
TRAIN_STEPS, GEN_TOKENS = 5, 32


def vit_trainer(torch):
    """A duel task: four AdamW steps of a ViT-Base classifier (fp32 weights,
    bf16 autocast), one per batch of 64, 32, 96 and 48 images copied from
    pageable host memory as a data loader's would be (bench/torch/memory.py's
    vit workload, whose memory figures are one run; this times it)."""
    from record_workloads import VIT_BATCHES, vit
    model = vit(torch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(b, 3, 224, 224, generator=g), torch.randint(0, 1000, (b,), generator=g))
               for b in VIT_BATCHES]

    def run():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for x, y in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(pixel_values=x.cuda(), labels=y.cuda()).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return {"ms": (time.perf_counter() - t0) / len(batches) * 1e3}
    return run


def task_serve(use, cpus, train_steps, gen_tokens, wanted):
    """A duel worker: empty+del, training steps and generation on request
    (and the ViT steps when `wanted` names vit)."""
    if cpus:  # both workers on the same cores: they run in turn, never together
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    torch = setup(use)
    tasks = {}
    for label, nbytes in EMPTY_DEL:
        tasks["empty_del_" + label] = (
            lambda n=nbytes: {"us": empty_del_us(torch, n, 5000, warmup=100)})
    # Training: every chunk continues the run.
    step = trainer(torch)

    def train():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        losses = [step() for _ in range(train_steps)]
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / train_steps * 1e3
        return {"ms": ms, "losses": [x.item() for x in losses]}

    # Greedy generation: 12-layer Llama-style, 8 prompts of 16 tokens.
    gen_model = llama(torch, 12, 1024, 16, torch.bfloat16).eval()
    ids = torch.randint(3, 32000, (8, 16), generator=torch.Generator().manual_seed(1)).cuda()

    def generate():
        with torch.no_grad():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = gen_model.generate(ids, max_new_tokens=gen_tokens, min_new_tokens=gen_tokens,
                                     do_sample=False)
            torch.cuda.synchronize()
        return {"tok_s": 8 * gen_tokens / (time.perf_counter() - t0),
                "tokens_sha1": hashlib.sha1(out.cpu().numpy().tobytes()).hexdigest()[:16]}

    # GPU-bound work on the allocator's memory: a bf16 GEMM and an
    # elementwise add over 256 MiB tensors (if managed memory made kernels
    # slower, these would show it apart from any CPU-side cost).
    x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    big = torch.ones(64 << 20, device="cuda")

    tasks["gemm"] = timed_chunk(torch, lambda: x @ x, 50, scale=1e3, unit="ms")
    tasks["add_256MiB"] = timed_chunk(torch, lambda: big + big, 50, scale=1e3, unit="ms")
    tasks["train"], tasks["generate"] = train, generate
    tasks.update(op_tasks(torch))  # op_*: single calls, for finding per-call costs
    if "vit" in wanted:
        tasks["vit"] = vit_trainer(torch)
    if use == "umpool":  # what the pool did during a training chunk
        import umpool
        keys = ("num_device_alloc", "umpool.prefetch_calls", "umpool.advise_calls",
                "umpool.grown_in_place", "umpool.slabs_reclaimed", "umpool.segments_moved",
                "num_alloc_retries", "umpool.events_recorded", "umpool.cross_stream_reuses",
                "allocation.all.allocated", "umpool.cache_hits", "umpool.page_drops",
                "umpool.bare_refills")

        def counted(f):
            def run():
                before = umpool.memory_stats()
                res = f()
                after = umpool.memory_stats()
                res["pool"] = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
                return res
            return run
        tasks["train"] = counted(train)
        if "vit" in tasks:
            tasks["vit"] = counted(tasks["vit"])
    for name in list(tasks):  # warm-up: kernels, cuBLAS, the pools
        if name != "train":
            tasks[name]()
    train()
    ready = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if use == "umpool":
        import umpool.torch
        ready["mode"] = umpool.torch.mode()
    duel.serve(tasks, ready)
    return None


def task_compile(use):
    torch = setup(use)
    import torch._inductor.config as inductor_config
    inductor_config.triton.slow_path_cudagraph_asserts = True  # checkPoolLiveAllocations
    model = llama(torch, 2, 256, 4, torch.float32).eval()
    infer = torch.compile(model, mode="reduce-overhead")
    g = torch.Generator(device="cpu").manual_seed(3)
    sums = []
    with torch.no_grad():
        for _rep in range(3):
            for batch, seq in ((2, 32), (4, 32), (2, 64), (4, 32), (2, 32)):
                ids = torch.randint(3, 32000, (batch, seq), generator=g).cuda()
                sums.append(infer(input_ids=ids, use_cache=False).logits.double().sum().item())
    train_model = llama(torch, 2, 256, 4, torch.float32).train()
    opt = torch.optim.SGD(train_model.parameters(), lr=1e-3)

    @torch.compile(mode="reduce-overhead")
    def loss_of(ids):
        return train_model(input_ids=ids, labels=ids).loss

    losses = []
    for _ in range(8):
        ids = torch.randint(3, 32000, (4, 64), generator=g).cuda()
        loss = loss_of(ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    torch.cuda.synchronize()
    out = {"logit_sums": sums, "losses": losses}
    if use == "umpool":
        import umpool.torch
        out["checkpoint_restores"] = umpool.torch._enabled.umpool_torch_counter(
            b"checkpoint_restores")
    return out


def task_checks(use, tmp):
    torch = setup("umpool")
    import pickle
    import umpool
    from torch.cuda import _memory_viz
    out = {}
    # memory_stats after a forward pass agree with umpool's own figures.
    torch.cuda.memory._record_memory_history(max_entries=100000)
    model = llama(torch, 12, 1024, 16, torch.bfloat16).eval()
    with torch.no_grad():
        model(input_ids=torch.randint(3, 32000, (8, 128)).cuda())
    torch.cuda.synchronize()
    t, u = torch.cuda.memory_stats(), umpool.memory_stats()
    pairs = {k: (t[k], u[k]) for k in ("allocated_bytes.all.peak", "reserved_bytes.all.peak",
                                       "allocated_bytes.all.current",
                                       "reserved_bytes.all.current")}
    out["memory_stats"] = pairs
    out["memory_stats_within_1pct"] = all(abs(a - b) <= 0.01 * max(b, 1) for a, b in pairs.values())
    out["memory_summary_lines"] = len(torch.cuda.memory_summary().splitlines())
    path = os.path.join(tmp, "snapshot.pickle")
    torch.cuda.memory._dump_snapshot(path)
    torch.cuda.memory._record_memory_history(enabled=None)
    snap = pickle.load(open(path, "rb"))
    trace_html = _memory_viz.trace_plot(snap)
    segment_html = _memory_viz.segment_plot(snap)
    frames = sum(1 for tr in snap["device_traces"] for e in tr if e.get("frames"))
    out["snapshot"] = {"segments": len(snap["segments"]), "trace_entries":
                       sum(len(tr) for tr in snap["device_traces"]), "entries_with_frames": frames,
                       "trace_html_bytes": len(trace_html), "segment_html_bytes": len(segment_html)}
    out["memory_viz_snapshot_ok"] = bool(frames and len(trace_html) > 1000 and
                                         len(segment_html) > 1000 and snap["segments"])
    # A request over the cap is torch.OutOfMemoryError; training goes on.
    total = torch.cuda.mem_get_info()[1]
    kind, msg = None, ""
    try:
        torch.empty(total * 2, dtype=torch.uint8, device="cuda")
    except torch.OutOfMemoryError as e:
        kind, msg = "OutOfMemoryError", str(e)[:300]
    except Exception as e:  # noqa: BLE001 - recorded as the wrong kind
        kind, msg = type(e).__name__, str(e)[:300]
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    ids = torch.randint(3, 32000, (2, 64)).cuda()
    after = []
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        after.append(loss.item())
    out["oom"] = {"kind": kind, "message": msg, "losses_after": after}
    out["oom_is_torch_OutOfMemoryError"] = kind == "OutOfMemoryError" and all(
        x == x for x in after)
    return out


def run(task, use, tmp):
    return run_worker(__file__, ["--worker", task, "--use", use, "--tmp", tmp], f"{task}/{use}")


def save(out, stem, result):
    """OUT/STEM.json: the figures, checks and per-task summaries; the duel's raw
    rounds (every chunk's answer, every round's ratio: thousands of numbers) go
    to OUT/STEM_rounds.jsonl, one line per task and allocator, and one per
    task's ratios. Does not change `result`."""
    summary = json.loads(json.dumps(result))
    lines = []
    for task, d in summary["raw"]["duel"].items():
        for use, answers in d.pop("answers").items():
            lines.append({"task": task, "allocator": use, "answers": answers})
        lines.append({"task": task, "ratios": d.pop("ratios")})
    summary["raw"]["rounds_file"] = stem + "_rounds.jsonl"
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, stem + "_rounds.jsonl"), "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def figure(task, answer):
    """The number a duel compares: time for empty+del and training, 1 / tok/s
    for generation (so every ratio is umpool's time / native's)."""
    return 1.0 / answer["tok_s"] if task == "generate" else answer.get("us", answer.get("ms"))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--use", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--rounds", type=int, default=40, help="alternating duel rounds")
    ap.add_argument("--out", required=False)
    ap.add_argument("--speed-only", action="store_true", help="only the duel, no checks")
    ap.add_argument("--tasks", default="empty_del_4KiB,empty_del_1MiB,empty_del_64MiB,train,"
                    "generate,gemm,add_256MiB", help="duel tasks, comma-separated")
    ap.add_argument("--train-steps", type=int, default=TRAIN_STEPS, help="steps per train chunk")
    ap.add_argument("--gen-tokens", type=int, default=GEN_TOKENS, help="tokens per generate chunk")
    ap.add_argument("--umpool-conf", default=None,
                    help="UMPOOL_CONF for the umpool worker only (e.g. default.memory:device)")
    ap.add_argument("--cpus", default="2,3",
                    help="cores both duel workers are pinned to ('' for none)")
    a = ap.parse_args()
    if a.worker:
        if a.worker == "serve":
            task_serve(a.use, a.cpus, a.train_steps, a.gen_tokens, a.tasks.split(","))
            return
        fn = {"compile": task_compile}.get(a.worker)
        res = fn(a.use) if fn else task_checks(a.use, a.tmp)
        print(json.dumps(res), flush=True)
        return
    os.makedirs(a.tmp, exist_ok=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    tasks = a.tasks.split(",")
    env_for = {}
    if a.umpool_conf is not None:
        env_for["umpool"] = dict(os.environ, UMPOOL_CONF=a.umpool_conf)
    workers, ready = duel.start(__file__, ("native", "umpool"),
                                ["--tmp", a.tmp, "--cpus", a.cpus, "--train-steps",
                                 str(a.train_steps), "--gen-tokens", str(a.gen_tokens),
                                 "--tasks", a.tasks], a.tmp,
                                env_for=env_for)
    try:
        def progress(r, out):
            if r % 10 == 9 or r == a.rounds - 1:
                last = {t: figure(t, out[t]["answers"]["umpool"][-1]) /
                        figure(t, out[t]["answers"]["native"][-1]) for t in tasks}
                print(f"round {r + 1}: " + ", ".join(f"{t} {v:.3f}" for t, v in last.items()),
                      flush=True)
        d = duel.run(workers, tasks, a.rounds, figure, on_round=progress)
    finally:
        for w in workers.values():
            w.close()
    comp = checks = None
    if not a.speed_only:
        comp = {use: run("compile", use, a.tmp) for use in ("native", "umpool")}
        checks = run("checks", "umpool", a.tmp)
    result = {
        "gpu": ready["native"]["gpu"], "torch": ready["native"]["torch"],
        "mode": ready["umpool"].get("mode"), "rounds": a.rounds, "tasks": tasks,
        "umpool_conf": a.umpool_conf,
        "train_steps_per_chunk": a.train_steps, "generate_tokens_per_chunk": a.gen_tokens,
        "method": "duel: one worker per allocator, alternating chunks; median of per-round "
                  "umpool/native ratios (bench/torch/duel.py)",
    }
    if all("empty_del_" + k in d for k, _ in EMPTY_DEL):
        result["empty_del_vs_native"] = {k: d["empty_del_" + k]["ratio_median"] for k, _ in EMPTY_DEL}
    # Speeds: > 1 means umpool is faster.
    if "generate" in d:
        result["generate_vs_native"] = 1.0 / d["generate"]["ratio_median"]
        result["same_tokens"] = len({x["tokens_sha1"] for u in ("native", "umpool")
                                     for x in d["generate"]["answers"][u]}) == 1
    if "train" in d:
        result["train_step_vs_native"] = 1.0 / d["train"]["ratio_median"]
        losses = {u: [v for x in d["train"]["answers"][u] for v in x["losses"]]
                  for u in ("native", "umpool")}
        result["same_losses"] = losses["native"] == losses["umpool"]
    if comp is not None:
        result.update({
            "compile_matches_native": comp["umpool"]["logit_sums"] == comp["native"]["logit_sums"]
            and comp["umpool"]["losses"] == comp["native"]["losses"],
            "oom_is_torch_OutOfMemoryError": checks["oom_is_torch_OutOfMemoryError"],
            "memory_stats_within_1pct": checks["memory_stats_within_1pct"],
            "memory_viz_snapshot_ok": checks["memory_viz_snapshot_ok"],
        })
    result["raw"] = {"duel": {t: {k: v for k, v in d[t].items()} for t in tasks},
                     "compile": comp, "checks": checks}
    lines = [f"umpool's PyTorch allocator vs native on {result['gpu']}, torch {result['torch']}: "
             f"{a.rounds} alternating duel rounds (`bench/torch/torch_integration.py`, "
             f"`bench/torch/duel.py`). Ratios are umpool's time / native's (for generation "
             f"1 / tokens per second): below 1, umpool is faster.", "",
             "| figure | native | umpool | umpool / native time: median (quartiles) "
             "[95% interval] | fastest tenth |", "|---|---|---|---|---|"]
    label = {"train": "8-layer Llama bf16 AdamW step (ms)",
             "vit": "ViT-Base AdamW step, bf16 autocast, batches 64/32/96/48 (ms)",
             "gemm": "bf16 GEMM 4096 x 4096 (ms)", "add_256MiB": "fp32 add, 256 MiB tensors (ms)",
             "generate": f"greedy generation, 12-layer Llama, 8 x {a.gen_tokens} tokens (tok/s)"}
    for t in tasks:
        med, (q1, q3) = d[t]["median"], d[t]["ratio_quartiles"]
        n, u = med["native"], med["umpool"]
        if t == "generate":
            n, u = 1.0 / n, 1.0 / u
        name = label.get(t, f"{t} (us per call)" if t.startswith("op_")
                         else f"torch.empty + del, {t[len('empty_del_'):]} (us)")
        c1, c2 = d[t]["ratio_median_ci95"]
        lines.append(f"| {name} | {n:.2f} | {u:.2f} | {d[t]['ratio_median']:.3f} "
                     f"({q1:.3f}-{q3:.3f}) [{c1:.3f}-{c2:.3f}] | {d[t]['ratio_p10']:.3f} |")
    lines += ["", "| check | result |", "|---|---|"]
    for k in ("compile_matches_native", "oom_is_torch_OutOfMemoryError", "memory_stats_within_1pct",
              "memory_viz_snapshot_ok", "same_tokens", "same_losses"):
        if k in result:
            lines.append(f"| {k} | {result[k]} |")
    if comp is not None:
        lines.append(f"| checkpoint restores during the compile run | "
                     f"{comp['umpool'].get('checkpoint_restores')} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        save(a.out, "torch_integration", result)
        with open(os.path.join(a.out, "torch_integration.md"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
