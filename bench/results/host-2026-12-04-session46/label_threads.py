#!/usr/bin/env python3
"""label_threads.py IN OUT [SIZES]: a recorded training trace (bench/torch/record_workloads.py's
train_loop) with a thread column: ops of each backward pass on thread 1 (PyTorch's
autograd device thread), the rest on thread 0. A backward pass starts after the
third 4-byte allocation of its step (the loss, its copy, the loss's grad made on
the main thread by loss.backward) and ends at the optimizer's first allocation
(the parameters' sizes in order: the ViT's cls_token first, 3072, 605184, 2359296,
3072)."""
import sys
src, dst = sys.argv[1], sys.argv[2]
# The optimizer's first four allocations: the parameters' first four sizes
# (argv[3], comma-separated; default: the trace's first four allocations,
# models that create their parameters in parameters() order).
lines = open(src).read().splitlines()
ops = [(n, l.split(",")) for n, l in enumerate(lines) if l and l[0] not in "#o"]
allocs = [(n, int(f[2])) for n, f in ops if f[0] == "a"]
sig = [int(x) for x in sys.argv[3].split(",")] if len(sys.argv) > 3 else [b for _, b in allocs[:4]]
opt = [allocs[k][0] for k in range(1, len(allocs) - 3)
       if [allocs[k + j][1] for j in range(4)] == sig and allocs[k][0] > 0]
opt = [n for n in opt if n > min(ops[0][0] + 10, 10)]  # not the model's creation
fours = [n for n, b in allocs if b == 4]
starts = fours[2::3]
assert len(starts) == len(opt), (len(starts), len(opt))
spans = list(zip(starts, opt))
out = []
for n, l in enumerate(lines):
    if not l or l[0] == "#":
        out.append(l)
    elif l.startswith("op,"):
        out.append(l + ",thread")
    else:
        t = 1 if any(a < n < b for a, b in spans) else 0
        out.append(f"{l},{t}")
open(dst, "w").write("\n".join(out) + "\n")
print(f"{len(spans)} backward passes on thread 1: {sum(b - a - 1 for a, b in spans)} of {len(ops)} lines")
