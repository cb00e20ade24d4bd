"""Nearest-neighbour resizing, as ``torch.nn.functional.interpolate(mode="nearest")``.

Output position i along an axis of input length n and output length m reads input
position ``src(i) = min(floor(i * scale), n - 1)`` with ``scale = n / m`` when a ``size``
is given and ``1 / scale_factor`` when a ``scale_factor`` is (PyTorch's rule; m is then
``floor(n * scale_factor)``).  Per axis that is a 0/1 selection matrix S (m, n), so

    y = S_h @ x @ S_w^T      (4-d (N, C, H, W); 3-d (N, C, L): y = x @ S_w^T)
    dx = S_h^T @ dy @ S_w    (a pixel read by several outputs sums their gradients)
"""
import math
import numbers

import numpy as np

from ..autograd import Function
from ..backend import array_module
from ._checks import check_float, check_tensor


def nearest_matrix(n, m, scale, xp, dtype):
    """The (m, n) selection matrix: row i is one-hot at min(floor(i * scale), n - 1)."""
    src = np.minimum(np.floor(np.arange(m) * scale).astype(np.int64), n - 1)
    S = np.zeros((m, n))
    S[np.arange(m), src] = 1
    return xp.asarray(S, dtype=dtype)


class UpsampleNearestFn(Function):
    """y = S_h @ x @ S_w^T (or x @ S_w^T for 3-d);  dx = S_h^T @ dy @ S_w."""

    def __init__(self, sizes, scales):
        self.sizes, self.scales = sizes, scales

    def forward(self, x):
        xp = array_module(x)
        self.S = [nearest_matrix(n, m, s, xp, x.dtype)
                  for n, m, s in zip(x.shape[2:], self.sizes, self.scales)]
        y = x @ self.S[-1].T
        if len(self.S) == 2:
            y = self.S[0] @ y
        return xp.ascontiguousarray(y)

    def backward(self, gy):
        g = gy @ self.S[-1]
        if len(self.S) == 2:
            g = self.S[0].T @ g
        return (array_module(gy).ascontiguousarray(g),)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize an (N, C, L) or (N, C, H, W) input to ``size`` or by ``scale_factor`` (an int/float
    or one per spatial dim), as ``torch.nn.functional.interpolate``.  Only ``mode="nearest"``
    is supported; ``recompute_scale_factor=True`` uses n / m as the scale (as with a size)."""
    op = "interpolate"
    check_tensor(input, op)
    check_float(input, op)
    if mode != "nearest":
        raise NotImplementedError(f"{op}: only mode='nearest' is supported, got mode={mode!r}")
    if align_corners is not None:
        raise ValueError(f"{op}: align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if antialias:
        raise ValueError(f"{op}: anti-alias option is only supported for bilinear and bicubic modes")
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-d (N, C, L) or 4-d (N, C, H, W) input, got shape {input.shape}")
    dims, spatial = input.ndim - 2, input.shape[2:]
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of size or scale_factor must be given")

    def per_dim(v, name, kind):
        vals = tuple(v) if isinstance(v, (tuple, list)) else (v,) * dims
        if len(vals) != dims or not all(isinstance(a, kind) and not isinstance(a, bool) for a in vals):
            raise ValueError(f"{op}: {name} must be a number or a sequence of {dims} numbers for a "
                             f"{input.ndim}-d input, got {v!r}")
        return vals

    if size is not None:
        sizes = tuple(int(s) for s in per_dim(size, "size", numbers.Integral))
        scales = tuple(n / m for n, m in zip(spatial, sizes))
    else:
        factors = tuple(float(f) for f in per_dim(scale_factor, "scale_factor", numbers.Real))
        sizes = tuple(math.floor(n * f) for n, f in zip(spatial, factors))
        scales = tuple(n / m if recompute_scale_factor else 1 / f
                       for n, m, f in zip(spatial, sizes, factors))
    if any(m < 1 for m in sizes) or any(n < 1 for n in spatial):
        raise ValueError(f"{op}: input {input.shape} and output sizes {sizes} must be non-empty")
    return UpsampleNearestFn(sizes, scales)(input)
