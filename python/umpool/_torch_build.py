"""Builds umpool's PyTorch allocator (csrc/*.cc) against the installed torch.

The allocator is a c10::cuda::CUDACachingAllocator::CUDAAllocator over
libumpool.so's C ABI. It is compiled with the system's C++ compiler against
torch's own headers and libraries (no pybind11, no Python headers: a few
seconds), once per (sources, umpool library, torch version, CUDA version,
C++ ABI), and cached in $UMPOOL_TORCH_CACHE or ~/.cache/umpool. `load()`
returns the loaded library (ctypes) or raises BuildError saying what is
missing, so umpool.torch.enable() can fall back to the pluggable path.
"""
import ctypes
import glob
import hashlib
import os
import shutil
import subprocess
import sysconfig

from . import _lib

_HERE = os.path.dirname(os.path.abspath(__file__))
_CSRC = os.path.join(_HERE, "csrc")
_loaded = None


class BuildError(RuntimeError):
    """umpool's PyTorch allocator could not be built here."""


def _sources():
    return sorted(glob.glob(os.path.join(_CSRC, "*.cc")) + glob.glob(os.path.join(_CSRC, "*.h")))


def _umpool_include():
    """Directory holding umpool/umpool.h: the package's copy, else the repository's."""
    for d in (os.path.join(_HERE, "include"),
              os.path.join(os.path.dirname(os.path.dirname(_HERE)), "include")):
        if os.path.isfile(os.path.join(d, "umpool", "umpool.h")):
            return d
    raise BuildError("umpool/umpool.h not found (the package's include/ is missing)")


def _loaded_library(name):
    """The path of a shared library this process has loaded (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith(name) and os.path.isfile(path):
                    return path
    except OSError:
        pass
    return None


def _cuda_include(torch):
    """A directory with cuda_runtime_api.h: CUDA_HOME's, or the nvidia pip package's."""
    cands = []
    try:
        from torch.utils import cpp_extension
        if cpp_extension.CUDA_HOME:
            cands.append(os.path.join(cpp_extension.CUDA_HOME, "include"))
    except Exception:  # noqa: BLE001 - cpp_extension probing must not break enable()
        pass
    cands += [os.environ.get("CUDA_HOME", "") + "/include", "/usr/local/cuda/include"]
    site = sysconfig.get_paths()["purelib"]
    cands += glob.glob(os.path.join(site, "nvidia", "*", "include"))
    cands += glob.glob(os.path.join(site, "nvidia", "cuda_runtime", "include"))
    for d in cands:
        if d and os.path.isfile(os.path.join(d, "cuda_runtime_api.h")):
            return d
    raise BuildError("the CUDA headers (cuda_runtime_api.h) were not found: set CUDA_HOME")


def _cudart(torch):
    """The libcudart torch uses (already loaded by import torch), else CUDA_HOME's."""
    path = _loaded_library("libcudart.so")
    if path:
        return path
    for d in (os.environ.get("CUDA_HOME", "/usr/local/cuda") + "/lib64", "/usr/local/cuda/lib64"):
        cand = sorted(glob.glob(os.path.join(d, "libcudart.so*")))
        if cand:
            return cand[0]
    raise BuildError("libcudart was not found (neither loaded by torch nor in CUDA_HOME)")


def _compiler():
    for c in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if c and shutil.which(c):
            return shutil.which(c)
    raise BuildError("no C++ compiler (g++, c++ or clang++; or set CXX)")


def _key(torch, umpool_lib):
    h = hashlib.sha256()
    for path in _sources() + [umpool_lib, os.path.join(_umpool_include(), "umpool", "umpool.h")]:
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(torch.__version__.encode())
    h.update(str(torch.version.cuda).encode())
    h.update(str(torch._C._GLIBCXX_USE_CXX11_ABI).encode())
    return h.hexdigest()[:16]


def build(verbose=False):
    """Builds (or finds in the cache) the allocator library; returns its path."""
    import torch
    umpool_lib = _lib.library_path()
    cache = os.environ.get("UMPOOL_TORCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "umpool")
    out = os.path.join(cache, f"umpool_torch-{torch.__version__}-{_key(torch, umpool_lib)}.so")
    if os.path.isfile(out):
        return out
    os.makedirs(cache, exist_ok=True)
    tdir = os.path.dirname(torch.__file__)
    tlib = os.path.join(tdir, "lib")
    cmd = [_compiler(), "-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden",
           f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
           "-I", os.path.join(tdir, "include"), "-I", _cuda_include(torch),
           "-I", _umpool_include(),
           *[s for s in _sources() if s.endswith(".cc")],
           "-L", tlib, "-lc10", "-lc10_cuda", _cudart(torch), umpool_lib,
           f"-Wl,-rpath,{tlib}", f"-Wl,-rpath,{os.path.dirname(umpool_lib)}",
           "-o", out + ".tmp"]
    if verbose:
        print(" ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError("compiling umpool's PyTorch allocator failed:\n" + r.stderr[-4000:])
    os.replace(out + ".tmp", out)
    return out


def load(verbose=False):
    """The allocator library, loaded (built first if needed)."""
    global _loaded
    if _loaded is None:
        _lib.lib()  # the same libumpool.so instance the extension links to
        path = build(verbose)
        ext = ctypes.CDLL(path)
        ext.umpool_torch_install.restype = ctypes.c_int
        ext.umpool_torch_installed.restype = ctypes.c_int
        ext.umpool_torch_error.restype = ctypes.c_char_p
        ext.umpool_torch_set_pool_role.argtypes = [ctypes.c_int, ctypes.c_ulonglong,
                                                   ctypes.c_ulonglong, ctypes.c_int]
        ext.umpool_torch_set_pool_role.restype = ctypes.c_int
        ext.umpool_torch_counter.argtypes = [ctypes.c_char_p]
        ext.umpool_torch_counter.restype = ctypes.c_longlong
        ext.path = path
        _loaded = ext
    return _loaded
