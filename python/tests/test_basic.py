"""The Python package without torch or a GPU: library loading, configuration,
stats and errors, on the host backend."""
import os

import pytest

from conftest import run_json, run_script


def test_import_needs_neither_torch_nor_gpu():
    rc, out, err = run_script("import umpool; print(umpool.version())")
    assert rc == 0, err
    assert out.strip() == "0.1.0"


def test_stats_have_pytorch_style_keys():
    res = run_json("""
import json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:64MiB,stats_publish_bytes:0")
l = _lib.lib()
p = l.umpool_pool_malloc(3000, 0, None)
q = l.umpool_pool_malloc(40 << 20, 0, None)
s = umpool.memory_stats()
size = umpool.block_size(p)
l.umpool_free(p, 3000, 0, None)
l.umpool_free(q, 40 << 20, 0, None)
after = umpool.memory_stats(0)
umpool.empty_cache()
emptied = umpool.memory_stats()
print(json.dumps(dict(s=s, size=size, after=after, emptied=emptied,
                      summary=umpool.memory_summary())))
""")
    s = res["s"]
    assert s["allocated_bytes.all.current"] == 3072 + (40 << 20)
    assert s["allocated_bytes.all.peak"] == 3072 + (40 << 20)
    assert s["reserved_bytes.all.current"] >= s["allocated_bytes.all.current"]
    assert s["reserved_bytes.large_pool.current"] == 40 << 20
    assert s["allocation.all.current"] == 2
    assert s["num_ooms"] == 0 and s["num_alloc_retries"] == 0
    assert s["umpool.capacity_bytes"] == 64 << 20
    assert res["size"] == 3072
    assert res["after"]["allocated_bytes.all.current"] == 0
    assert res["after"]["allocated_bytes.all.peak"] == 3072 + (40 << 20)
    assert res["emptied"]["reserved_bytes.all.current"] == 0
    assert "host" in res["summary"]


def test_bad_configuration_names_the_key():
    res = run_json("""
import json, umpool
errs = []
for conf in ("capacity:lots", "colour:red", "kv.prefetch:sometimes", "nocolon"):
    try:
        umpool.configure(conf)
        errs.append(None)
    except umpool.UmpoolError as e:
        errs.append(str(e))
print(json.dumps(errs))
""")
    assert "lots" in res[0]
    assert "colour" in res[1]
    assert "sometimes" in res[2]
    assert "nocolon" in res[3]


def test_errors_are_exceptions_and_the_pool_keeps_working():
    res = run_json("""
import json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:16MiB")
l = _lib.lib()
out = {}
out["oom_ptr"] = l.umpool_pool_malloc(1 << 30, 0, None)
out["oom_err"] = umpool.last_error()
out["neg_ptr"] = l.umpool_pool_malloc(2**64 - 1, 0, None)
out["neg_err"] = umpool.last_error()
p = l.umpool_pool_malloc(4096, 0, None)
l.umpool_free(p, 4096, 0, None)
l.umpool_free(p, 4096, 0, None)
out["double_free"] = umpool.last_error()
try:
    umpool.configure("backend:host")
except umpool.UmpoolError as e:
    out["late_configure"] = str(e)
try:
    umpool.memory_stats(-1)
except umpool.UmpoolError as e:
    out["bad_device"] = str(e)
out["again"] = l.umpool_pool_malloc(4096, 0, None) == p
out["ooms"] = umpool.memory_stats()["num_ooms"]
print(json.dumps(out))
""")
    assert res["oom_ptr"] is None and "out of memory allocating 1073741824 bytes" in res["oom_err"]
    assert res["neg_ptr"] is None and "absurd" in res["neg_err"]
    assert "double free" in res["double_free"]
    assert "already exists" in res["late_configure"]
    assert "invalid device" in res["bad_device"]
    assert res["again"] is True
    assert res["ooms"] == 1


def test_missing_library_is_a_clear_error():
    rc, out, err = run_script("import umpool; umpool.version()",
                              {"UMPOOL_LIBRARY": "/nonexistent/libumpool.so"})
    assert rc != 0
    assert "UMPOOL_LIBRARY" in err and "no such file" in err


