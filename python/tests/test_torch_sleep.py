"""umpool.sleep / wake_up under PyTorch on a GPU: weights at the same data_ptr
with the same bits, a CUDA graph captured before the sleep replays to the same
output, another allocator gets the memory meanwhile, bad use is refused. Each
test runs in a fresh process (the allocator is chosen before CUDA starts)."""
import pytest

from conftest import run_json

pytestmark = pytest.mark.usefixtures("have_torch_cuda")

# Role MemPools need umpool's own allocator (PyTorch's pluggable wrapper has no
# createOrIncrefPool); under the pluggable fallback everything is "default".
POOLS = """
import contextlib, json, torch, umpool, umpool.torch
umpool.torch.enable()
OWN = umpool.torch.mode() == "allocator"
def role(name):
    return torch.cuda.use_mem_pool(umpool.torch.mem_pool(name)) if OWN else contextlib.nullcontext()
"""

SLEEP = POOLS + """
torch.manual_seed(0)
with role("weights"):
    model = torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(16)]).cuda().half()
with role("kv"):
    kv = torch.ones(64 << 20, dtype=torch.uint8, device="cuda")
x_cpu = torch.randn(8, 2048).half()
x = x_cpu.cuda()
side = torch.cuda.Stream()
side.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(side):
    for _ in range(2):
        model(x)
torch.cuda.current_stream().wait_stream(side)
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g):
    y = model(x)
g.replay()
ref = y.float().cpu()
saved = [p.detach().cpu() for p in model.parameters()]
ptrs = [p.data_ptr() for p in model.parameters()]
out = {}
if OWN:
    umpool.sleep(offload=("weights",), discard=("kv", "default"))
else:
    umpool.sleep(offload=("default",))
torch.cuda.synchronize()
out["asleep"] = umpool.is_asleep()
try:
    with torch.cuda.graph(torch.cuda.CUDAGraph()):
        umpool.sleep(offload=("weights",))
    out["sleep_in_capture"] = "no error"
except Exception as e:
    out["sleep_in_capture"] = type(e).__name__ + ": " + str(e)[:200]
umpool.wake_up()
umpool.wake_up()                      # awake: a no-op
torch.cuda.synchronize()
out["awake"] = not umpool.is_asleep()
out["same_ptrs"] = ptrs == [p.data_ptr() for p in model.parameters()]
out["same_bits"] = all(torch.equal(a, p.detach().cpu()) for a, p in zip(saved, model.parameters()))
x.copy_(x_cpu.cuda())                 # the static input was discarded with "default"
g.replay()
out["graph_matches"] = torch.equal(ref, y.float().cpu())
kv.fill_(3)
out["kv_usable"] = int(kv.sum().item()) == 3 * (64 << 20)
print(json.dumps(out))
"""


def test_sleep_keeps_weights_and_graphs_and_refuses_capture():
    res = run_json(SLEEP)
    print(res)
    assert res["asleep"] and res["awake"], res
    assert res["same_ptrs"] and res["same_bits"], res
    assert res["graph_matches"], res
    assert res["kv_usable"], res
    assert "capture" in res["sleep_in_capture"], res


VMM_FREE = POOLS + """
with role("weights"):
    w = torch.full((1 << 30,), 7, dtype=torch.uint8, device="cuda")   # 1 GiB of weights
with role("kv"):
    kv = torch.ones(256 << 20, dtype=torch.uint8, device="cuda")
torch.cuda.synchronize()
free0 = torch.cuda.mem_get_info()[0]
umpool.sleep(offload=("weights",), discard=("kv",))
torch.cuda.synchronize()
free1 = torch.cuda.mem_get_info()[0]
umpool.wake_up()
torch.cuda.synchronize()
free2 = torch.cuda.mem_get_info()[0]
kv.fill_(1)
print(json.dumps(dict(own=OWN, freed=free1 - free0, taken_back=free1 - free2,
                      weights_ok=bool((w == 7).all().item()),
                      kv_usable=int(kv.sum().item()) == 256 << 20)))
"""


def test_vmm_backend_sleeps_the_same_and_gives_the_pages_to_the_driver():
    # The whole sleep test again with the pool on CUDA virtual memory...
    vmm = {"UMPOOL_CONF": "backend:vmm"}
    res = run_json(SLEEP, env_extra=vmm)
    assert res["asleep"] and res["awake"], res
    assert res["same_ptrs"] and res["same_bits"] and res["graph_matches"], res
    assert res["kv_usable"], res
    # ...and what it slept shows as free to torch.cuda.mem_get_info() (with
    # managed memory it does not: docs/residency.md).
    res = run_json(VMM_FREE, env_extra=vmm)
    if not res["own"]:
        pytest.skip("role MemPools need umpool's own allocator")
    slept = (1 << 30) + (256 << 20)
    assert res["freed"] >= slept - (64 << 20), res
    assert res["taken_back"] >= slept - (64 << 20), res
    assert res["weights_ok"] and res["kv_usable"], res


RECLAIM = POOLS + """
import ctypes
cudart = None
for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
    try:
        cudart = ctypes.CDLL(name)
        break
    except OSError:
        pass
with role("weights"):
    w = torch.full((1 << 30,), 7, dtype=torch.uint8, device="cuda")   # 1 GiB of weights
torch.cuda.synchronize()
umpool.sleep(offload=("weights", "default"))
torch.cuda.synchronize()
# cudaMalloc in the same process while asleep (1 GiB: far under the free memory
# here; the 16 GiB case with a full card is bench/torch/residency.py's).
p = ctypes.c_void_p()
rc = cudart.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(1 << 30))
rc2 = cudart.cudaMemset(p, 1, ctypes.c_size_t(1 << 30)) if rc == 0 else -1
cudart.cudaFree(p)
umpool.wake_up()
torch.cuda.synchronize()
umpool.release_staging()
print(json.dumps(dict(malloc=rc, memset=rc2, ok=bool((w == 7).all().item()))))
"""


