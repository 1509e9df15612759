"""umpool under PyTorch 2.11 on a GPU. Each test runs in a fresh process: the
allocator must be chosen before CUDA is initialised."""
import pytest

from conftest import run_json, run_script

pytestmark = pytest.mark.usefixtures("have_torch_cuda")

TRAIN = """
import json, os, torch
USE = {use!r}
if USE == "umpool":
    import umpool.torch
    umpool.torch.enable()
elif USE == "umpool_mempool":
    import umpool.torch
    torch.zeros(1, device="cuda")            # mempool mode works after CUDA init
    umpool.torch.enable(mode="mempool")
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 512),
                            torch.nn.GELU(), torch.nn.Linear(512, 10)).cuda()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
g = torch.Generator(device="cpu").manual_seed(1)
losses = []
for step in range(30):
    x = torch.randn(64, 256, generator=g).cuda()
    y = torch.randint(0, 10, (64,), generator=g).cuda()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.item())
out = dict(losses=losses)
if USE.startswith("umpool"):
    import umpool
    out["allocs"] = umpool.memory_stats()["allocation.all.allocated"]
    out["reserved"] = umpool.memory_stats()["reserved_bytes.all.current"]
print(json.dumps(out))
"""


@pytest.mark.parametrize("use", ["umpool", "umpool_mempool"])
def test_training_gives_the_same_losses_as_native(use):
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    native = run_json(TRAIN.format(use="native"), env)
    ours = run_json(TRAIN.format(use=use), env)
    # pluggable: every tensor is an umpool allocation; mempool: umpool serves segments
    assert ours["allocs"] > (100 if use == "umpool" else 0), "umpool was not used"
    assert ours["reserved"] > 0
    assert ours["losses"] == native["losses"]


def test_record_stream_protects_the_consumer():
    res = run_json("""
import json, torch, umpool.torch
umpool.torch.enable()
producer, consumer = torch.cuda.Stream(), torch.cuda.Stream()
bad = 0
for round in range(20):
    with torch.cuda.stream(producer):
        x = torch.full((1 << 20,), float(round), device="cuda")
    consumer.wait_stream(producer)
    with torch.cuda.stream(consumer):
        torch.cuda._sleep(20_000_000)        # the consumer is slow
        total = x.sum()
    x.record_stream(consumer)
    del x                                     # freed on the producer while still read
    with torch.cuda.stream(producer):
        for _ in range(8):                    # reuse on the producer overwrites nothing read
            y = torch.full((1 << 20,), -7.0, device="cuda")
            del y
    torch.cuda.synchronize()
    bad += int(total.item() != float(round) * (1 << 20))
print(json.dumps(dict(bad=bad, events=umpool.memory_stats()["umpool.events_recorded"])))
""")
    assert res["bad"] == 0
    assert res["events"] > 0


def test_empty_cache_lowers_reserved_bytes():
    res = run_json("""
import json, torch, umpool, umpool.torch
umpool.torch.enable()
xs = [torch.empty(64 << 20, dtype=torch.uint8, device="cuda") for _ in range(4)]
del xs
before = umpool.memory_stats()["reserved_bytes.all.current"]
torch.cuda.empty_cache()
after = umpool.memory_stats()["reserved_bytes.all.current"]
print(json.dumps(dict(before=before, after=after)))
""")
    assert res["before"] >= 256 << 20
    assert res["after"] < res["before"]


def test_memory_fraction_cap_raises_and_the_process_continues():
    res = run_json("""
import json, torch, umpool, umpool.torch
umpool.torch.enable()
torch.cuda.set_per_process_memory_fraction(0.01)
msg = None
try:
    torch.empty(8 << 30, dtype=torch.uint8, device="cuda")
except Exception as e:  # the message must be clear
    msg = f"{type(e).__name__}: {e}"
small = torch.ones(1000, device="cuda").sum().item()
print(json.dumps(dict(msg=msg, small=small, ooms=umpool.memory_stats()["num_ooms"])))
""")
    assert res["msg"] is not None
    assert "out of memory allocating 8589934592 bytes" in res["msg"]
    assert res["small"] == 1000.0
    assert res["ooms"] >= 1


def test_kv_mem_pool_routes_only_what_it_should():
    res = run_json("""
import json, torch, umpool, umpool.torch
pool = umpool.torch.mem_pool("kv")
a = torch.empty(1 << 20, device="cuda")          # native allocator
with torch.cuda.use_mem_pool(pool):
    kv = [torch.empty(4 << 20, device="cuda") for _ in range(4)]
b = torch.empty(1 << 20, device="cuda")          # native again
print(json.dumps(dict(
    a=umpool.block_size(a.data_ptr()), b=umpool.block_size(b.data_ptr()),
    kv=[umpool.block_size(t.data_ptr()) > 0 for t in kv],
    allocs=umpool.memory_stats()["allocation.all.allocated"])))
""")
    assert res["a"] == 0 and res["b"] == 0
    # PyTorch carves tensors from umpool segments: a tensor's pointer may be
    # inside a segment (block_size 0 for interior pointers) but some must start one.
    assert any(res["kv"])
    assert res["allocs"] >= 1


