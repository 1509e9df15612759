"""Finds and loads libumpool.so and declares its C ABI (include/umpool/umpool.h)."""
import ctypes
import glob
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))


class Residency(ctypes.Structure):
    """umpool_residency (include/umpool/umpool.h)."""
    _fields_ = [(n, ctypes.c_size_t) for n in ("budget_bytes", "resident_bytes", "host_bytes")] + \
        [(n, ctypes.c_uint64) for n in ("evictions", "budget_evictions", "fetches",
                                        "evicted_bytes", "fetched_bytes")] + \
        [(n, ctypes.c_size_t) for n in ("reserved_bytes", "allocated_bytes")]


# int (*)(void* ctx, int device, size_t bytes, int role): umpool_pressure_fn.
PRESSURE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t,
                               ctypes.c_int)


def library_path():
    """The libumpool.so this package uses: UMPOOL_LIBRARY, next to the package,
    or a build tree of the repository."""
    env = os.environ.get("UMPOOL_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise OSError(f"UMPOOL_LIBRARY={env!r}: no such file")
        return env
    candidates = [os.path.join(_HERE, "libumpool.so"), os.path.join(_HERE, "lib", "libumpool.so")]
    for pattern in ("build*/libumpool.so", ".gpu-stage/lib/libumpool.so"):
        candidates += sorted(glob.glob(os.path.join(_REPO, pattern)))
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise OSError(
        "libumpool.so not found: set UMPOOL_LIBRARY, install the package with the library "
        "next to it, or build the repository (tools/run-tests)")


def stats_fields():
    """The fields of the C struct umpool_stats, from the library's own table
    (umpool/stats_table.h): [(name, ctypes type, PyTorch memory_stats key or None)]."""
    out = []
    for line in lib().umpool_stats_fields().decode().splitlines():
        name, kind, key = line.split()
        out.append((name, ctypes.c_int64 if kind == "i64" else ctypes.c_uint64,
                    None if key == "-" else key))
    return out


_stats_type = None


def stats_type():
    """The ctypes structure of umpool_stats, built from stats_fields()."""
    global _stats_type
    if _stats_type is None:
        _stats_type = type("Stats", (ctypes.Structure,),
                           {"_fields_": [(n, t) for n, t, _ in stats_fields()]})
    return _stats_type


def role_names():
    """The roles, in order (umpool/roles.h)."""
    l = lib()
    return tuple(l.umpool_role_name(i).decode() for i in range(l.umpool_role_count()))


def role_index(name, where):
    """The number of the role called `name` (include/umpool/roles.h);
    ValueError naming `where` for an unknown one."""
    names = role_names()
    if name not in names:
        raise ValueError(f"{where}: unknown role {name!r} (roles: {', '.join(names)})")
    return names.index(name)


_lib = None


def lib():
    """The loaded library (loaded on first use)."""
    global _lib
    if _lib is None:
        path = library_path()
        l = ctypes.CDLL(path)
        stream = ctypes.c_void_p
        l.umpool_role_count.restype = ctypes.c_int
        l.umpool_role_name.restype = ctypes.c_void_p
        l.umpool_role_name.argtypes = [ctypes.c_int]
        names = ["umpool_malloc", "umpool_pool_malloc"]
        for i in range(l.umpool_role_count()):
            role = ctypes.cast(l.umpool_role_name(i), ctypes.c_char_p).value.decode()
            names += ["umpool_malloc_" + role, "umpool_pool_malloc_" + role]
        for name in names:
            fn = getattr(l, name)
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_size_t, ctypes.c_int, stream]
        l.umpool_free.restype = None
        l.umpool_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, stream]
        l.umpool_init.argtypes = [ctypes.c_int]
        l.umpool_init.restype = None
        l.umpool_empty_cache.argtypes = []
        l.umpool_empty_cache.restype = None
        l.umpool_set_memory_fraction.argtypes = [ctypes.c_double, ctypes.c_int]
        l.umpool_set_memory_fraction.restype = None
        l.umpool_record_stream.argtypes = [ctypes.c_void_p, stream]
        l.umpool_record_stream.restype = None
        l.umpool_configure.argtypes = [ctypes.c_char_p]
        l.umpool_configure.restype = ctypes.c_int
        l.umpool_get_stats.argtypes = [ctypes.c_int, ctypes.c_void_p]
        l.umpool_get_stats.restype = ctypes.c_int
        l.umpool_stats_fields.argtypes = []
        l.umpool_stats_fields.restype = ctypes.c_char_p
        l.umpool_role_count.argtypes = []
        l.umpool_role_count.restype = ctypes.c_int
        l.umpool_role_name.argtypes = [ctypes.c_int]
        l.umpool_role_name.restype = ctypes.c_char_p
        l.umpool_last_error_code.argtypes = []
        l.umpool_last_error_code.restype = ctypes.c_int
        l.umpool_release_stream.argtypes = [ctypes.c_int, stream]
        l.umpool_release_stream.restype = ctypes.c_int
        l.umpool_get_memory_fraction.argtypes = [ctypes.c_int]
        l.umpool_get_memory_fraction.restype = ctypes.c_double
        l.umpool_conf_doc.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        l.umpool_conf_doc.restype = ctypes.c_int
        l.umpool_reset_peak_stats.argtypes = [ctypes.c_int]
        l.umpool_reset_peak_stats.restype = ctypes.c_int
        l.umpool_stats_text.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        l.umpool_stats_text.restype = ctypes.c_int
        l.umpool_snapshot_json.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        l.umpool_snapshot_json.restype = ctypes.c_int
        l.umpool_trim.argtypes = [ctypes.c_int]
        l.umpool_trim.restype = ctypes.c_int
        l.umpool_prefetch.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, stream]
        l.umpool_prefetch.restype = ctypes.c_int
        l.umpool_prefetch_blocks.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                                             ctypes.c_int, stream]
        l.umpool_prefetch_blocks.restype = ctypes.c_int
        l.umpool_sleep.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint, stream]
        l.umpool_sleep.restype = ctypes.c_int
        l.umpool_wake_up.argtypes = [ctypes.c_int, stream]
        l.umpool_wake_up.restype = ctypes.c_int
        l.umpool_sleep_pool.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64,
                                        ctypes.c_uint, ctypes.c_uint, stream]
        l.umpool_sleep_pool.restype = ctypes.c_int
        l.umpool_sleep_ex.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64,
                                      ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, stream]
        l.umpool_sleep_ex.restype = ctypes.c_int
        l.umpool_wake_pool.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, stream]
        l.umpool_wake_pool.restype = ctypes.c_int
        l.umpool_set_pool_role.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64,
                                           ctypes.c_int]
        l.umpool_set_pool_role.restype = ctypes.c_int
        l.umpool_set_pressure_callback.argtypes = [ctypes.c_int, PRESSURE_FN, ctypes.c_void_p]
        l.umpool_set_pressure_callback.restype = ctypes.c_int
        l.umpool_get_residency.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(Residency)]
        l.umpool_get_residency.restype = ctypes.c_int
        l.umpool_reserve_staging.argtypes = [ctypes.c_int, ctypes.c_uint]
        l.umpool_reserve_staging.restype = ctypes.c_int
        l.umpool_reserve_eviction_staging.argtypes = [ctypes.c_int, ctypes.c_size_t]
        l.umpool_reserve_eviction_staging.restype = ctypes.c_int
        l.umpool_release_staging.argtypes = [ctypes.c_int]
        l.umpool_release_staging.restype = ctypes.c_int
        l.umpool_is_asleep.argtypes = [ctypes.c_int]
        l.umpool_is_asleep.restype = ctypes.c_int
        l.umpool_block_size.argtypes = [ctypes.c_void_p]
        l.umpool_block_size.restype = ctypes.c_size_t
        l.umpool_block_location.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        l.umpool_block_location.restype = ctypes.c_int
        l.umpool_last_error.argtypes = []
        l.umpool_last_error.restype = ctypes.c_char_p
        l.umpool_clear_last_error.argtypes = []
        l.umpool_clear_last_error.restype = None
        l.umpool_version.argtypes = []
        l.umpool_version.restype = ctypes.c_char_p
        _lib = l
    return _lib
