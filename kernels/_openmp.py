"""Which OpenMP runtimes this process has loaded (libgomp, libiomp5, libomp).

One scan for both users: the kernels' thread-pool choice (``_numba_threads.ensure_pool``)
and ``tinyconv.tune_process`` (tinyconv/threads.py).  Imports neither Numba nor anything
of tinyconv, so asking loads nothing.
"""
import os

_NAMES = ("libgomp", "libiomp", "libomp")


def openmp_runtimes():
    """The paths of the OpenMP runtimes loaded in this process, sorted.

    Linux: the shared objects mapped in /proc/self/maps; elsewhere threadpoolctl's view.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if ".so" in line}
    except OSError:                        # not Linux: ask threadpoolctl
        from threadpoolctl import threadpool_info
        paths = {p["filepath"] for p in threadpool_info() if p.get("user_api") == "openmp"}
    return sorted(p for p in paths if os.path.basename(p).startswith(_NAMES))
