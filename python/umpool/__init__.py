"""umpool: a stream-aware caching pool allocator over CUDA managed memory.

Importable without torch or a GPU. `umpool.torch` plugs it into PyTorch.
The functions here mirror torch.cuda's memory API for umpool's pools, since
under a pluggable allocator torch.cuda.memory_stats() and friends raise.
"""
import ctypes

from . import _lib

__all__ = ["UmpoolError", "configure", "memory_stats", "memory_summary",
           "reset_peak_memory_stats", "empty_cache", "trim", "last_error",
           "block_size", "block_location", "prefetch", "prefetch_blocks", "snapshot", "library_path", "version",
           "sleep", "wake_up", "is_asleep", "reserve_staging", "reserve_eviction_staging", "release_staging", "residency",
           "set_pressure_callback", "tag"]

__version__ = "0.1.0"


class UmpoolError(RuntimeError):
    """An error reported by libumpool (the text of umpool_last_error())."""


def library_path():
    return _lib.library_path()


def version():
    return _lib.lib().umpool_version().decode()


def _device_index(device):
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    index = getattr(device, "index", None)  # torch.device without importing torch
    if index is not None:
        return index
    if isinstance(device, str):
        return int(device.split(":")[1]) if ":" in device else 0
    if getattr(device, "type", None) is not None:
        return 0
    raise TypeError(f"not a device: {device!r}")


def _check(rc, what):
    if rc != 0:
        raise UmpoolError(f"{what}: {last_error() or 'error code ' + str(rc)}")


def last_error():
    """The calling thread's last umpool error text ('' if none)."""
    return _lib.lib().umpool_last_error().decode()


_configured = None  # the text of the last configure() that took


def configure(conf):
    """Configures every pool created afterwards (UMPOOL_CONF syntax, docs/conf.md).
    Must run before the first allocation; raises UmpoolError naming a bad key or value."""
    global _configured
    _check(_lib.lib().umpool_configure(conf.encode()), "umpool.configure")
    _configured = conf


def _raw_stats(device=None):
    s = _lib.stats_type()()
    _check(_lib.lib().umpool_get_stats(_device_index(device), ctypes.byref(s)),
           "umpool.memory_stats")
    return s


def memory_stats(device=None):
    """The device's statistics (its pool and its CUDA graph private pools),
    from umpool's table of statistics: PyTorch's key names where one exists
    (allocated_bytes.all.current, reserved_bytes.all.peak, num_alloc_retries,
    num_ooms, ...) and "umpool.<name>" for umpool's own."""
    s = _raw_stats(device)
    out = {}
    for name, _, key in _lib.stats_fields():
        out[key or "umpool." + name] = getattr(s, name)
    out["allocation.all.current"] = s.allocations - s.frees
    return out


def residency(role="kv", device=None):
    """One role's residency on the device (the device's pool and its private
    pools): budget_bytes (UMPOOL_CONF "<role>.hbm_budget:<size>"; 0 = none),
    and for large blocks resident_bytes (for a budgeted role: blocks
    allocated or fetched and not evicted since), host_bytes (blocks umpool
    evicted and has not fetched back), evictions, budget_evictions, fetches,
    evicted_bytes, fetched_bytes; and the role's share of memory_stats():
    reserved_bytes (populated bytes of its large space and slabs) and
    allocated_bytes (its live blocks)."""
    r = _lib.Residency()
    _check(_lib.lib().umpool_get_residency(_device_index(device),
                                           _lib.role_index(role, "umpool.residency"),
                                           ctypes.byref(r)), "umpool.residency")
    return {name: getattr(r, name) for name, _ in r._fields_}


def snapshot(device=None):
    """The device pool's slabs, segments and blocks as a dict (JSON format in
    docs/trace.md); draw it with tools/umpool-snapshot."""
    import json
    l = _lib.lib()
    d = _device_index(device)
    n = l.umpool_snapshot_json(d, None, 0)
    while True:
        if n < 0:
            raise UmpoolError(f"umpool.snapshot: invalid device {d}")
        buf = ctypes.create_string_buffer(n)
        m = l.umpool_snapshot_json(d, buf, n)
        if m <= n:
            return json.loads(buf.value.decode())
        n = m


