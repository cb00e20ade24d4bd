"""float16 through the Numba kernels: computed in float32, rounded back to float16.

Numba compiles no float16 arithmetic, while the ops accept any floating dtype.  A
float16 call therefore widens its float16 arrays to float32, runs the float32 kernel
and rounds the floating results back.  Copies and compares (im2col, max-pool, ReLU,
dropout) give the reference's answer exactly; sums and powers (col2im, LRN) are then
rounded once instead of after every step, i.e. they agree with the float16 reference
to float16 rounding.
"""
import functools

import numpy as np


def _widen(a):
    return a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float16 else a


def _narrow(out):
    if isinstance(out, tuple):
        return tuple(_narrow(o) for o in out)
    if isinstance(out, np.ndarray) and out.dtype == np.float32:
        return out.astype(np.float16)
    return out


def float16_via_float32(fn):
    """Decorate a kernel's wrapper so that float16 arrays go through its float32 kernel.

    A float16 ``out=`` array receives the rounded result (the float32 kernel writes
    into a float32 array of its own first).
    """
    @functools.wraps(fn)
    def wrapper(*args, out=None, **kwargs):
        if not any(isinstance(a, np.ndarray) and a.dtype == np.float16 for a in (*args, out)):
            return fn(*args, **kwargs) if out is None else fn(*args, out=out, **kwargs)
        result = _narrow(fn(*(_widen(a) for a in args), **kwargs))
        if out is None:
            return result
        out[...] = result
        return out
    return wrapper
