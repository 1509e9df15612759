"""umpool as PyTorch's CUDA allocator.

    import umpool.torch
    umpool.torch.enable()          # first thing, before CUDA is initialised

Modes:
  "auto" (default): umpool's own PyTorch allocator (csrc/, compiled against the
      installed torch on first use and cached), so everything PyTorch asks of
      its allocator works: torch.cuda.memory_stats(), memory_summary(),
      _record_memory_history()/_dump_snapshot() (memory_viz), CUDA graphs and
      torch.compile(mode="reduce-overhead") (graph trees, checkpoints),
      torch.OutOfMemoryError, MemPools. If it cannot be built (no C++
      compiler, no CUDA headers), warns once and uses "pluggable".
  "allocator": the same, but failing to build is an error.
  "pluggable": torch.cuda.memory.CUDAPluggableAllocator over libumpool.so:
      tensors come from umpool, but PyTorch's memory statistics, snapshots and
      graph trees do not work through it and it adds PyTorch's own per-tensor
      bookkeeping.
  "mempool": PyTorch's caching allocator serves tensors, carved from segments
      umpool allocates (advised, prefetched, capped); works after CUDA init.

To route only some allocations (e.g. the KV cache) to a role's placement:

    pool = umpool.torch.mem_pool("kv")
    with torch.cuda.use_mem_pool(pool):
        kv_cache = torch.empty(...)

To put exactly one engine's memory to sleep, tag it (umpool.tag is this):

    with umpool.tag("rollout", role="weights"):
        model = load_model()
    umpool.sleep(offload=("weights",), discard=("kv",), tags="rollout")
    umpool.wake_up(tags="rollout")
"""
import contextlib
import ctypes
import os
import warnings

from . import _lib

_MODES = ("auto", "allocator", "pluggable", "mempool")
# The C++ entry points of umpool/umpool_torch.h, by mangled name (the header
# has the same strings; tests check both against the library).
_TORCH_MALLOC = "_ZN6umpool11torch_hooks6MallocEmiP11CUstream_st"
_TORCH_BEGIN = ("_ZN6umpool11torch_hooks19BeginAllocateToPoolEiSt4pairIyyESt8functionIFbP11"
                "CUstream_stEE")
_TORCH_END = "_ZN6umpool11torch_hooks17EndAllocateToPoolEiSt4pairIyyE"
_TORCH_RELEASE = "_ZN6umpool11torch_hooks11ReleasePoolEiSt4pairIyyE"

_enabled = None  # the allocator library, CUDAPluggableAllocator or MemPool in use, kept alive
_mode = None


def _torch():
    try:
        import torch  # noqa: F401  (absolute import: the real torch)
    except ImportError as e:
        raise ImportError("umpool.torch needs PyTorch (import torch failed)") from e
    return torch


def _fn(name):
    return ctypes.cast(getattr(_lib.lib(), name), ctypes.c_void_p).value


def is_enabled():
    return _enabled is not None


def mode():
    """'allocator', 'pluggable', 'mempool', or None when not enabled."""
    return _mode


def _refuse_after_cuda_init(torch, what):
    if torch.cuda.is_initialized():
        raise RuntimeError(
            f"umpool.torch.enable({what}) must run before CUDA is initialised in this process, "
            "and CUDA already is (a tensor was put on a GPU, or torch.cuda was queried). "
            "Call it at the very start of your program, or use enable(mode='mempool'), "
            "which works at any time.")


# What enable() adds to the configuration, each key unless the configuration
# names it (docs/conf.md, "Under PyTorch"). PyTorch programs differ from the
# engines the C and C++ defaults are tuned for: every tensor is in the default
# role, shapes change from call to call, and the allocator's own speed hides
# under PyTorch's cost per tensor.
#   drain_idle_caches:on  PyTorch's autograd thread frees each backward pass's
#       blocks into its own cache and goes quiet until the next one; drained,
#       they serve the main thread's next forward pass (docs/design.md,
#       "Drains"; the cached pair a few ns slower).
#   give_back_slack:0.01  free pages given back once the pool holds 1% above
#       its peak live bytes, not 3% (docs/arena.md): memory as tight as
#       expandable segments on the recorded programs, for a few more page
#       drops and refills over a run (forty-seventh session).
TORCH_PROFILE = (("drain_idle_caches", "on"), ("give_back_slack", "0.01"))


