"""Small problems run on the calling thread alone: waking Numba's thread pool costs more.

A parallel region costs some microseconds to start and join on an idle machine, and up
to a scheduler time slice (milliseconds) when other processes keep the cores busy, since
the region waits for its slowest thread.  Below ``SMALL`` elements of work the kernels
therefore run with one thread (same code, same results: prange splits only independent
work, so the answer never depends on the thread count).
"""
import contextlib

# Nothing here sets the OpenMP wait policy: importing or calling tinyconv leaves the
# process's environment alone.  ``tinyconv.tune_process()`` (tinyconv/threads.py) is the
# opt-in that makes Numba's OpenMP threads sleep as soon as their work is done.
import numba

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
