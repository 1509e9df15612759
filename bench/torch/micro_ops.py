"""Single PyTorch operations timed per call, for the duel (bench/torch/duel.py):
which kinds of call cost more under one allocator than under another.
A training step is mostly these, made from Python on one thread while the GPU
is ahead of nothing (the step is bound by the host), so a difference of a
microsecond per call shows in the step's time.

op_launch       x.add_(1) on a 4 KiB tensor: a kernel launch, no allocation
op_new          x + 1, result dropped: allocation + launch + free
op_zero         x.zero_() on a 4 KiB tensor
op_zeros        torch.zeros(1024, device="cuda"): allocation + fill + free
op_h2d          torch.tensor of three ints to the GPU: a small pageable copy
op_d2h          .item() of a one-element tensor: a copy back and a wait
op_mm           a 64 x 64 bf16 matmul: cuBLAS's launch path
op_backward     (w * 2).sum().backward() on a 4 KiB leaf, grad dropped: autograd's
                thread frees what the calling thread allocated

Each chunk runs N calls between two synchronisations; the answer is
{"us": microseconds per call}.
"""
import time

CALLS = 1000


def timed_chunk(torch, f, calls, scale=1e6, unit="us"):
    """A duel task: `calls` calls of f() between two synchronisations; the
    answer is {unit: time per call} (scale 1e6: microseconds, 1e3: ms)."""
    def run():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        torch.cuda.synchronize()
        return {unit: (time.perf_counter() - t0) / calls * scale}
    return run


def op_tasks(torch, calls=CALLS):
    x = torch.ones(1024, device="cuda")
    one = torch.ones(1, device="cuda")
    a = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)
    w = torch.ones(1024, device="cuda", requires_grad=True)

    def backward():
        (w * 2).sum().backward()
        w.grad = None
    ops = {
        "op_launch": lambda: x.add_(1),
        "op_new": lambda: x + 1,
        "op_zero": lambda: x.zero_(),
        "op_zeros": lambda: torch.zeros(1024, device="cuda"),
        "op_h2d": lambda: torch.tensor([1, 2, 3], device="cuda"),
        "op_d2h": lambda: one.item(),
        "op_mm": lambda: a @ a,
        "op_backward": backward,
    }

    return {name: timed_chunk(torch, f, calls) for name, f in ops.items()}
