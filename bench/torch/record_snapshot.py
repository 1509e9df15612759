#!/usr/bin/env python3
"""Records a real PyTorch allocation stream for umpool-replay: a random
Llama-style model (transformers) generating for batches of different sizes
and prompt lengths under PyTorch's native allocator, with
torch.cuda.memory._record_memory_history; the snapshot is pickled to the
path given. Convert it with tools/umpool-trace-from-torch.

    python3 bench/torch/record_snapshot.py /tmp/torch_snapshot.pickle
"""
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "torch_snapshot.pickle"
    transformers.logging.set_verbosity_error()
    torch.cuda.memory._record_memory_history(max_entries=2_000_000)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                      num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=8,
                      max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).to("cuda").eval()
    g = torch.Generator(device="cpu").manual_seed(1)
    with torch.no_grad():
        for batch, prompt, new in ((1, 512, 64), (8, 128, 64), (16, 256, 48), (4, 1024, 64),
                                   (32, 64, 32), (8, 128, 64), (16, 256, 48)):
            ids = torch.randint(3, 32000, (batch, prompt), generator=g).to("cuda")
            model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    torch.cuda.synchronize()
    torch.cuda.memory._dump_snapshot(path)
    torch.cuda.memory._record_memory_history(enabled=None)
    print(f"record_snapshot: {path}, peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB, "
          f"peak reserved {torch.cuda.max_memory_reserved() / 2**20:.0f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
