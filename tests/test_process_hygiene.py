"""``import tinyconv`` (and running its kernels) leaves the host process as it was; tune_process() opts in.

Each check runs in a fresh interpreter, since what is under test is process-wide state:
the environment, glibc's malloc thresholds (observed through where malloc puts a large
block) and the thread pools threadpoolctl sees.
"""
import json
import os
import platform
import subprocess
import sys

import pytest

# Prints, as JSON, what the process looks like before and after ``import tinyconv`` and a
# parallel kernel call, then after tune_process().  A block of PROBE bytes is served by
# mmap (counted in mallinfo's hblks) under glibc's default threshold, which grows only up
# to the largest mmapped block freed so far; each probe is larger than the last, so
# "mmapped" means the default threshold, and "on the heap" means keep_freed_memory's.
PROBE = r"""
import ctypes, json, os, sys
state = {}
libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None

class MallInfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                              "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

def mmapped(nbytes):
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype, libc.malloc.restype = MallInfo, ctypes.c_void_p
    before = libc.mallinfo2().hblks
    p = libc.malloc(nbytes)
    after = libc.mallinfo2().hblks
    libc.free(ctypes.c_void_p(p))
    return after > before

def pools():
    from threadpoolctl import threadpool_info
    return sorted((p["user_api"], p["internal_api"], p["num_threads"]) for p in threadpool_info())

import numpy
pools0 = pools()          # threadpoolctl's own import sets KMP_DUPLICATE_LIB_OK: before env0
env0 = dict(os.environ)
state["mmapped_before"] = mmapped(20 << 20)
import tinyconv
import tinyconv.backend as backend
state["env_changed_by_import"] = sorted(set(os.environ.items()) ^ set(env0.items()))
state["malloc_settings_after_import"] = backend.malloc_settings
state["mmapped_after_import"] = mmapped(22 << 20)
x = tinyconv.randn(64, 96, 27, 27)
tinyconv.nn.functional.relu(x)                     # a parallel Numba kernel: starts its thread pool
state["env_changed_by_kernels"] = sorted(set(os.environ.items()) ^ set(env0.items()))
state["mmapped_after_kernels"] = mmapped(24 << 20)
state["pools_before"], state["pools_after"] = pools0, pools()
state["tuned"] = tinyconv.tune_process()
state["mmapped_after_tune"] = mmapped(26 << 20)
state["env_after_tune"] = os.environ.get("OMP_WAIT_POLICY")
print(json.dumps(state))
"""


def _probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "TINYCONV_MALLOC", "TINYCONV_KERNELS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probed():
    return _probe()


def test_import_and_kernels_leave_the_environment_alone(probed):
    assert probed["env_changed_by_import"] == []
    assert probed["env_changed_by_kernels"] == []


def test_import_leaves_malloc_alone(probed):
    assert probed["malloc_settings_after_import"] is None
    if probed["mmapped_before"] is None:
        pytest.skip("no glibc mallinfo2 here to observe malloc's thresholds")
    assert probed["mmapped_before"] is True
    assert probed["mmapped_after_import"] is True          # glibc's default threshold still in force
    assert probed["mmapped_after_kernels"] is True


def test_import_leaves_thread_pools_alone(probed):
    # the pools that existed before keep their thread counts; the libraries loaded since
    # (Numba's OpenMP pool, SciPy's OpenBLAS that Numba loads) keep their defaults
    before, after = probed["pools_before"], probed["pools_after"]
    assert all(p in after for p in before), (before, after)
    assert {p[2] for p in after if p[0] == "blas"} == {p[2] for p in before if p[0] == "blas"}


def test_tune_process_applies_both_settings_on_request(probed):
    tuned = probed["tuned"]
    assert tuned["OMP_WAIT_POLICY"] == "PASSIVE" == probed["env_after_tune"]
    assert tuned["wait_policy_applies"] is False           # Numba's OpenMP runtime had started already
    assert tuned["openmp_runtimes"]
    if platform.libc_ver()[0] == "glibc":
        assert tuned["malloc"] == {"M_MMAP_THRESHOLD": 32 << 20, "M_TRIM_THRESHOLD": 1 << 30}
        if probed["mmapped_before"] is not None:
            assert probed["mmapped_after_tune"] is False   # now served from the heap
    else:
        assert tuned["malloc"] is None


def test_tune_process_keeps_the_users_choices():
    probed = _probe(OMP_WAIT_POLICY="ACTIVE", TINYCONV_MALLOC="system")
    assert probed["env_after_tune"] == "ACTIVE"
    assert probed["tuned"]["malloc"] is None
    if probed["mmapped_before"] is not None:
        assert probed["mmapped_after_tune"] is True


def test_tune_process_rejects_a_bad_policy():
    import tinyconv
    with pytest.raises(ValueError, match="tune_process: wait_policy"):
        tinyconv.tune_process(wait_policy="SPIN", keep_freed_memory=False)


BESIDE_TORCH = r"""
import json, sys, threading
if sys.argv[1] == "torch_first":
    import torch
    torch.ones(64, 64) @ torch.ones(64, 64)       # PyTorch's OpenMP runtime loaded and started
import numba
import tinyconv
import tinyconv.nn.functional as F
x = tinyconv.randn(16, 96, 27, 27)
errors = []
def work():
    try:
        for _ in range(20):
            F.relu(x)                              # parallel kernels launched from two threads at once
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"layer": numba.threading_layer(), "errors": errors}))
"""


@pytest.mark.parametrize("order", ["torch_first", "alone"])
def test_numba_keeps_off_an_openmp_runtime_loaded_before_it(order):
    if order == "torch_first":
        pytest.importorskip("torch", reason="PyTorch is not installed")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", BESIDE_TORCH, order], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["errors"] == []
    if order == "torch_first" and sys.platform.startswith("linux"):
        assert got["layer"] == "workqueue"         # not PyTorch's spinning OpenMP runtime
    else:
        assert got["layer"] != "workqueue" or not sys.platform.startswith("linux")
