import json
import os
import subprocess
import sys

import pytest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(code, env_extra=None, timeout=600):
    """Runs `code` in a fresh interpreter (allocator choice and configuration
    are per process) and returns (returncode, stdout, stderr)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_json(code, env_extra=None, timeout=600):
    rc, out, err = run_script(code, env_extra, timeout)
    assert rc == 0, f"script failed (rc={rc}):\n{out}\n{err}"
    last = [l for l in out.splitlines() if l.startswith(("{", "["))][-1]
    return json.loads(last)


@pytest.fixture(scope="session")
def have_torch_cuda():
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed: PyTorch tests skipped")
    rc, out, _ = run_script("import torch; print(torch.cuda.device_count())")
    if rc != 0 or int(out.strip() or 0) == 0:
        pytest.skip("no usable CUDA device: PyTorch GPU tests skipped")
    return int(out.strip())
