"""Small problems run on the calling thread alone: waking Numba's thread pool costs more.

A parallel region costs some microseconds to start and join on an idle machine, and up
to a scheduler time slice (milliseconds) when other processes keep the cores busy, since
the region waits for its slowest thread.  Below ``SMALL`` elements of work the kernels
therefore run with one thread (same code, same results: prange splits only independent
work, so the answer never depends on the thread count).
"""
import contextlib
import os
import threading

# Nothing here sets the OpenMP wait policy: importing or calling tinyconv leaves the
# process's environment alone.  ``tinyconv.tune_process()`` (tinyconv/threads.py) is the
# opt-in that makes Numba's OpenMP threads sleep as soon as their work is done.
import numba

from ._openmp import openmp_runtimes

SMALL = 1 << 15   # elements of work below which one thread is faster

_pool_checked = False
_choice_lock = threading.Lock()
#: serialises tinyconv's parallel launches when Numba runs on its workqueue layer, which
#: allows one launch at a time in the whole process (None on the OpenMP or TBB layers)
_launch_lock = None


def ensure_pool():
    """Choose Numba's threading layer, once, before its thread pool starts.

    Beside PyTorch: ``import torch`` loads PyTorch's own GNU OpenMP runtime into the
    process's global symbol scope, and Numba's OpenMP layer, started after it, binds to
    that runtime (checked with ``LD_DEBUG=bindings``).  Its threads then spin after every
    parallel region (the wait policy that runtime read when PyTorch loaded it), and on a
    machine with few cores each spin takes the core the next GEMM needs; measured on 2
    cores, the paper AlexNet step took longer beside PyTorch than alone.  So when an
    OpenMP runtime is loaded before Numba starts its pool, and the user has not chosen a
    layer (``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``), Numba is told
    to use its own ``workqueue`` pool, whose threads sleep between kernels and which
    touches no OpenMP runtime.  That layer runs one parallel launch at a time per process,
    so tinyconv's launches then take a lock (:func:`threads_for`).  Otherwise Numba keeps
    its default choice.
    """
    global _pool_checked, _launch_lock
    if _pool_checked:
        return
    with _choice_lock:                        # two threads' first kernels: one chooses
        if _pool_checked:
            return
        from numba.np.ufunc import parallel
        if (not parallel._is_initialized and numba.config.THREADING_LAYER == "default"
                and "NUMBA_THREADING_LAYER" not in os.environ and openmp_runtimes()):
            numba.config.THREADING_LAYER = "workqueue"
        numba.get_num_threads()               # starts the pool with the layer chosen
        if numba.threading_layer() == "workqueue":
            _launch_lock = threading.RLock()
        _pool_checked = True


@contextlib.contextmanager
def threads_for(work):
    """Run the enclosed kernel call with one thread if ``work`` is small, else with all of them."""
    ensure_pool()
    with _launch_lock or contextlib.nullcontext():
        n = numba.get_num_threads()
        if work >= SMALL or n == 1:
            yield
            return
        numba.set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(n)