def test_enable_without_torch_says_so():
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed")
    except ImportError:
        pass
    rc, out, err = run_script("import umpool.torch; umpool.torch.enable()")
    assert rc != 0 and "needs PyTorch" in err


def test_snapshot_and_trace_recording(tmp_path):
    trace = tmp_path / "run.csv"
    res = run_json(f"""
import json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:256MiB,trace:{trace}")
l = _lib.lib()
p = l.umpool_pool_malloc(3000, 0, None)
q = l.umpool_pool_malloc(40 << 20, 0, None)
snap = umpool.snapshot()
l.umpool_free(p, 3000, 0, None)
l.umpool_free(q, 40 << 20, 0, None)
err = None
try:
    umpool.snapshot(-3)
except umpool.UmpoolError as e:
    err = str(e)
print(json.dumps(dict(kinds=sorted(s["kind"] for s in snap["spans"]), err=err,
                      live=snap["allocated_bytes"])))
""")
    assert res["kinds"] == ["segment", "segment", "slab"]
    assert res["live"] >= 3000 + (40 << 20)
    assert "invalid device" in res["err"]
    lines = trace.read_text().splitlines()
    assert lines[1] == "op,id,bytes,device,stream,role,t_ns,thread"
    assert [l.split(",")[0] for l in lines[2:]] == ["a", "a", "f", "f"]
    assert lines[2].startswith("a,1,3000,0,0,default,")


def test_the_pluggable_fallback_finds_its_cpp_entry_points():
    res = run_json("""
import ctypes, json
from umpool import _lib, torch as ut
l = ctypes.CDLL(_lib.library_path())
print(json.dumps([bool(ctypes.cast(getattr(l, n), ctypes.c_void_p).value)
                  for n in (ut._TORCH_MALLOC, ut._TORCH_BEGIN, ut._TORCH_END, ut._TORCH_RELEASE)]))
""")
    assert res == [True, True, True, True]


def test_memory_stats_come_from_the_librarys_table():
    res = run_json("""
import json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:64MiB,stats_publish_bytes:0")
l = _lib.lib()
p = l.umpool_pool_malloc(3000, 0, None)
s = umpool.memory_stats()
l.umpool_free(p, 3000, 0, None)
print(json.dumps(dict(s=s, roles=list(_lib.role_names()))))
""")
    s = res["s"]
    assert s["requested_bytes.all.current"] == 3000
    assert s["allocated_bytes.all.current"] == 3072
    assert s["allocation.all.current"] == 1
    assert "umpool.streams_released" in s and "umpool.fence_errors" in s
    assert res["roles"] == ["default", "weights", "kv", "activations"]