def test_another_allocator_works_while_asleep_and_weights_return():
    res = run_json(RECLAIM)
    assert res["malloc"] == 0 and res["memset"] == 0, res
    assert res["ok"], res


TAGS = """
import json, torch, umpool, umpool.torch
umpool.torch.enable()
out = {"mode": umpool.torch.mode()}
if out["mode"] != "allocator":
    try:
        umpool.tag("rollout").__enter__()
        out["refused"] = "no error"
    except umpool.UmpoolError as e:
        out["refused"] = str(e)
    print(json.dumps(out)); raise SystemExit
torch.manual_seed(0)
with umpool.tag("rollout", role="weights"):
    weights = [torch.randn(1 << 20, device="cuda") for _ in range(8)]   # 4 MiB each
with umpool.tag("rollout", role="kv"):
    kv = torch.ones(64 << 20, dtype=torch.uint8, device="cuda")
with umpool.tag("trainer"):
    trainer = torch.randn(16 << 20, device="cuda")
plain = torch.randn(1 << 20, device="cuda")
saved = [w.cpu() for w in weights]
trainer_saved, plain_saved = trainer.cpu(), plain.cpu()
ptrs = [w.data_ptr() for w in weights]
out["pools_distinct"] = len({umpool.torch.tag_pool("rollout", "weights").id,
                             umpool.torch.tag_pool("rollout", "kv").id,
                             umpool.torch.tag_pool("trainer").id}) == 3
out["in_tag_pools"] = umpool.block_size(ptrs[0]) >= 4 << 20
umpool.sleep(offload=("weights",), discard=("kv", "default"), tags="rollout")
torch.cuda.synchronize()
out["device_pool_awake"] = not umpool.is_asleep()
# Untagged and other tags' tensors are untouched by the rollout's sleep.
out["trainer_intact"] = torch.equal(trainer.cpu(), trainer_saved)
out["plain_intact"] = torch.equal(plain.cpu(), plain_saved)
for w in weights:
    w.zero_()                        # written while asleep: lost at wake
umpool.sleep(offload=("weights",), tags="rollout")   # asleep: a no-op
umpool.wake_up(tags="rollout")
umpool.wake_up(tags="rollout")       # awake: a no-op
torch.cuda.synchronize()
out["same_ptrs"] = ptrs == [w.data_ptr() for w in weights]
out["same_bits"] = all(torch.equal(a, w.cpu()) for a, w in zip(saved, weights))
kv.fill_(2)
out["kv_usable"] = int(kv.sum().item()) == 2 * (64 << 20)
try:
    umpool.sleep(tags="nobody")
    out["unknown_tag"] = "no error"
except ValueError as e:
    out["unknown_tag"] = str(e)
print(json.dumps(out))
"""


def test_tags_put_exactly_their_tensors_to_sleep():
    res = run_json(TAGS)
    if res["mode"] != "allocator":
        assert "own PyTorch allocator" in res["refused"], res
        return
    assert res["pools_distinct"] and res["in_tag_pools"] and res["device_pool_awake"], res
    assert res["trainer_intact"], res
    assert res["plain_intact"], res
    assert res["same_ptrs"] and res["same_bits"] and res["kv_usable"], res
    assert "no tag 'nobody'" in res["unknown_tag"], res


STREAM = POOLS + """
from umpool.streaming import LayerStreamer
out = {"mode": umpool.torch.mode()}
torch.manual_seed(0)
with role("weights"):
    layers = torch.nn.ModuleList(
        [torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.GELU()) for _ in range(8)]).cuda()
layer_bytes = sum(p.numel() * p.element_size() for p in layers[0].parameters())
x = torch.randn(16, 1024, device="cuda")
def run():
    with torch.no_grad():
        h = x
        for l in layers:
            h = l(h)
        return h.cpu()
ref = run()
ptrs = [p.data_ptr() for p in layers.parameters()]
if not OWN:
    try:
        LayerStreamer(layers, 5 * layer_bytes)
    except Exception as e:
        out["refused"] = str(e)[:300]
    print(json.dumps(out))
    raise SystemExit
for mode in ("prefetch", "fault", "prefetch"):
    s = LayerStreamer(layers, 5 * layer_bytes, mode=mode)
    out.setdefault("streamed", len(s.streamed))
    out.setdefault("plan_ok", s.plan_bytes <= 5 * layer_bytes)
    outs = [run() for _ in range(3)]
    out[mode + "_matches"] = all(torch.equal(ref, o) for o in outs)
    s.remove()
out["resident_after_remove"] = torch.equal(ref, run())
moved = [p.data_ptr() for p in layers.parameters()]
out["resident_layers_kept_ptrs"] = ptrs[:6] == moved[:6]
try:
    LayerStreamer(layers, layer_bytes)
    out["too_small"] = "no error"
except ValueError as e:
    out["too_small"] = str(e)
print(json.dumps(out))
"""


def test_layer_streamer_runs_layers_beyond_the_budget_with_the_same_results():
    res = run_json(STREAM)
    if res["mode"] != "allocator":
        assert "own PyTorch allocator" in res.get("refused", ""), res
        return
    assert res["streamed"] == 5 and res["plan_ok"], res  # 3 kept + 2 streaming: 5 layers
    assert res["prefetch_matches"] and res["fault_matches"], res
    assert res["resident_after_remove"] and res["resident_layers_kept_ptrs"], res
    assert "cannot hold" in res["too_small"], res
