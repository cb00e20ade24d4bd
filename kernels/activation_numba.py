"""CPU kernels (Numba) for the ``activation`` family: ReLU and inverted dropout.

References in ``tinyconv/functional/activation.py``:

* ``relu_forward(x) -> y`` equals ``relu_forward_reference`` exactly (y = max(x, 0), NaN stays
  NaN); ``relu_backward(gy, y) -> gx`` equals ``relu_backward_reference`` (gy where y > 0).
* ``dropout_forward(x, p, rng=None) -> (y, mask)`` and ``dropout_backward(gy, mask, p) -> gx``
  compute what ``dropout_forward_reference`` / ``dropout_backward_reference`` compute,
  y = x * mask * (1/(1-p)), with the mask drawn differently (see below), so the two paths
  give different but equally distributed masks from one seed.

Dropout randomness.  The kernel draws **one** 64-bit seed from a NumPy Generator,
``rng`` (the op should pass ``rng=tinyconv.random.generator()``), and derives element
i's uniform from a counter-based hash, u_i = splitmix64(seed + i) / 2^64 (53 bits).  So
the mask depends only on the seed and the element's flat index, never on the thread
count or on how prange splits the work, and ``tinyconv.manual_seed`` makes it
reproducible.  The mask is a bool array (1 byte per element, never a float tensor).

Elementwise loops run over the flat C-contiguous arrays, split across threads by prange.
"""
import numpy as np
from numba import njit, prange

from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for

# ---------------------------------------------------------------------------- ReLU


@njit(cache=True, parallel=True)
def _relu_fwd(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if (v > 0 or v != v) else 0       # max(v, 0); a NaN passes through as in np.maximum


@float16_via_float32
def relu_forward(x):
    """y = max(x, 0) elementwise; equals ``relu_forward_reference``."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    with threads_for(x.size):
        _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


@njit(cache=True, parallel=True)
def _relu_bwd(gy, y, gx):
    for i in prange(gy.size):
        gx[i] = gy[i] if y[i] > 0 else 0


@float16_via_float32
def relu_backward(gy, y):
    """gx = gy where y > 0, else 0; equals ``relu_backward_reference``."""
    gy = np.ascontiguousarray(gy)
    y = np.ascontiguousarray(y)
    gx = np.empty_like(gy)
    with threads_for(gy.size):
        _relu_bwd(gy.reshape(-1), y.reshape(-1), gx.reshape(-1))
    return gx


# ---------------------------------------------------------------------------- dropout


@njit(cache=True, inline="always")
def _uniform(seed, i):
    """u in [0, 1) from the splitmix64 finalizer of (seed + i): a counter-based generator."""
    z = np.uint64(seed) + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)   # top 53 bits / 2^53


@njit(cache=True, parallel=True)
def _dropout_fwd(x, y, mask, p, scale, seed):
    for i in prange(x.size):
        keep = _uniform(seed, i) >= p
        mask[i] = keep
        y[i] = x[i] * (1 if keep else 0) * scale   # x * mask * scale, in the reference's order


@float16_via_float32
def dropout_forward(x, p, rng=None):
    """Inverted dropout: (y, mask), keep where u >= p, y = x * mask / (1 - p).

    ``rng`` is the NumPy Generator the seed is drawn from; tinyconv's op passes
    ``tinyconv.random.generator()``.  Without it the kernel falls back to that same
    generator, looked up at call time so this module still imports nothing of tinyconv.
    """
    if rng is None:
        import importlib                           # only at call time: see the docstring
        rng = importlib.import_module("tinyconv.random").generator()
    x = np.ascontiguousarray(x)
    seed = np.uint64(rng.integers(0, 2**63))
    y = np.empty_like(x)
    mask = np.empty(x.shape, dtype=np.bool_)
    scale = x.dtype.type(1.0 / (1.0 - p))
    with threads_for(x.size):
        _dropout_fwd(x.reshape(-1), y.reshape(-1), mask.reshape(-1), float(p), scale, seed)
    return y, mask


@njit(cache=True, parallel=True)
def _dropout_bwd(gy, mask, gx, scale):
    for i in prange(gy.size):
        gx[i] = gy[i] * (1 if mask[i] else 0) * scale


@float16_via_float32
def dropout_backward(gy, mask, p):
    """gx = gy * mask / (1 - p) with the forward's mask; equals ``dropout_backward_reference``."""
    gy = np.ascontiguousarray(gy)
    mask = np.ascontiguousarray(mask)
    gx = np.empty_like(gy)
    with threads_for(gy.size):
        _dropout_bwd(gy.reshape(-1), mask.reshape(-1), gx.reshape(-1), gy.dtype.type(1.0 / (1.0 - p)))
    return gx