def test_sleep_and_wake_up_keep_addresses_and_refuse_bad_roles():
    res = run_json("""
import ctypes, json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:64MiB")
l = _lib.lib()
p = ctypes.c_void_p()
assert l.umpool_alloc(4 << 20, 0, None, 1, ctypes.byref(p)) == 0   # weights
ctypes.memset(p.value, 0x3c, 4 << 20)
out = {"before": umpool.is_asleep()}
umpool.reserve_staging(offload=("weights",))
umpool.reserve_eviction_staging(1 << 20)   # pins a chunk for evictions by staging
umpool.trim()                              # and frees it: no evicted tensor uses it
umpool.sleep(offload=("weights",), discard=("kv", "activations"))
out["asleep"] = umpool.is_asleep()
umpool.sleep(offload="weights")        # asleep already: a no-op
ctypes.memset(p.value, 0x11, 4 << 20)  # written while asleep: lost at wake-up
umpool.wake_up()
umpool.release_staging()
umpool.wake_up()                       # awake: a no-op
out["after"] = umpool.is_asleep()
out["kept"] = ctypes.string_at(p.value, 4 << 20) == b"\\x3c" * (4 << 20)
assert l.umpool_create_pool(0, 3, 4) == 0
q = ctypes.c_void_p()
assert l.umpool_pool_alloc(0, 3, 4, 1 << 20, None, ctypes.byref(q)) == 0
umpool.sleep(offload="default", pool=(3, 4))
out["pool_alone"] = not umpool.is_asleep()
umpool.wake_up(pool=(3, 4))
# A private pool with a role: its blocks are that role's for sleep.
assert l.umpool_set_pool_role(0, 9, 10, 1) == 0                       # weights
r = ctypes.c_void_p()
assert l.umpool_pool_alloc(0, 9, 10, 4 << 20, None, ctypes.byref(r)) == 0
ctypes.memset(r.value, 0x5e, 4 << 20)
umpool.sleep(offload="weights", pool=(9, 10))
ctypes.memset(r.value, 0x01, 4 << 20)
umpool.wake_up(pool=(9, 10))
out["pool_role_kept"] = ctypes.string_at(r.value, 4 << 20) == b"\x5e" * (4 << 20)
# unchanged=True: the pool's last sleep staged the same block, so its copy is
# reused; the write made against the promise is undone (no copy was made).
ctypes.memset(r.value, 0x22, 4 << 20)
umpool.sleep(offload="weights", pool=(9, 10), unchanged=True)
umpool.wake_up(pool=(9, 10))
out["unchanged_reused"] = ctypes.string_at(r.value, 4 << 20) == b"\x5e" * (4 << 20)
out["bad_pool_role"] = l.umpool_set_pool_role(0, 9, 10, 7) != 0 and "invalid role" in umpool.last_error()
for bad in ({"offload": ("weights",), "discard": ("weights",)}, {"offload": ("moon",)},
            {"offload": "default", "pool": (3, 5)}, {"pool": "nope"}, {"reserve": ("moon",)},
            {"pool": (3, 4), "tags": "rollout"}, {"evict_reserve": -1}):
    try:
        if "evict_reserve" in bad:
            umpool.reserve_eviction_staging(bad["evict_reserve"])
        elif "reserve" in bad:
            umpool.reserve_staging(offload=bad["reserve"])
        else:
            umpool.sleep(**bad)
    except (umpool.UmpoolError, ValueError) as e:
        out.setdefault("errors", []).append(str(e))
print(json.dumps(out))
""")
    assert res["before"] is False and res["asleep"] is True and res["after"] is False
    assert res["kept"] is True
    assert "both offloaded and discarded" in res["errors"][0]
    assert "unknown role 'moon'" in res["errors"][1]
    assert "no private pool (3, 5)" in res["errors"][2]
    assert "torch.cuda.MemPool" in res["errors"][3]
    assert "unknown role 'moon'" in res["errors"][4]
    assert "pass pool or tags, not both" in res["errors"][5]
    assert "nbytes must be an int >= 0" in res["errors"][6]
    assert res["pool_alone"] is True
    assert res["unchanged_reused"] is True
    assert res["pool_role_kept"] is True and res["bad_pool_role"] is True


def test_pressure_callback_frees_and_the_allocation_succeeds():
    res = run_json("""
import ctypes, json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:64MiB")
l = _lib.lib()
held = []
for _ in range(3):
    p = ctypes.c_void_p()
    assert l.umpool_alloc(20 << 20, 0, None, 2, ctypes.byref(p)) == 0
    held.append(p.value)
calls = []
def relieve(nbytes, role):
    calls.append((nbytes, role))
    l.umpool_free_block(ctypes.c_void_p(held.pop()))
    return True
umpool.set_pressure_callback(relieve)
q = ctypes.c_void_p()
rc = l.umpool_alloc(20 << 20, 0, None, 2, ctypes.byref(q))
umpool.set_pressure_callback(None)
rc2 = l.umpool_alloc(60 << 20, 0, None, 2, ctypes.byref(ctypes.c_void_p()))
print(json.dumps({"rc": rc, "calls": calls, "rc2": rc2}))
""")
    assert res["rc"] == 0
    assert len(res["calls"]) == 1 and res["calls"][0][0] >= 20 << 20 and res["calls"][0][1] == "kv"
    assert res["rc2"] == 2  # out of memory, no callback any more


def test_pressure_callback_is_told_at_the_watermark():
    res = run_json("""
import ctypes, json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:64MiB,pressure_watermark:24MiB")
l = _lib.lib()
calls = []
umpool.set_pressure_callback(lambda nbytes, role: calls.append((nbytes, role)) or False)
rcs = []
for _ in range(7):                      # 42 MiB of KV: past the watermark once
    p = ctypes.c_void_p()
    rcs.append(l.umpool_alloc(6 << 20, 0, None, 2, ctypes.byref(p)))
print(json.dumps({"rcs": rcs, "calls": calls,
                  "reserved": umpool.memory_stats()["reserved_bytes.all.current"]}))
""")
    assert res["rcs"] == [0] * 7
    assert len(res["calls"]) == 1, res
    nbytes, role = res["calls"][0]
    assert role == "kv" and 0 < nbytes <= res["reserved"] - (24 << 20), res


