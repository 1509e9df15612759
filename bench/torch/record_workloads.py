#!/usr/bin/env python3
"""Records real PyTorch allocation streams (issue 14's workloads) for
umpool-replay, and PyTorch's own peak reserved / peak allocated for each,
with the native caching allocator and with expandable segments.

Workloads (each in its own process, random-weight Llama-style models from
transformers, bf16):
  generate  12-layer model, DynamicCache, greedy generation over a series of
            batch sizes, prompt lengths and output lengths
  train     8-layer model, AdamW, 12 steps over batches of varied lengths
  compile   torch.compile (default mode) of a 4-layer model over several shapes
  beam      12-layer model, HF generate with beam search (4 beams: the cache
            reordered at every step) over varied batches and lengths
  vit       ViT-Base image classifier (transformers), fp32 weights, bf16
            autocast, AdamW, 12 steps over batches of 32-96 images

Writes OUT/<workload>/part-NNN.csv.gz (tools/umpool-trace-from-torch of the
native run's snapshot, 15000 lines per part, each part gzipped on its own:
`cat OUT/<workload>/part-*.csv.gz | gzip -dc` is the trace) and
OUT/workloads.json (peaks per workload and allocator).

  python3 bench/torch/record_workloads.py --out DIR [--only generate,train]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def llama(torch, layers, hidden, heads):
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers
    transformers.logging.set_verbosity_error()
    cfg = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads // 2, max_position_embeddings=4096,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(torch.bfloat16).to("cuda")


class Timer:
    """Seconds of the timed part of a workload (after the model is built),
    GPU work included."""

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        self.torch.cuda.synchronize()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t0


def run_generate(torch):
    """Returns tokens generated and the seconds they took."""
    model = llama(torch, 12, 2048, 16).eval()
    g = torch.Generator(device="cpu").manual_seed(1)
    tokens = 0
    with torch.no_grad(), Timer(torch) as t:
        for batch, prompt, new in ((1, 512, 96), (8, 128, 64), (16, 256, 48), (4, 1024, 64),
                                   (32, 64, 32), (8, 300, 80), (2, 2000, 40), (16, 200, 64)):
            ids = torch.randint(3, 32000, (batch, prompt), generator=g).cuda()
            model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
            tokens += batch * new
    return {"tokens": tokens, "seconds": t.seconds, "tokens_per_s": tokens / t.seconds}


def train_loop(torch, model, seed, loss_of_step):
    """Twelve AdamW steps of `model`; loss_of_step(step, generator, inputs)
    makes the step's inputs into the dict `inputs` (each replacing the last
    step's once made, as a loop variable would: the recorded traces keep
    those lifetimes) and returns its loss. The workloads cycle through four
    input shapes: step_ms is the mean of the last eight steps, after each
    shape's first step paid its one-time setup (kernel selection, cuBLAS
    and cuDNN plans), first_steps_ms that of the first four. Returns them
    and the losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator(device="cpu").manual_seed(seed)
    losses = []
    inputs = {}
    with Timer(torch) as t:
        for step in range(12):
            loss = loss_of_step(step, g, inputs)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())  # waits for the step's GPU work
            if step == 3:
                first_cycle_end = time.perf_counter()
    first = first_cycle_end - t.t0
    return {"steps": 12, "seconds": t.seconds, "step_ms": (t.seconds - first) / 8 * 1e3,
            "first_steps_ms": first / 4 * 1e3, "losses": losses}


def run_train(torch):
    """Returns the mean step time and the losses."""
    model = llama(torch, 8, 1024, 16).train()

    def loss_of_step(step, g, inputs):
        seq = (256, 512, 384, 1024)[step % 4]
        inputs["ids"] = torch.randint(3, 32000, (8, seq), generator=g).cuda()
        return model(input_ids=inputs["ids"], labels=inputs["ids"]).loss
    return train_loop(torch, model, 2, loss_of_step)


def run_compile(torch):
    """Returns the seconds of the compiled calls (compilation included)."""
    model = llama(torch, 4, 1024, 16).eval()
    fn = torch.compile(model)
    g = torch.Generator(device="cpu").manual_seed(3)
    with torch.no_grad(), Timer(torch) as t:
        for batch, seq in ((2, 64), (4, 128), (8, 256), (2, 64), (16, 128), (4, 512)):
            fn(input_ids=torch.randint(3, 32000, (batch, seq), generator=g).cuda())
    return {"seconds": t.seconds}


