"""A full disk must not break a kernel: Numba's on-disk cache, made best-effort.

``@njit(cache=True)`` compiles a kernel for each new argument type and then writes the
machine code under ``__pycache__``.  Numba lets an ``OSError`` of that write escape from
the call that triggered the compilation, so on a full disk (or quota, a file-size limit,
a read-only mount appearing mid-run) a training step would fail, although the kernel
was compiled fine and sits in memory.  ``tolerate_write_errors`` wraps the cache's
``save_overload`` of every dispatcher in a kernels module so that those errors only
skip the cache file: the next process compiles again.  Reading the cache is unchanged.
"""
import errno

#: the write errors that mean "no room or no right to write", not a bug
SKIPPED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def tolerate_write_errors(module):
    """Make the cache writes of ``module``'s Numba dispatchers skip SKIPPED errors; idempotent."""
    for obj in vars(module).values():
        cache = getattr(obj, "_cache", None)
        save = getattr(cache, "save_overload", None)
        if save is None or getattr(save, "tolerant", False):
            continue

        def save_overload(sig, data, save=save):
            try:
                save(sig, data)
            except OSError as e:
                if e.errno not in SKIPPED:
                    raise
        save_overload.tolerant = True
        cache.save_overload = save_overload