def _conf_for_torch(conf):
    """`conf` (when None: the last umpool.configure()'s, else UMPOOL_CONF) with
    TORCH_PROFILE's keys it does not name."""
    from . import _configured
    if conf is not None:
        text = conf
    elif _configured is not None:  # the caller's own umpool.configure()
        text = _configured
    else:
        text = os.environ.get("UMPOOL_CONF", "")
    text = text.strip().strip(",")
    named = {item.split(":", 1)[0].strip() for item in text.split(",") if item.strip()}
    added = [f"{k}:{v}" for k, v in TORCH_PROFILE if k not in named]
    return ",".join([text] * bool(text) + added)


def _configure(conf):
    from . import UmpoolError, configure
    try:
        configure(_conf_for_torch(conf))
    except UmpoolError as e:
        # Without a conf of the caller's: a pool made before enable keeps its
        # configuration.
        if conf is not None or "a pool already exists" not in str(e):
            raise


def enable(conf=None, mode="auto"):
    """Makes umpool PyTorch's CUDA memory (see the module's doc for the modes).
    `conf` is UMPOOL_CONF text (docs/conf.md; None: the last
    umpool.configure()'s, else UMPOOL_CONF's), with TORCH_PROFILE's settings
    where it names none. With mode="auto", the
    environment variable UMPOOL_TORCH_MODE (allocator, pluggable or mempool)
    picks the mode instead, so a program can be run in each without changes.
    Returns what it installed."""
    global _enabled, _mode
    torch = _torch()
    if mode == "auto":
        mode = os.environ.get("UMPOOL_TORCH_MODE", "") or "auto"
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(_MODES)}")
    if _enabled is not None:
        if mode not in ("auto", _mode):
            raise RuntimeError(f"umpool is already enabled in {_mode!r} mode")
        return _enabled
    if mode in ("auto", "allocator"):
        _refuse_after_cuda_init(torch, "")
        from . import _torch_build
        try:
            ext = _torch_build.load()
        except (_torch_build.BuildError, OSError) as e:
            if mode == "allocator":
                raise
            warnings.warn(
                f"umpool: its PyTorch allocator could not be built ({e}); using the pluggable "
                "fallback, where torch.cuda.memory_stats(), memory snapshots and "
                "torch.compile(mode='reduce-overhead') do not work.", RuntimeWarning, stacklevel=2)
            mode = "pluggable"
        else:
            _configure(conf)
            if ext.umpool_torch_install() != 0:
                raise RuntimeError("umpool: " + ext.umpool_torch_error().decode())
            _enabled, _mode = ext, "allocator"
            return ext
    _configure(conf)
    if mode == "mempool":
        pool = _pluggable_mem_pool("default")
        device = torch.cuda.current_device()
        begin = getattr(torch._C, "_cuda_beginAllocateToPool", None)
        if begin is not None:
            begin(device, pool.id)  # every thread and stream of the device
        else:
            torch._C._cuda_beginAllocateCurrentThreadToPool(device, pool.id)
        _enabled, _mode = pool, mode
        return pool
    _refuse_after_cuda_init(torch, "mode='pluggable'")
    path = _lib.library_path()
    alloc = torch.cuda.memory.CUDAPluggableAllocator(path, _TORCH_MALLOC, "umpool_free")
    raw = alloc.allocator()
    raw.set_init_fn(_fn("umpool_init"))
    raw.set_reset_fn(_fn("umpool_empty_cache"))
    raw.set_memory_fraction_fn(_fn("umpool_set_memory_fraction"))
    raw.set_record_stream_fn(_fn("umpool_record_stream"))
    # torch.cuda.graph: allocations during a capture go to a private pool per
    # graph (PyTorch's semantics), and no pool records or queries events
    # while a capture is underway.
    if hasattr(raw, "set_begin_allocate_to_pool"):
        raw.set_begin_allocate_to_pool(_fn(_TORCH_BEGIN))
        raw.set_end_allocate_to_pool_fn(_fn(_TORCH_END))
        raw.set_release_pool(_fn(_TORCH_RELEASE))
    torch.cuda.memory.change_current_allocator(alloc)
    _enabled, _mode = alloc, "pluggable"
    return alloc