def memory_summary(device=None):
    """A human-readable summary of the device's pool."""
    l = _lib.lib()
    d = _device_index(device)
    n = l.umpool_stats_text(d, None, 0)
    if n < 0:
        raise UmpoolError(f"umpool.memory_summary: invalid device {d}")
    import ctypes
    buf = ctypes.create_string_buffer(n)
    l.umpool_stats_text(d, buf, n)
    return buf.value.decode()


def reset_peak_memory_stats(device=None):
    _check(_lib.lib().umpool_reset_peak_stats(_device_index(device)),
           "umpool.reset_peak_memory_stats")


def empty_cache():
    """Returns every pool's empty slabs and free large blocks to CUDA."""
    l = _lib.lib()
    l.umpool_clear_last_error()
    l.umpool_empty_cache()
    err = last_error()
    if err:
        raise UmpoolError(f"umpool.empty_cache: {err}")


def trim(device=None):
    _check(_lib.lib().umpool_trim(_device_index(device)), "umpool.trim")


def prefetch(tensor, where="cuda", stream=None, nbytes=None):
    """Moves a tensor's memory (or `nbytes` at an integer address) to the GPU
    ("cuda") or to host memory ("cpu"), ordered on `stream` (a torch.cuda.Stream,
    a raw cudaStream_t int, or None for the current stream). Addresses never
    change: evict a paused request's KV cache with "cpu" and bring it back with
    "cuda" before it resumes."""
    if where not in ("cuda", "cpu"):
        raise ValueError(f"where must be 'cuda' or 'cpu', not {where!r}")
    if isinstance(tensor, int):
        ptr = tensor
        size = nbytes or 0
    else:
        ptr = tensor.data_ptr()
        size = nbytes if nbytes is not None else tensor.numel() * tensor.element_size()
        if stream is None:
            import torch
            stream = torch.cuda.current_stream(tensor.device)
    raw = getattr(stream, "cuda_stream", stream) or None
    _check(_lib.lib().umpool_prefetch(ptr, size, 1 if where == "cuda" else 0, raw),
           "umpool.prefetch")


def prefetch_blocks(tensors, where="cuda", stream=None):
    """Moves the whole umpool blocks holding `tensors` (tensors or integer
    addresses, all on one device) to the GPU ("cuda") or to host memory ("cpu")
    in one batched, stream-ordered call: the KV blocks of a paused request.
    Every address is checked before anything moves."""
    if where not in ("cuda", "cpu"):
        raise ValueError(f"where must be 'cuda' or 'cpu', not {where!r}")
    ptrs = [t if isinstance(t, int) else t.data_ptr() for t in tensors]
    if not ptrs:
        return
    if stream is None and not isinstance(tensors[0], int):
        import torch
        stream = torch.cuda.current_stream(tensors[0].device)
    raw = getattr(stream, "cuda_stream", stream) or None
    arr = (ctypes.c_void_p * len(ptrs))(*ptrs)
    _check(_lib.lib().umpool_prefetch_blocks(arr, len(ptrs), 1 if where == "cuda" else 0, raw),
           "umpool.prefetch_blocks")


def _role_mask(roles, where):
    if isinstance(roles, str):
        roles = (roles,)
    mask = 0
    for r in roles:
        mask |= 1 << _lib.role_index(r, where)
    return mask


def _pool_id(pool):
    """(hi, lo) of a torch.cuda.MemPool (its .id) or of a (hi, lo) pair."""
    pid = getattr(pool, "id", pool)
    if not (isinstance(pid, tuple) and len(pid) == 2):
        raise ValueError(f"pool must be a torch.cuda.MemPool or an (id_hi, id_lo) pair, not {pool!r}")
    return int(pid[0]), int(pid[1])


