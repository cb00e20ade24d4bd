"""Which OpenMP runtimes (libgomp, libiomp5, libomp) and OpenBLAS builds this process has loaded.

One scan for its users: the kernels' thread-pool choice (``_numba_threads.ensure_pool``),
``tinyconv.tune_process`` (tinyconv/threads.py) and the batched GEMM (``gemm.py``).
Imports neither Numba nor anything of tinyconv, and on Linux not threadpoolctl either
(whose import sets ``KMP_DUPLICATE_LIB_OK`` in the environment), so asking changes nothing.
"""
import os

_NAMES = ("libgomp", "libiomp", "libomp")


def _loaded(user_api):
    """Paths of the shared objects this process has mapped (Linux: /proc/self/maps); elsewhere
    those threadpoolctl reports for ``user_api``."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            return {line.split()[-1] for line in f if ".so" in line}
    except OSError:                        # not Linux: ask threadpoolctl
        from threadpoolctl import threadpool_info
        return {p["filepath"] for p in threadpool_info() if p.get("user_api") == user_api}


def openmp_runtimes():
    """The paths of the OpenMP runtimes loaded in this process, sorted."""
    return sorted(p for p in _loaded("openmp") if os.path.basename(p).startswith(_NAMES))


def openblas_libraries():
    """The paths of the OpenBLAS libraries loaded in this process, NumPy's first."""
    return sorted((p for p in _loaded("blas") if "openblas" in os.path.basename(p).lower()),
                  key=lambda p: ("numpy" not in p, p))