def _pluggable_mem_pool(role):
    torch = _torch()
    suffix = "" if role == "default" else "_" + role
    alloc = torch.cuda.memory.CUDAPluggableAllocator(
        _lib.library_path(), "umpool_pool_malloc" + suffix, "umpool_free")
    pool = torch.cuda.MemPool(alloc.allocator())
    pool._umpool_allocator = alloc  # keep the allocator alive with the pool
    return pool


def mem_pool(role="kv"):
    """A torch.cuda.MemPool whose allocations get `role`'s placement policy
    ('default', 'weights', 'kv' or 'activations'). Use it with
    torch.cuda.use_mem_pool(pool). Under umpool's allocator the tensors are
    umpool blocks of that role in the device's pool; otherwise PyTorch's
    caching allocator carves them from umpool segments of that role."""
    index = _lib.role_index(role, "umpool.torch.mem_pool")
    torch = _torch()
    if _mode == "allocator":
        pool = torch.cuda.MemPool()
        device = torch.cuda.current_device()
        if _enabled.umpool_torch_set_pool_role(device, pool.id[0], pool.id[1],
                                               index) != 0:
            raise RuntimeError("umpool: " + _enabled.umpool_torch_error().decode())
        return pool
    return _pluggable_mem_pool(role)


_tag_pools = {}  # (device, tag, role) -> the MemPool holding that tag's tensors


def tag_pool(name, role="default", device=None):
    """The torch.cuda.MemPool of tag `name` and `role` on `device` (the current
    one by default), made at first use and kept while the process lives. A
    tag is a private umpool pool: umpool.sleep(tags=name) puts exactly its
    tensors to sleep. Needs umpool's own allocator (enable()'s default):
    PyTorch's pluggable wrapper cannot tell umpool which MemPool allocates."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"umpool.tag: a tag is a non-empty string, not {name!r}")
    role_index = _lib.role_index(role, "umpool.tag")
    if _mode != "allocator":
        from . import UmpoolError
        raise UmpoolError(
            "umpool.tag needs umpool's own PyTorch allocator (umpool.torch.enable() with "
            f"mode 'auto' or 'allocator'; now: {_mode or 'not enabled'}). Without it, put each "
            "engine's memory in its own MemPool and pass pool= to umpool.sleep.")
    from . import _device_index
    torch = _torch()
    dev = torch.cuda.current_device() if device is None else _device_index(device)
    key = (dev, name, role)
    pool = _tag_pools.get(key)
    if pool is None:
        # A private pool (not a role MemPool, whose tensors live in the
        # device's pool) whose allocations all take `role`.
        with torch.cuda.device(dev):
            pool = torch.cuda.MemPool()
        if _lib.lib().umpool_set_pool_role(dev, pool.id[0], pool.id[1], role_index) != 0:
            from . import UmpoolError
            raise UmpoolError("umpool.tag: " + _lib.lib().umpool_last_error().decode())
        _tag_pools[key] = pool
    return pool


@contextlib.contextmanager
def tag(name, role="default", device=None):
    """Allocations made inside `with umpool.tag(name, role=...):` on `device`
    belong to tag `name` (and get `role`'s placement). See tag_pool()."""
    pool = tag_pool(name, role, device)
    with _torch().cuda.use_mem_pool(pool, device=device):
        yield pool


def current_device():
    return _torch().cuda.current_device()


def tag_pools(tags, device):
    """The MemPools of `tags` (a name or names) on `device`: every role's.
    ValueError for a tag nothing was allocated under on that device."""
    if isinstance(tags, str):
        tags = (tags,)
    found = []
    for t in tags:
        pools = [p for (d, name, _), p in _tag_pools.items() if d == device and name == t]
        if not pools:
            known = sorted({name for (d, name, _) in _tag_pools if d == device})
            raise ValueError(f"umpool: no tag {t!r} on device {device} (tags there: {known})")
        found.extend(pools)
    return found