def test_kv_budget_evicts_the_least_recently_fetched_blocks():
    res = run_json("""
import ctypes, json, umpool
from umpool import _lib
umpool.configure("backend:host,capacity:256MiB,kv.hbm_budget:16MiB")
l = _lib.lib()
blocks = []
for _ in range(6):                      # 6 x 4 MiB of KV: 8 MiB over budget
    p = ctypes.c_void_p()
    assert l.umpool_alloc(4 << 20, 0, None, 2, ctypes.byref(p)) == 0
    blocks.append(p.value)
before = umpool.residency("kv")
first = (ctypes.c_void_p * 2)(blocks[0], blocks[1])
assert l.umpool_prefetch_blocks(first, 2, 1, None) == 0   # resume the oldest two
after = umpool.residency("kv")
where = [umpool.block_location(b) for b in blocks]
try:
    umpool.block_location(ctypes.addressof(ctypes.c_int()))
    where.append("no error")
except umpool.UmpoolError as e:
    where.append(str(e))
bad = []
for role in ("moon",):
    try:
        umpool.residency(role)
    except ValueError as e:
        bad.append(str(e))
print(json.dumps({"before": before, "after": after, "bad": bad, "where": where}))
""")
    b, a = res["before"], res["after"]
    assert b["budget_bytes"] == 16 << 20 and b["resident_bytes"] == 16 << 20, b
    assert b["host_bytes"] == 8 << 20 and b["budget_evictions"] == 2, b
    assert a["resident_bytes"] == 16 << 20 and a["fetches"] == 2, a
    assert a["budget_evictions"] == 4 and a["host_bytes"] == 8 << 20, a
    assert a["allocated_bytes"] == 24 << 20 and a["reserved_bytes"] >= 24 << 20, a
    assert "unknown role 'moon'" in res["bad"][0]
    # The oldest two fetched back, the next two evicted in their place.
    assert res["where"][:6] == ["cuda", "cuda", "cpu", "cpu", "cuda", "cuda"], res["where"]
    assert "umpool.block_location" in res["where"][6], res["where"]


def test_torch_profile():
    # umpool.torch.enable's configuration (without torch: the helper alone),
    # then one thing it does: a quiet thread's cache emptied by empty_cache.
    res = run_json("""
import json, threading, umpool
from umpool import _lib, torch as ut
texts = [ut._conf_for_torch(None), ut._conf_for_torch("backend:host"),
         ut._conf_for_torch("backend:host,drain_idle_caches:off")]
umpool.configure("backend:host,stats_publish_bytes:0")  # the caller's own, kept
texts.append(ut._conf_for_torch(None))
ut._configure(None)  # as enable(conf=None) does
l = _lib.lib()
freed, done = threading.Event(), threading.Event()
def quiet():
    ps = [l.umpool_pool_malloc(8192, 0, None) for _ in range(40)]
    for p in ps:
        l.umpool_free(p, 8192, 0, None)
    freed.set()
    done.wait()
t = threading.Thread(target=quiet)
t.start()
freed.wait()
umpool.empty_cache()
s = umpool.memory_stats()
done.set()
t.join()
print(json.dumps({"texts": texts, "drained": s["umpool.caches_drained"],
                  "reserved": s["reserved_bytes.all.current"]}))
""", env_extra={"UMPOOL_CONF": "backend:host"})
    profile = "drain_idle_caches:on,give_back_slack:0.01"
    assert res["texts"] == ["backend:host," + profile, "backend:host," + profile,
                            "backend:host,drain_idle_caches:off,give_back_slack:0.01",
                            "backend:host,stats_publish_bytes:0," + profile], res["texts"]
    if not os.path.exists("/proc/self"):  # membarrier is Linux's
        pytest.skip("not Linux: the pool does not drain")
    assert res["drained"] == 1 and res["reserved"] == 0, res
