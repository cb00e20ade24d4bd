"""Small problems run on the calling thread alone: waking Numba's thread pool costs more.

A parallel region costs some microseconds to start and join on an idle machine, and up
to a scheduler time slice (milliseconds) when other processes keep the cores busy, since
the region waits for its slowest thread.  Below ``SMALL`` elements of work the kernels
therefore run with one thread (same code, same results: prange splits only independent
work, so the answer never depends on the thread count).
"""
import contextlib
import os

# GNU OpenMP (Numba's default threading layer here) keeps its threads spinning after each
# parallel region.  On a machine with few cores that spin steals the cores from BLAS's
# threads and from everything else, and when the cores are busy a region then waits a
# whole scheduler time slice for its other thread: measured on 2 cores, a 0.2 ms LRN took
# 15 ms with two spinning threads and 0.2 ms with passive ones.  So, unless the user chose
# a policy, Numba's threads sleep as soon as their work is done.  The variable is read
# when Numba starts its OpenMP runtime (its first parallel call), which comes after this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

SMALL = 1 << 15   # elements of work below which one thread is faster


@contextlib.contextmanager
def threads_for(work):
    """Run the enclosed kernel call with one thread if ``work`` is small, else with all of them."""
    n = numba.get_num_threads()
    if work >= SMALL or n == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(n)
