"""umpool's own PyTorch allocator (umpool.torch.enable(mode="allocator")): what
PyTorch and its users ask of a CUDA allocator works. Each test runs in a fresh
process (the allocator is chosen before CUDA is initialised)."""
import os

import pytest

from conftest import run_json, run_script

pytestmark = [
    pytest.mark.usefixtures("have_torch_cuda"),
    pytest.mark.skipif(os.environ.get("UMPOOL_TORCH_MODE") == "pluggable",
                       reason="these tests are for umpool's own allocator (mode='allocator')"),
]

ENABLE = "import umpool, umpool.torch\numpool.torch.enable(mode='allocator')\n"


def test_memory_stats_agree_with_umpool_and_summary_prints():
    res = run_json(ENABLE + """
import json, torch
model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.GELU(),
                            torch.nn.Linear(4096, 1024)).cuda()
x = torch.randn(256, 1024, device="cuda")
y = model(x).sum()
y.backward()
torch.cuda.synchronize()
t = torch.cuda.memory_stats()
u = umpool.memory_stats()
summary = torch.cuda.memory_summary()
out = dict(t_alloc=t["allocated_bytes.all.current"], t_alloc_peak=t["allocated_bytes.all.peak"],
           t_res=t["reserved_bytes.all.current"], t_res_peak=t["reserved_bytes.all.peak"],
           u_alloc=u["allocated_bytes.all.current"], u_alloc_peak=u["allocated_bytes.all.peak"],
           u_res=u["reserved_bytes.all.current"], u_res_peak=u["reserved_bytes.all.peak"],
           t_req=t["requested_bytes.all.current"], max_alloc=torch.cuda.max_memory_allocated(),
           allocated=torch.cuda.memory_allocated(), summary_lines=len(summary.splitlines()),
           backend=torch.cuda.memory.get_allocator_backend() if hasattr(torch.cuda.memory,
               "get_allocator_backend") else "")
torch.cuda.reset_peak_memory_stats()
out["peak_after_reset"] = torch.cuda.max_memory_allocated()
torch.cuda.reset_accumulated_memory_stats()
out["allocs_after_reset"] = torch.cuda.memory_stats()["allocation.all.allocated"]
print(json.dumps(out))
""")
    for key in ("alloc", "alloc_peak", "res", "res_peak"):
        t, u = res["t_" + key], res["u_" + key]
        assert u > 0 and abs(t - u) <= 0.01 * u, (key, t, u)
    assert 0 < res["t_req"] <= res["t_alloc"]
    assert res["max_alloc"] == res["t_alloc_peak"]
    assert res["summary_lines"] > 10
    assert res["peak_after_reset"] <= res["t_alloc_peak"]
    assert res["allocs_after_reset"] == 0


def test_out_of_memory_is_torch_out_of_memory_error_and_training_continues():
    res = run_json("""
import json, torch, umpool, umpool.torch
umpool.torch.enable(conf="capacity:2GiB", mode="allocator")
seen = []
attach = getattr(torch._C, "_cuda_attach_out_of_memory_observer", None)
if attach is not None:
    attach(lambda device, alloc, total, free: seen.append(int(alloc)))
model = torch.nn.Linear(512, 512).cuda()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
losses, kinds, msg = [], [], ""
for step in range(6):
    if step == 3:
        try:
            torch.empty(8 << 30, dtype=torch.uint8, device="cuda")
        except torch.OutOfMemoryError as e:
            kinds.append(type(e).__name__)
            msg = str(e)
    loss = model(torch.randn(64, 512, device="cuda")).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(json.dumps(dict(kinds=kinds, msg=msg, losses=losses, observers=len(seen),
                      has_observer_api=attach is not None,
                      ooms=torch.cuda.memory_stats()["num_ooms"])))
""")
    assert res["kinds"] == ["OutOfMemoryError"], res
    assert "8589934592 bytes" in res["msg"] and "umpool" in res["msg"]
    assert len(res["losses"]) == 6 and all(l == l for l in res["losses"])  # no NaN
    assert res["ooms"] >= 1
    if res["has_observer_api"]:
        assert res["observers"] >= 1


