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
_enabled = None  # the CUDAPluggableAllocator, kept alive


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


def enable(conf=None):
    """Installs umpool as PyTorch's CUDA allocator and wires its hooks: init,
    torch.cuda.empty_cache, torch.cuda.set_per_process_memory_fraction and
    Tensor.record_stream. `conf` is UMPOOL_CONF text (docs/conf.md).

    Must run before CUDA is initialised in this process (PyTorch cannot switch
    allocators afterwards): raises RuntimeError saying so otherwise."""
    global _enabled
    torch = _torch()
    if _enabled is not None:
        return _enabled
    if torch.cuda.is_initialized():
        raise RuntimeError(
            "umpool.torch.enable() must run before CUDA is initialised in this process, "
            "and CUDA already is (a tensor was put on a GPU, or torch.cuda was queried). "
            "Call it at the very start of your program, or run the program with "
            "`python -c 'import umpool.torch; umpool.torch.enable(); ...'`.")
    if conf is not None:
        from . import configure
        configure(conf)
    path = _lib.library_path()
    alloc = torch.cuda.memory.CUDAPluggableAllocator(path, "umpool_malloc", "umpool_free")
    raw = alloc.allocator()
    raw.set_init_fn(_fn("umpool_init"))
    raw.set_reset_fn(_fn("umpool_empty_cache"))
    raw.set_memory_fraction_fn(_fn("umpool_set_memory_fraction"))
    raw.set_record_stream_fn(_fn("umpool_record_stream"))
    torch.cuda.memory.change_current_allocator(alloc)
    _enabled = alloc
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
