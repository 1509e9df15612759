"""Run by test_torch.py under torchrun --nproc-per-node 2: a few DDP training
steps (NCCL all-reduce of gradients) plus an explicit all_reduce, with
PyTorch's allocator ("native") or umpool ("umpool"). Rank 0 writes the losses,
a parameter checksum and per-device umpool stats to the JSON path given."""
import json
import os
import sys

import torch
import torch.distributed as dist


def main():
    use, out_path = sys.argv[1], sys.argv[2]
    if use == "umpool":
        import umpool.torch
        umpool.torch.enable()
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(),
                                torch.nn.Linear(1024, 256)).cuda()
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local])
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    g = torch.Generator(device="cpu").manual_seed(100 + rank)
    losses = []
    for step in range(8):
        x = torch.randn(64, 256, generator=g).cuda()
        loss = ddp(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()                    # gradients all-reduced by NCCL
        opt.step()
        t = loss.detach().clone()
        dist.all_reduce(t)
        losses.append(t.item() / world)
    big = torch.full((1 << 22,), float(rank + 1), device="cuda")   # 16 MiB, umpool's when enabled
    dist.all_reduce(big)
    allreduce_ok = bool((big == sum(range(1, world + 1))).all())
    checksum = sum(p.double().sum().item() for p in model.parameters())
    allocs = []
    if use == "umpool":
        import umpool
        allocs = [umpool.memory_stats(local)["allocation.all.allocated"]]
    gathered = [None] * world
    dist.all_gather_object(gathered, allocs)
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump(dict(losses=losses, checksum=checksum, allreduce_ok=allreduce_ok,
                           umpool_allocs=[a for r in gathered for a in r]), f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
