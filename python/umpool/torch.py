"""umpool as PyTorch's CUDA allocator.

    import umpool.torch
    umpool.torch.enable()          # first thing, before CUDA is initialised

or, to route only some allocations (e.g. the KV cache) to umpool:

    pool = umpool.torch.mem_pool("kv")
    with torch.cuda.use_mem_pool(pool):
        kv_cache = torch.empty(...)
"""
import ctypes

from . import _lib

_ROLES = ("default", "weights", "kv", "activations")
_MODES = ("pluggable", "mempool")
_enabled = None  # the CUDAPluggableAllocator or MemPool in use, kept alive
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
    """'pluggable', 'mempool', or None when not enabled."""
    return _mode


def enable(conf=None, mode="pluggable"):
    """Makes umpool PyTorch's CUDA memory. `conf` is UMPOOL_CONF text (docs/conf.md).

    mode="pluggable" (default): umpool serves every tensor through
      CUDAPluggableAllocator, with every hook wired: init, torch.cuda.empty_cache,
      torch.cuda.set_per_process_memory_fraction and Tensor.record_stream; umpool's
      stream rules, roles and stats apply per tensor. PyTorch 2.11's pluggable
      wrapper adds about 1.5 us of its own per tensor (bench/results). Must run
      before CUDA is initialised in this process: raises RuntimeError otherwise.

    mode="mempool": PyTorch's own caching allocator serves tensors, carved from
      segments that umpool allocates (advised and prefetched once per slab, under
      umpool's cap), for every thread of the process on the current device. Native
      per-tensor speed; torch.cuda.memory_stats() keeps working, umpool's stats
      count segments. May run after CUDA initialisation."""
    global _enabled, _mode
    torch = _torch()
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(_MODES)}")
    if _enabled is not None:
        if mode != _mode:
            raise RuntimeError(f"umpool is already enabled in {_mode!r} mode")
        return _enabled
    if mode == "pluggable" and torch.cuda.is_initialized():
        raise RuntimeError(
            "umpool.torch.enable() must run before CUDA is initialised in this process, "
            "and CUDA already is (a tensor was put on a GPU, or torch.cuda was queried). "
            "Call it at the very start of your program, or use enable(mode='mempool'), "
            "which works at any time.")
    if conf is not None:
        from . import configure
        configure(conf)
    if mode == "mempool":
        pool = mem_pool("default")
        device = torch.cuda.current_device()
        begin = getattr(torch._C, "_cuda_beginAllocateToPool", None)
        if begin is not None:
            begin(device, pool.id)  # every thread and stream of the device
        else:
            torch._C._cuda_beginAllocateCurrentThreadToPool(device, pool.id)
        _enabled, _mode = pool, mode
        return pool
    path = _lib.library_path()
    alloc = torch.cuda.memory.CUDAPluggableAllocator(path, "umpool_malloc", "umpool_free")
    raw = alloc.allocator()
    raw.set_init_fn(_fn("umpool_init"))
    raw.set_reset_fn(_fn("umpool_empty_cache"))
    raw.set_memory_fraction_fn(_fn("umpool_set_memory_fraction"))
    raw.set_record_stream_fn(_fn("umpool_record_stream"))
    # torch.cuda.graph: allocations during a capture go to a private pool per
    # graph (PyTorch's semantics), and no pool records or queries events
    # while a capture is underway.
    if hasattr(raw, "set_begin_allocate_to_pool"):
        raw.set_begin_allocate_to_pool(_fn("umpool_torch_begin_allocate_to_pool"))
        raw.set_end_allocate_to_pool_fn(_fn("umpool_torch_end_allocate_to_pool"))
        raw.set_release_pool(_fn("umpool_torch_release_pool"))
    torch.cuda.memory.change_current_allocator(alloc)
    _enabled, _mode = alloc, mode
    return alloc


def mem_pool(role="kv"):
    """A torch.cuda.MemPool whose segments come from umpool with `role`'s
    placement policy ('default', 'weights', 'kv' or 'activations'). Use it
    with torch.cuda.use_mem_pool(pool). PyTorch's caching allocator manages
    the blocks inside the segments; a failed segment becomes
    torch.OutOfMemoryError."""
    if role not in _ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(_ROLES)}")
    torch = _torch()
    suffix = "" if role == "default" else "_" + role
    alloc = torch.cuda.memory.CUDAPluggableAllocator(
        _lib.library_path(), "umpool_pool_malloc" + suffix, "umpool_free")
    pool = torch.cuda.MemPool(alloc.allocator())
    pool._umpool_allocator = alloc  # keep the allocator alive with the pool
    return pool