def run_beam(torch):
    """Beam search (4 beams, no early stop): every step reorders each layer's
    cache by the surviving beams (new tensors of the cache's size). Returns
    tokens generated (batch x new tokens, beams not counted) and their
    seconds."""
    model = llama(torch, 12, 2048, 16).eval()
    g = torch.Generator(device="cpu").manual_seed(4)
    tokens = 0
    with torch.no_grad(), Timer(torch) as t:
        for batch, prompt, new in ((1, 256, 48), (4, 128, 32), (2, 1000, 40), (8, 64, 24),
                                   (3, 500, 32), (6, 200, 40)):
            ids = torch.randint(3, 32000, (batch, prompt), generator=g).cuda()
            model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                           num_beams=4, early_stopping=False)
            tokens += batch * new
    return {"tokens": tokens, "seconds": t.seconds, "tokens_per_s": tokens / t.seconds}


VIT_BATCHES = (64, 32, 96, 48)  # images per step, in turn


def vit(torch):
    """A random-weight ViT-Base classifier (224 px, 16 px patches, 1000
    classes), fp32, on the GPU, in training mode (also the duel's vit task:
    bench/torch/torch_integration.py)."""
    from transformers import ViTConfig, ViTForImageClassification
    import transformers
    transformers.logging.set_verbosity_error()
    cfg = ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, num_labels=1000)
    torch.manual_seed(0)
    return ViTForImageClassification(cfg).to("cuda").train()


def run_vit(torch):
    """Mixed-precision training of a ViT-Base classifier (fp32 weights and
    AdamW state, bf16 autocast), batch sizes varied from step to step.
    Returns the mean step time and the losses."""
    model = vit(torch)

    def loss_of_step(step, g, inputs):
        batch = VIT_BATCHES[step % len(VIT_BATCHES)]
        inputs["x"] = torch.randn(batch, 3, 224, 224, generator=g).cuda()
        inputs["y"] = torch.randint(0, 1000, (batch,), generator=g).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return model(pixel_values=inputs["x"], labels=inputs["y"]).loss
    return train_loop(torch, model, 5, loss_of_step)


WORKLOADS = {"generate": run_generate, "train": run_train, "compile": run_compile,
             "beam": run_beam, "vit": run_vit}


def write_trace_parts(csv, directory, lines_per_part=15000):
    """Writes the trace text `csv` (bytes) as directory/part-NNN.csv.gz, in
    pieces of whole lines: small files for the repository, and the gzip
    members concatenate back into the trace."""
    os.makedirs(directory, exist_ok=True)
    lines = csv.splitlines(keepends=True)
    for n, start in enumerate(range(0, len(lines), lines_per_part)):
        with open(os.path.join(directory, f"part-{n:03d}.csv.gz"), "wb") as f:
            f.write(gzip.compress(b"".join(lines[start:start + lines_per_part]), mtime=0))


def worker(name, alloc, out):
    import torch
    if alloc == "native":
        torch.cuda.memory._record_memory_history(max_entries=3_000_000)
    WORKLOADS[name](torch)
    torch.cuda.synchronize()
    res = {"peak_reserved": torch.cuda.max_memory_reserved(),
           "peak_allocated": torch.cuda.max_memory_allocated()}
    res["reserved_over_allocated"] = res["peak_reserved"] / res["peak_allocated"]
    if alloc == "native":
        pickle_path = os.path.join(out, f"{name}.pickle")
        torch.cuda.memory._dump_snapshot(pickle_path)
        torch.cuda.memory._record_memory_history(enabled=None)
        csv = subprocess.run([sys.executable, os.path.join(REPO, "tools", "umpool-trace-from-torch"),
                              pickle_path], capture_output=True, check=True)
        write_trace_parts(csv.stdout, os.path.join(out, name))
        os.remove(pickle_path)
        res["trace"] = f"{name}/part-*.csv.gz"
        res["trace_note"] = csv.stderr.decode()[-400:]
    print(json.dumps(res), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="generate,train")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--alloc", help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.worker:
        worker(a.worker, a.alloc, a.out)
        return
    import torch
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}

    def save():  # after every workload: a time limit loses only what was not run
        with open(os.path.join(a.out, "workloads.json"), "w") as f:
            json.dump(results, f, indent=1)

    for name in a.only.split(","):
        results[name] = {}
        for alloc in ("native", "expandable"):
            env = dict(os.environ)
            if alloc == "expandable":
                env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
            p = subprocess.run([sys.executable, __file__, "--worker", name, "--alloc", alloc,
                                "--out", a.out], capture_output=True, text=True, env=env)
            if p.returncode != 0:
                results[name][alloc] = {"error": p.stderr[-2000:]}
                print(f"{name}/{alloc} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
                continue
            results[name][alloc] = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
            r = results[name][alloc]
            print(f"{name:9s} {alloc:10s} peak reserved {r['peak_reserved'] / 2**20:9.1f} MiB, "
                  f"allocated {r['peak_allocated'] / 2**20:9.1f} MiB, ratio {r['reserved_over_allocated']:.3f}",
                  flush=True)
            save()


if __name__ == "__main__":
    main()
