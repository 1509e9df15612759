#!/usr/bin/env python3
"""Oversubscription on one card (issue 16): workloads larger than their GPU
budget, served by umpool's policies and by page faults, in one run.

Writes OUT/oversubscription.json (and .md, the table):
  weights    a Llama-style transformers model (random bf16 weights, greedy
             generate with DynamicCache) under umpool's allocator, run with
             everything resident and with a weights budget of 2/3 of its
             weights served two ways (umpool.streaming.LayerStreamer):
               prefetch  streamed layers fetched a layer ahead on a side
                         stream, dropped after use (their pinned copy reused)
               fault     the same layers evicted to the host after use and
                         faulted back by the kernels (no prefetch)
             Rounds alternate the modes; tokens/s is the median over rounds,
             tokens must be identical in every mode and round.
  kv         examples/paged_kv (paged_kv_demo STEPS REQUESTS OUT TURN GROUPS
             CONTEXT): a KV budget of 50% of its peak KV, its pools on
             --kv-budget-backend (default vmm, the backend docs/residency.md
             recommends for budgets: all resident then runs on managed and on
             vmm memory, the ratio against the faster; managed: the budget's
             pools on managed memory too) (evicted by
             staging; with more than two groups the engine fetches the next
             group ahead during each turn) against all-resident and the
             same turns served by page faults, every round trip checked;
             once per TURN:GROUPS:CONTEXT:STEPS in --kv-runs, the first
             giving the keys: it runs --kv-repeats times and the keys are
             the medians (CONTEXT 1: prompts of up to 316 tokens, 126
             MiB of KV; 96: up to 28,816 tokens, about 4.5 GiB).
  pressure   umpool-replay of a generated serving trace (blocks KV) capped
             at 90% of its peak live bytes on the managed backend, with an
             evicting pressure callback and without one.
Keys: weights_budget_vs_faulting, weights_budget_vs_resident, tokens_match,
kv_budget50_vs_resident, kv_budget50_vs_faulting, pressure_replay_ooms
(with the callback), pressure_replay_ooms_without_callback.

  PYTHONPATH=python python3 bench/torch/oversubscription.py --out DIR \\
      [--bin .gpu-stage/bin] [--layers 24] [--tokens 24] [--rounds 3] [--parts kv] \\
      [--kv-keep-running] [--kv-budget-backend managed|vmm]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GIB = 1 << 30


def weights(layers, tokens, rounds):
    sys.path.insert(0, os.path.join(REPO, "python"))
    import torch
    import umpool
    import umpool.torch
    from umpool.streaming import LayerStreamer
    umpool.torch.enable()
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers
    transformers.logging.set_verbosity_error()
    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=8,
                      max_position_embeddings=2048)
    torch.manual_seed(0)
    with torch.cuda.use_mem_pool(umpool.torch.mem_pool("weights")):
        torch.set_default_dtype(torch.bfloat16)
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
        torch.set_default_dtype(torch.float32)
    model.eval()
    stack = model.model.layers
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    in_layers = sum(p.numel() * p.element_size() for p in stack.parameters())
    budget = total * 2 // 3
    ids = torch.randint(0, cfg.vocab_size, (1, 32), generator=torch.Generator().manual_seed(1)).cuda()
    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "transformers": transformers.__version__, "layers": layers,
           "weights_bytes": total, "budget_bytes": budget, "new_tokens": tokens}

    def generate():
        with torch.no_grad():
            torch.cuda.synchronize()
            t = time.perf_counter()
            seq = model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens,
                                 do_sample=False, use_cache=True)
            torch.cuda.synchronize()
            return time.perf_counter() - t, seq[0, ids.shape[1]:].tolist()

    generate()  # warm-up: kernels, cuBLAS workspaces, the KV cache's first blocks
    modes = ("resident", "prefetch", "fault")
    speed = {m: [] for m in modes}
    seqs = {m: [] for m in modes}
    plan = None
    for r in range(rounds):
        order = modes if r % 2 == 0 else tuple(reversed(modes))
        for m in order:
            streamer = None
            if m != "resident":
                streamer = LayerStreamer(stack, budget, fixed_bytes=total - in_layers, mode=m)
                plan = {"streamed_layers": len(streamer.streamed),
                        "resident_layers": len(streamer.resident_layers),
                        "plan_bytes": streamer.plan_bytes}
                generate()  # the first pass puts layers away once (copies them out)
            secs, seq = generate()
            if streamer is not None:
                streamer.remove()
            speed[m].append(tokens / secs)
            seqs[m].append(seq)
            print(f"round {r} {m:9s} {tokens / secs:8.2f} tok/s", file=sys.stderr, flush=True)
    out.update(plan or {})
    out["tokens_per_s"] = {m: statistics.median(v) for m, v in speed.items()}
    out["tokens_per_s_rounds"] = speed
    ref = seqs["resident"][0]
    out["tokens_match"] = all(s == ref for v in seqs.values() for s in v)
    out["tokens"] = ref
    print(json.dumps(out))


def run_json(cmd, timeout, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=None if env is None else {**os.environ, **env})
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--bin", default=os.path.join(REPO, ".gpu-stage", "bin"))
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kv-requests", type=int, default=32)
    ap.add_argument("--kv-runs", default="512:2:96:4096,512:3:96:4096,256:4:96:2048,16:2:1:300")
    ap.add_argument("--kv-repeats", type=int, default=3,
                    help="runs of the first --kv-runs configuration (the keys: medians)")
    ap.add_argument("--kv-keep-running", action="store_true",
                    help="the demo's Plan::keep_running (PAGED_KV_KEEP_RUNNING=1)")
    ap.add_argument("--kv-budget-backend", choices=("managed", "vmm"), default="vmm",
                    help="the budget pools' backend (PAGED_KV_BUDGET_BACKEND); with vmm the "
                         "demo also runs all resident on vmm and compares with the faster")
    ap.add_argument("--parts", default="weights,kv,pressure")
    ap.add_argument("--weights-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.weights_worker:
        return weights(a.layers, a.tokens, a.rounds)
    os.makedirs(a.out, exist_ok=True)
    parts = a.parts.split(",")
    res = {"command": " ".join(["bench/torch/oversubscription.py"] + sys.argv[1:])}
    if "weights" in parts:
        p = run_json([sys.executable, __file__, "--out", a.out, "--weights-worker",
                      "--layers", str(a.layers), "--tokens", str(a.tokens), "--rounds",
                      str(a.rounds)], 1800)
        if p.returncode != 0:
            res["weights_error"] = p.stderr[-3000:]
        else:
            w = json.loads(p.stdout.strip().splitlines()[-1])
            res["weights"] = w
            res["gpu"] = w["gpu"]
            t = w["tokens_per_s"]
            res["weights_budget_vs_faulting"] = t["prefetch"] / t["fault"]
            res["weights_budget_vs_resident"] = t["prefetch"] / t["resident"]
            res["tokens_match"] = w["tokens_match"]
    if "kv" in parts:
        runs = []
        specs = a.kv_runs.split(",")
        # The configuration the keys come from runs --kv-repeats times (each
        # run times every mode once, in sequence; the page-faulting run's time
        # varies a lot between runs): the keys are the medians.
        specs = [specs[0]] * a.kv_repeats + specs[1:]
        for i, spec in enumerate(specs):
            turn, groups, context, steps = (int(x) for x in spec.split(":"))
            tag = f"turn{turn}" + (f"_groups{groups}_context{context}" if context != 1 else "")
            if i < a.kv_repeats and a.kv_repeats > 1:
                tag += f"_run{i + 1}"
            kv_json = os.path.join(a.out, f"paged_kv_{tag}.json")
            p = run_json([os.path.join(a.bin, "paged_kv_demo"), str(steps),
                          str(a.kv_requests), kv_json, str(turn), str(groups), str(context)], 1200,
                         {"PAGED_KV_KEEP_RUNNING": "1" if a.kv_keep_running else "0",
                          "PAGED_KV_BUDGET_BACKEND": a.kv_budget_backend})
            if p.returncode != 0 or not os.path.exists(kv_json):
                res.setdefault("kv_error", (p.stdout + p.stderr)[-3000:])
                continue
            with open(os.path.join(a.out, f"paged_kv_{tag}.md"), "w") as f:
                f.write(p.stdout)
            runs.append(json.load(open(kv_json)))
        if runs:
            res["kv"] = runs
            res.setdefault("gpu", runs[0].get("gpu"))
            res["kv_turn_steps"] = runs[0]["turn_steps"]
            res["kv_groups"] = runs[0]["groups"]
            res["kv_keep_running"] = runs[0].get("keep_running", False)
            res["kv_budget_backend"] = runs[0].get("budget_backend", "managed")
            first = [r for r in runs if (r["turn_steps"], r["groups"], r["context"], r["steps"]) ==
                     (runs[0]["turn_steps"], runs[0]["groups"], runs[0]["context"], runs[0]["steps"])]
            first = first[:a.kv_repeats]
            res["kv_runs_for_keys"] = len(first)
            for k in ("kv_budget50_vs_resident", "kv_budget50_vs_faulting"):
                res[k] = statistics.median(r[k] for r in first)
                res[k + "_each_run"] = [r[k] for r in first]
            res["kv_mismatches"] = sum(r["mismatches"] for r in runs)
    if "pressure" in parts:
        trace = os.path.join(a.out, "serving_blocks.csv")
        subprocess.run([sys.executable, os.path.join(REPO, "tools", "umpool-tracegen"), "--seed",
                        "20261127", "--kv-mode", "blocks", "-o", trace], check=True,
                       capture_output=True)
        for cb in ("evict", "none"):
            j = os.path.join(a.out, f"pressure_{cb}.json")
            p = run_json([os.path.join(a.bin, "umpool-replay"), trace, "--backend", "managed",
                          "--allocators", "umpool", "--quiet", "--cap-live", "0.9", "--pressure", cb,
                          "--json", j], 600)
            if not os.path.exists(j):
                res[f"pressure_{cb}_error"] = (p.stdout + p.stderr)[-3000:]
                continue
            pr = json.load(open(j))["results"][0]["pressure"]
            pr["exit_status"] = p.returncode
            res[f"pressure_{cb}"] = pr
        os.remove(trace)
        if "pressure_evict" in res:
            res["pressure_replay_ooms"] = res["pressure_evict"]["ooms"]
        if "pressure_none" in res:
            res["pressure_replay_ooms_without_callback"] = res["pressure_none"]["ooms"]
    with open(os.path.join(a.out, "oversubscription.json"), "w") as f:
        json.dump(res, f, indent=1)
    rows = [(k, res.get(k)) for k in (
        "gpu", "weights_budget_vs_faulting", "weights_budget_vs_resident", "tokens_match",
        "kv_turn_steps", "kv_groups", "kv_keep_running", "kv_budget_backend", "kv_budget50_vs_resident", "kv_budget50_vs_faulting",
        "kv_budget50_vs_resident_each_run", "kv_budget50_vs_faulting_each_run", "kv_mismatches",
        "pressure_replay_ooms",
        "pressure_replay_ooms_without_callback")]
    if "weights" in res:
        w = res["weights"]
        rows.append(("weights tok/s (resident / prefetch / fault)", " / ".join(
            f"{w['tokens_per_s'][m]:.2f}" for m in ("resident", "prefetch", "fault"))))
        rows.append(("weights / budget / plan (GiB)", f"{w['weights_bytes'] / GIB:.2f} / "
                     f"{w['budget_bytes'] / GIB:.2f} / {w.get('plan_bytes', 0) / GIB:.2f}, "
                     f"{w.get('streamed_layers')} of {w['layers']} layers streamed"))
    for r in res.get("kv", []):
        rows.append((f"KV turns of {r['turn_steps']} steps, {r.get('groups', 2)} groups, context "
                     f"{r.get('context', 1)}: vs resident / vs faulting / staging vs migration",
                     f"{r['kv_budget50_vs_resident']:.3f} / {r['kv_budget50_vs_faulting']:.3f} / "
                     f"{r.get('staging_vs_migrate', float('nan')):.3f}"))
    table = "| figure | value |\n|---|---|\n" + "\n".join(
        f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows)
    with open(os.path.join(a.out, "oversubscription.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    for k in ("weights_error", "kv_error", "pressure_evict_error", "pressure_none_error"):
        if k in res:
            print(k, res[k])


if __name__ == "__main__":
    main()