def test_prefetch_evict_and_fetch_keep_values():
    res = run_json("""
import json, torch, umpool, umpool.torch
umpool.torch.enable()
x = torch.arange(1 << 22, device="cuda", dtype=torch.float32)
ptr = x.data_ptr()
umpool.prefetch(x, "cpu")
umpool.prefetch(x[1000:], "cuda")        # a view: interior pointer, own length
umpool.prefetch(x, "cuda")
ok = bool((x == torch.arange(1 << 22, device="cuda", dtype=torch.float32)).all())
err = None
try:
    umpool.prefetch(ptr, "cpu", nbytes=1 << 40)
except umpool.UmpoolError as e:
    err = str(e)
kv = [torch.full((1 << 19,), float(i), device="cuda") for i in range(16)]   # 2 MiB each
umpool.prefetch_blocks(kv, "cpu")
umpool.prefetch_blocks(kv, "cuda")
kv_ok = all(bool((t == float(i)).all()) for i, t in enumerate(kv))
err2 = None
try:
    umpool.prefetch_blocks([kv[0], 12345], "cpu")
except umpool.UmpoolError as e:
    err2 = str(e)
print(json.dumps(dict(ok=ok, same=x.data_ptr() == ptr, err=err, kv_ok=kv_ok, err2=err2)))
""")
    assert res["ok"] and res["same"]
    assert "past the end" in res["err"]
    assert res["kv_ok"]
    assert "pointer 1" in res["err2"]


def test_enable_after_cuda_init_is_a_clear_error():
    rc, out, err = run_script("""
import torch, umpool.torch
torch.zeros(1, device="cuda")
umpool.torch.enable()
""")
    assert rc != 0
    assert "before CUDA is initialised" in err
    assert "mode='mempool'" in err


def test_free_with_another_device_current(have_torch_cuda):
    if have_torch_cuda < 2:
        pytest.skip("needs 2 GPUs")
    res = run_json("""
import json, torch, umpool, umpool.torch
umpool.torch.enable()
x = torch.empty(1 << 20, device="cuda:1")
y = torch.empty(1 << 20, device="cuda:0")
torch.cuda.set_device(0)
del x
torch.cuda.set_device(1)
del y
print(json.dumps(dict(d0=umpool.memory_stats(0)["allocated_bytes.all.current"],
                      d1=umpool.memory_stats(1)["allocated_bytes.all.current"],
                      a0=umpool.memory_stats(0)["allocation.all.allocated"],
                      a1=umpool.memory_stats(1)["allocation.all.allocated"],
                      err=umpool.last_error())))
""")
    assert res["a0"] >= 1 and res["a1"] >= 1, res
    assert res["d0"] == 0 and res["d1"] == 0, res
    assert res["err"] == "", res


GRAPH = """
import json, torch
USE = {use!r}
if USE == "umpool":
    import umpool.torch
    umpool.torch.enable()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(),
                            torch.nn.Linear(1024, 512)).cuda()
static_x = torch.randn(32, 512, device="cuda")
s = torch.cuda.Stream()
s.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(s):          # warm-up on a side stream, as torch.cuda.graph asks
    for _ in range(3):
        model(static_x)
torch.cuda.current_stream().wait_stream(s)
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g):
    static_y = model(static_x)
gen = torch.Generator(device="cpu").manual_seed(1)
outs, eager = [], []
with torch.no_grad():
    for i in range(5):
        static_x.copy_(torch.randn(32, 512, generator=gen))
        g.replay()
        outs.append(static_y.double().sum().item())
        eager.append(model(static_x).double().sum().item())
        junk = [torch.randn(1 << 18, device="cuda") for _ in range(16)]  # other work between replays
        del junk
torch.cuda.synchronize()
out = dict(outs=outs, eager=eager)
if USE == "umpool":
    import umpool
    from umpool import _lib
    out["pools_live"] = _lib.lib().umpool_graph_pool_count(0)
    del g, static_y
    import gc; gc.collect()
    out["pools_after"] = _lib.lib().umpool_graph_pool_count(0)
    out["err"] = umpool.last_error()
print(json.dumps(out))
"""


def test_cuda_graph_capture_and_replay_match_native():
    native = run_json(GRAPH.format(use="native"))
    ours = run_json(GRAPH.format(use="umpool"))
    print("graph replays, native:", native["outs"])
    print("graph replays, umpool:", ours["outs"], "private pools:", ours["pools_live"])
    assert ours["outs"] == native["outs"], (ours, native)
    # Replays compute what eager mode computes on the same input.
    for a, b in zip(ours["outs"], ours["eager"]):
        assert abs(a - b) <= 1e-3 * max(1.0, abs(b)), (a, b)
    assert ours["pools_live"] == 1, ours          # the graph's private pool
    assert ours["err"] == "", ours


def test_torchrun_two_gpus_nccl_training_matches_native(have_torch_cuda, tmp_path):
    if have_torch_cuda < 2:
        pytest.skip("needs 2 GPUs")
    import os, subprocess, sys
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist_train.py")
    results = {}
    for use, port in (("native", 29513), ("umpool", 29514)):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(script)) + os.pathsep + env.get("PYTHONPATH", "")
        env["NCCL_NVLS_ENABLE"] = "0"
        out = tmp_path / f"{use}.json"
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                            "--master-port", str(port), script, use, str(out)],
                           env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"torchrun {use} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        import json
        results[use] = json.loads(out.read_text())
    n, u = results["native"], results["umpool"]
    print("native", n)
    print("umpool", u)
    assert u["losses"] == n["losses"]
    assert u["checksum"] == n["checksum"]
    assert u["allreduce_ok"] and n["allreduce_ok"]
    assert all(a > 0 for a in u["umpool_allocs"]), u   # each rank's own device pool served it