def test_memory_history_snapshot_loads_in_memory_viz(tmp_path):
    snap = tmp_path / "snap.pickle"
    res = run_json(ENABLE + f"""
import json, pickle, torch
from torch.cuda import _memory_viz
torch.cuda.memory._record_memory_history(max_entries=100000)
def make_activations():
    return [torch.empty(n, device="cuda") for n in (1000, 1 << 20, 40 << 20)]
xs = make_activations()
del xs[1]
torch.cuda.memory._dump_snapshot({str(snap)!r})
torch.cuda.memory._record_memory_history(enabled=None)
s = pickle.load(open({str(snap)!r}, "rb"))
trace = _memory_viz.trace_plot(s)
segments = _memory_viz.segment_plot(s)
frames = [f["name"] for t in s["device_traces"] for e in t for f in e.get("frames", [])]
live = [b for seg in s["segments"] for b in seg["blocks"] if b["state"] == "active_allocated"]
print(json.dumps(dict(actions=sorted(set(e["action"] for t in s["device_traces"] for e in t)),
                      frames="make_activations" in frames, trace_html=len(trace),
                      segment_html=len(segments), segments=len(s["segments"]), live=len(live),
                      live_frames=any(b.get("frames") for b in live))))
""")
    assert {"alloc", "free_requested", "free_completed"} <= set(res["actions"]), res
    assert res["frames"], "stack frames recorded with the allocations"
    assert res["live_frames"], "live blocks carry the stack that allocated them"
    assert res["trace_html"] > 1000 and res["segment_html"] > 1000
    assert res["segments"] >= 1 and res["live"] >= 2


COMPILE = """
import json, os, torch
USE = {use!r}
if USE == "umpool":
    import umpool, umpool.torch
    umpool.torch.enable(mode="allocator")
import torch._inductor.config as inductor_config
inductor_config.triton.slow_path_cudagraph_asserts = True   # checkPoolLiveAllocations
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(),
                            torch.nn.Linear(256, 64)).cuda()
infer = torch.compile(model, mode="reduce-overhead")
gen = torch.Generator(device="cpu").manual_seed(1)
outs = []
with torch.no_grad():
    for rep in range(3):
        for batch in (4, 8, 16, 8):          # several shapes: the graph tree branches
            x = torch.randn(batch, 64, generator=gen).cuda()
            outs.append(infer(x).double().sum().item())
opt = torch.optim.SGD(model.parameters(), lr=0.01)
@torch.compile(mode="reduce-overhead")
def step(x):
    return model(x).square().mean()
losses = []
for i in range(6):
    x = torch.randn(32, 64, generator=gen).cuda()
    loss = step(x)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    losses.append(loss.item())
torch.cuda.synchronize()
out = dict(outs=outs, losses=losses)
if USE == "umpool":
    out["restores"] = umpool.torch._enabled.umpool_torch_counter(b"checkpoint_restores")
    out["err"] = umpool.last_error()
print(json.dumps(out))
"""


def test_torch_compile_reduce_overhead_matches_native():
    native = run_json(COMPILE.format(use="native"))
    ours = run_json(COMPILE.format(use="umpool"))
    print("compile, native:", native)
    print("compile, umpool:", ours)
    assert ours["outs"] == native["outs"]
    assert ours["losses"] == native["losses"]


def test_role_mem_pool_serves_tensors_from_the_role():
    res = run_json(ENABLE + """
import json, torch
pool = umpool.torch.mem_pool("kv")
a = torch.empty(3 << 20, device="cuda")
with torch.cuda.use_mem_pool(pool):
    kv = torch.empty(5 << 20, device="cuda")
roles = {}
for span in umpool.snapshot()["spans"]:
    base = int(span["base"], 16)
    for t, name in ((a, "a"), (kv, "kv")):
        if base <= t.data_ptr() < base + span["bytes"] and span["kind"] == "segment":
            roles[name] = span["role"]
print(json.dumps(roles))
""")
    assert res == {"a": "default", "kv": "kv"}, res


def test_cuda_ipc_is_a_clear_error():
    rc, out, err = run_script(ENABLE + """
import torch
x = torch.ones(16, device="cuda")
x.untyped_storage()._share_cuda_()
""")
    assert rc != 0
    assert "CUDA IPC" in err and "managed" in err