def _pools(pool, tags, device, what):
    """(device index, the (hi, lo) ids sleep/wake_up act on): `pool`, the
    pools of `tags` (on the current CUDA device by default, where umpool.tag
    made them), or None for the device's pool and its private pools."""
    if pool is not None and tags is not None:
        raise ValueError(f"{what}: pass pool or tags, not both")
    if tags is not None:
        from . import torch as _umtorch
        dev = _umtorch.current_device() if device is None else _device_index(device)
        return dev, [_pool_id(p) for p in _umtorch.tag_pools(tags, dev)]
    return _device_index(device), None if pool is None else [_pool_id(pool)]


def sleep(offload=(), discard=(), device=None, stream=None, pool=None, tags=None,
          unchanged=False):
    """Puts the device's pool (and its CUDA-graph pools) to sleep between phases:
    free cached memory goes back to CUDA, the live tensors of the roles in
    `offload` are copied to a pinned host buffer and their GPU pages dropped
    (contents kept; the buffer is pinned at the first sleep, or earlier by
    reserve_staging(), and kept for the next, see release_staging()) and
    those in `discard` dropped (contents undefined). A tensor written while
    asleep loses the write at wake_up(). Addresses never change, so captured
    CUDA graphs stay valid; wake_up() brings the memory back. Another
    allocator's cudaMalloc can use the GPU memory meanwhile (the driver hands
    it the pages); torch.cuda.mem_get_info() keeps counting it until then. Roles are names
    ("default", "weights", "kv", "activations"); tensors allocated through
    PyTorch without a role MemPool are "default". With `tags` (a name or
    names given to umpool.tag), only the tensors allocated under those tags
    sleep; with `pool` (a torch.cuda.MemPool under umpool's allocator), only
    that pool's. `unchanged=True` promises that the tensors to offload were
    not written since the last wake_up() (weights while generating, a
    streamed layer): where the last sleep staged the same tensors, their
    copies are skipped and only their GPU pages dropped (a tensor written
    meanwhile would come back with its old contents). The work is ordered on
    `stream` (a torch.cuda.Stream or a raw handle; None: the NULL stream).
    Asleep already: a no-op. See docs/residency.md."""
    raw = getattr(stream, "cuda_stream", stream) or None
    off = _role_mask(offload, "umpool.sleep offload")
    drop = _role_mask(discard, "umpool.sleep discard")
    dev, pools = _pools(pool, tags, device, "umpool.sleep")
    flags = 1 if unchanged else 0  # UMPOOL_SLEEP_CONTENTS_UNCHANGED
    l = _lib.lib()
    for hi, lo in pools if pools is not None else [(0, 0)]:
        _check(l.umpool_sleep_ex(dev, hi, lo, off, drop, flags, raw), "umpool.sleep")


def wake_up(device=None, stream=None, pool=None, tags=None):
    """Brings back what sleep() moved: offloaded tensors are fetched to the GPU
    with their contents, discarded ones repopulated there. With neither
    `tags` nor `pool`: everything of the device that sleeps; with them, only
    those. Not asleep: a no-op. Wake only once the other allocator has given
    its memory back."""
    raw = getattr(stream, "cuda_stream", stream) or None
    dev, pools = _pools(pool, tags, device, "umpool.wake_up")
    l = _lib.lib()
    if pools is None:
        _check(l.umpool_wake_up(dev, raw), "umpool.wake_up")
        return
    for hi, lo in pools:
        _check(l.umpool_wake_pool(dev, hi, lo, raw), "umpool.wake_up")


def tag(name, role="default", device=None):
    """`with umpool.tag("rollout"):` — tensors PyTorch allocates inside belong
    to tag "rollout" (with `role`'s placement), so that
    umpool.sleep(..., tags="rollout") and umpool.wake_up(tags="rollout") act
    on exactly them. A tag is a private umpool pool (a torch.cuda.MemPool);
    it needs umpool's own PyTorch allocator (umpool.torch.enable())."""
    from . import torch as _umtorch
    return _umtorch.tag(name, role, device)


