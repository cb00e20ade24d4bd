"""CPU kernels (Numba) for the ``activation`` family: ReLU and inverted dropout.

References in ``tinyconv/functional/activation.py``:

* ``relu_forward(x) -> y`` equals ``relu_forward_reference`` exactly (y = 0 where x < 0 else x,
  so NaN and -0 pass); ``relu_backward(gy, y) -> gx`` equals ``relu_backward_reference`` (0 where y <= 0, else
  gy, so a NaN passes gy as in PyTorch).
* ``dropout_forward(x, p, seed, offset) -> (y, mask)`` and ``dropout_backward(gy, mask, p) -> gx``
  compute what ``dropout_forward_reference`` / ``dropout_backward_reference`` compute,
  y = x * mask * (1/(1-p)), with the mask drawn differently (see below), so the two paths
  give different but equally distributed masks from one (seed, offset).

Dropout randomness.  The op hands it in: ``seed`` and ``offset`` come from
``tinyconv.random.philox_seed_offset(x.size)`` (this module imports nothing of tinyconv).
Element i's uniform comes from a counter-based hash keyed by ``seed`` with counter
``offset + i``: u_i = splitmix64(seed + (offset + i) * golden) / 2^64 (53 bits).  So the
mask is a pure function of (seed, offset, p, shape), never of the thread count or of how
prange splits the work; ``tinyconv.manual_seed`` makes it reproducible, and successive
calls differ because the op's offset advances by x.size.  The mask is a bool array (1 byte
per element, never a float tensor).

Elementwise loops run over the flat C-contiguous arrays, split across threads by prange;
results keep the input's shape (a 0-d input gives a 0-d output).
"""
import numpy as np
from numba import njit, prange

from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for


def _contiguous(a):
    """``a`` C-contiguous with its own shape (``np.ascontiguousarray`` makes a 0-d array 1-d)."""
    return np.ascontiguousarray(a).reshape(np.shape(a))


# ---------------------------------------------------------------------------- ReLU


@njit(cache=True, parallel=True)
def _relu_fwd(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v < 0 else v                   # max(v, 0); NaN and -0 pass through, as in PyTorch


@float16_via_float32
def relu_forward(x):
    """y = max(x, 0) elementwise; equals ``relu_forward_reference``."""
    x = _contiguous(x)
    y = np.empty_like(x)
    with threads_for(x.size):
        _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


@njit(cache=True, parallel=True)
def _relu_bwd(gy, y, gx):
    for i in prange(gy.size):
        gx[i] = 0 if y[i] <= 0 else gy[i]          # a NaN y passes gy, as in PyTorch


@float16_via_float32
def relu_backward(gy, y):
    """gx = 0 where y <= 0, else gy; equals ``relu_backward_reference``."""
    gy = _contiguous(gy)
    y = _contiguous(y)
    gx = np.empty_like(gy)
    with threads_for(gy.size):
        _relu_bwd(gy.reshape(-1), y.reshape(-1), gx.reshape(-1))
    return gx


# ---------------------------------------------------------------------------- dropout


@njit(cache=True, inline="always")
def _uniform(seed, i):
    """u in [0, 1) from the splitmix64 finalizer of (seed + i * golden): counter-based, i the counter."""
    z = np.uint64(seed) + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)   # top 53 bits / 2^53


@njit(cache=True, parallel=True)
def _dropout_fwd(x, y, mask, p, scale, seed, offset):
    for i in prange(x.size):
        keep = _uniform(seed, offset + np.uint64(i)) >= p      # counter offset + i, in uint64
        mask[i] = keep
        y[i] = x[i] * (1 if keep else 0) * scale   # x * mask * scale, in the reference's order


@float16_via_float32
def dropout_forward(x, p, seed, offset):
    """Inverted dropout: (y, mask), keep where u >= p, y = x * mask / (1 - p).

    ``seed`` and ``offset`` (non-negative ints) are handed in by the op, from
    ``tinyconv.random.philox_seed_offset(x.size)``; element i's uniform is the splitmix64
    hash keyed by ``seed`` at counter ``offset + i``, so equal arguments give equal masks.
    """
    x = _contiguous(x)
    seed = np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)
    offset = np.uint64(int(offset) & 0xFFFFFFFFFFFFFFFF)
    y = np.empty_like(x)
    mask = np.empty(x.shape, dtype=np.bool_)
    scale = x.dtype.type(1.0 / (1.0 - p))
    with threads_for(x.size):
        _dropout_fwd(x.reshape(-1), y.reshape(-1), mask.reshape(-1), float(p), scale, seed, offset)
    return y, mask


@njit(cache=True, parallel=True)
def _dropout_bwd(gy, mask, gx, scale):
    for i in prange(gy.size):
        gx[i] = gy[i] * (1 if mask[i] else 0) * scale


@float16_via_float32
def dropout_backward(gy, mask, p):
    """gx = gy * mask / (1 - p) with the forward's mask; equals ``dropout_backward_reference``."""
    gy = _contiguous(gy)
    mask = _contiguous(mask)
    gx = np.empty_like(gy)
    with threads_for(gy.size):
        _dropout_bwd(gy.reshape(-1), mask.reshape(-1), gx.reshape(-1), gy.dtype.type(1.0 / (1.0 - p)))
    return gx
