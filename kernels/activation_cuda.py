"""CUDA launchers for ``activation.cu``: ReLU, and dropout on a counter-based RNG (Philox4x32-10).

Dropout's mask is never stored: :func:`dropout_forward` returns a :class:`PhiloxMask`
(the seed and offset the op handed in, from ``tinyconv.random.philox_seed_offset``), and
:func:`dropout_backward` regenerates the same keep bits from it.  This module imports
nothing of tinyconv.
"""
import numpy as np

from .cuda_loader import check, contiguous, launch, xp_of

KERNELS = {"relu_forward_kernel": True, "relu_backward_kernel": True, "dropout_kernel": True,
           "dropout_mask_kernel": False, "philox4x32_10_kernel": False}


def relu_forward(x):
    xp = xp_of(x)
    check("relu_forward", "x", x)
    x = contiguous(x)
    y = xp.empty_like(x)
    launch("activation", "relu_forward_kernel", x.dtype, x.size, (x, y, np.int64(x.size)))
    return y


def relu_backward(gy, y):
    xp = xp_of(gy)
    check("relu_backward", "gy", gy)
    check("relu_backward", "y", y, shape=gy.shape, dtype=gy.dtype)
    gy, y = contiguous(gy), contiguous(y)
    gx = xp.empty_like(gy)
    launch("activation", "relu_backward_kernel", gy.dtype, gy.size, (gy, y, gx, np.int64(gy.size)))
    return gx


class PhiloxMask:
    """Dropout's keep mask as the Philox key and counter that generate it (16 bytes, not n).

    ``keep()`` materializes it as a bool array, for tests and for the curious.
    """

    __slots__ = ("seed", "offset", "shape", "p", "xp")

    def __init__(self, seed, offset, shape, p, xp):
        self.seed, self.offset, self.shape, self.p, self.xp = int(seed), int(offset), tuple(shape), p, xp

    @property
    def size(self):
        return int(np.prod(self.shape))

    def keep(self):
        mask = self.xp.empty(self.shape, dtype=np.uint8)
        launch("activation", "dropout_mask_kernel", None, (self.size + 3) // 4,
               (mask, np.int64(self.size), np.float64(self.p), np.uint64(self.seed), np.uint64(self.offset)))
        return mask.astype(bool)

    def __repr__(self):
        return f"PhiloxMask(seed={self.seed}, offset={self.offset}, shape={self.shape}, p={self.p})"


def _dropout(x, mask):
    xp = xp_of(x)
    check("dropout", "x", x, shape=mask.shape)
    x = contiguous(x)
    y = xp.empty_like(x)
    launch("activation", "dropout_kernel", x.dtype, (x.size + 3) // 4,
           (x, y, np.int64(x.size), np.float64(mask.p), np.uint64(mask.seed), np.uint64(mask.offset)))
    return y


def dropout_forward(x, p, seed, offset):
    """(y, mask): y = x * keep / (1 - p), keep = [u >= p] with u from Philox(seed, offset).

    ``seed`` and ``offset`` are handed in by the op (``tinyconv.random.philox_seed_offset(x.size)``);
    one Philox call draws four numbers: counters (group, offset) with group < ceil(n/4).
    """
    mask = PhiloxMask(seed, offset, x.shape, float(p), xp_of(x))
    return _dropout(x, mask), mask


def dropout_backward(gy, mask, p):
    """gx = gy * keep / (1 - p), with keep regenerated from the forward's (seed, offset)."""
    if tuple(gy.shape) != mask.shape or float(p) != mask.p:
        raise ValueError(f"dropout_backward: mask is for shape {mask.shape}, p={mask.p}; "
                         f"got gy of shape {tuple(gy.shape)}, p={p}")
    return _dropout(gy, mask)