_pressure_callbacks = {}  # device -> the ctypes callback (kept alive while installed)


def set_pressure_callback(fn, device=None):
    """Installs fn(bytes, role) -> bool, called before an allocation on the
    device fails for lack of memory (after umpool returned its own cached
    memory): `bytes` is what the request needs, `role` its role name. Return
    True after freeing memory (evicting or discarding paused requests' KV,
    dropping a cache) and umpool retries once; False lets the allocation fail.
    With UMPOOL_CONF="pressure_watermark:<size>" it is also called once when
    the pool's reserved memory passes that size (after the allocation, which
    has succeeded; its result is ignored then), so an engine can make room
    early.
    It runs on the allocating thread and may free and allocate tensors; it is
    not re-entered from its own allocations nor called during a CUDA graph
    capture. An exception it raises is printed and counts as False. None
    removes it."""
    dev = _device_index(device)
    l = _lib.lib()
    if fn is None:
        _check(l.umpool_set_pressure_callback(dev, _lib.PRESSURE_FN(), None),
               "umpool.set_pressure_callback")
        _pressure_callbacks.pop(dev, None)
        return
    names = _lib.role_names()

    def call(_ctx, _device, nbytes, role):
        return 1 if fn(nbytes, names[role] if 0 <= role < len(names) else str(role)) else 0

    cb = _lib.PRESSURE_FN(call)
    _check(l.umpool_set_pressure_callback(dev, cb, None), "umpool.set_pressure_callback")
    _pressure_callbacks[dev] = cb


def is_asleep(device=None):
    return _lib.lib().umpool_is_asleep(_device_index(device)) == 1


def reserve_staging(offload=("weights",), device=None):
    """Pins now the host buffers a sleep(offload=...) would copy into (the
    live tensors of those roles), so that the first sleep() does not pay for
    pinning (about 2.7 s per 8 GiB on the H200's host). Call it once the
    weights are loaded."""
    _check(_lib.lib().umpool_reserve_staging(_device_index(device), _role_mask(offload, "umpool.reserve_staging")),
           "umpool.reserve_staging")


def reserve_eviction_staging(nbytes, device=None):
    """Pins nbytes of host memory now for eviction by staging
    (UMPOOL_CONF <role>.evict:staging), so that evictions under a budget do
    not pay for pinning as they go (about 75 ms per 256 MiB on the H200's
    host). trim() frees what no evicted tensor uses."""
    if not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"umpool.reserve_eviction_staging: nbytes must be an int >= 0, got {nbytes!r}")
    _check(_lib.lib().umpool_reserve_eviction_staging(_device_index(device), nbytes),
           "umpool.reserve_eviction_staging")


def release_staging(device=None):
    """Frees the pinned host buffers sleep() keeps for the next sleep (a pool
    that sleeps keeps its own). Waits for wake_up()'s copies."""
    _check(_lib.lib().umpool_release_staging(_device_index(device)), "umpool.release_staging")


def block_location(ptr):
    """Where umpool keeps the live block containing address `ptr` (an int,
    e.g. tensor.data_ptr(); it may point inside the block): "cpu" for a large
    block umpool evicted to host memory (chosen by a role's hbm_budget, or
    moved by prefetch(..., "cpu")) and has not fetched back, "cuda"
    otherwise. An engine under a budget fetches the "cpu" ones before its
    kernels read them. Raises UmpoolError for memory umpool did not hand out
    or a freed block. Thread-safe; no CUDA call."""
    on_gpu = ctypes.c_int(-1)
    _check(_lib.lib().umpool_block_location(ptr, ctypes.byref(on_gpu)), "umpool.block_location")
    return "cuda" if on_gpu.value else "cpu"


def block_size(ptr):
    """Usable size of the live umpool block at address `ptr` (an int, e.g.
    tensor.data_ptr()), or 0 if umpool did not allocate it."""
    return _lib.lib().umpool_block_size(ptr)
