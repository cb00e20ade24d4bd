"""Argument checks shared by the layer ops: each error names the op and expected vs actual."""
import numpy as np

from ..autograd import Tensor


def check_tensor(x, op, name="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(x).__name__}")
    return x


def check_ndim(x, ndims, op, name="input", layout=None):
    """Require ``x.ndim`` in ``ndims`` (an int or a tuple of ints)."""
    check_tensor(x, op, name)
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if x.ndim not in ndims:
        want = " or ".join(f"{n}-d" for n in ndims) + (f" ({layout})" if layout else "")
        raise ValueError(f"{op}: expected {name} to be {want}, got shape {x.shape}")
    return x


def check_float(x, op, name="input"):
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point {name}, got {x.dtype}")
    return x


def check_same_dtype(op, **tensors):
    tensors = {k: v for k, v in tensors.items() if v is not None}
    dtypes = {str(t.dtype) for t in tensors.values()}
    if len(dtypes) > 1:
        desc = ", ".join(f"{k} {t.dtype}" for k, t in tensors.items())
        raise TypeError(f"{op}: expected one dtype, got {desc}")


def pair(v, op, name, minimum=0):
    """An int or a pair of ints -> (int, int), each at least ``minimum``."""
    def is_int(a):
        return isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))

    vals = (v, v) if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if vals is None or len(vals) != 2 or not all(is_int(a) for a in vals):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if any(a < minimum for a in vals):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    return tuple(int(a) for a in vals)


def single(v, op, name, minimum=0):
    """An int or a 1-tuple of ints -> int, at least ``minimum`` (the 1-d ops' arguments)."""
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {v!r}")
    if v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    return int(v)


def as_2d_op(fn, input, op, *args, **kwargs):
    """Run 2-d op ``fn`` on an (N, C, L) or (C, L) input seen as (N, C, 1, L); drop that 1 again."""
    check_tensor(input, op)
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected input to be 2-d or 3-d (N, C, L; or unbatched C, L), "
                         f"got shape {input.shape}")
    x = input.reshape(*input.shape[:-1], 1, input.shape[-1])
    out = fn(x, *args, **kwargs)
    if isinstance(out, tuple):
        return tuple(o.reshape(*o.shape[:-2], o.shape[-1]) for o in out)
    return out.reshape(*out.shape[:-2], out.shape[-1])
