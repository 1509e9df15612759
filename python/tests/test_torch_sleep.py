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
