"""Reductions and indices: sum, mean, max/min, argmax/argmin, sort, topk, all/any.

Each differentiable one is a Function with its forward and backward; the index ops
(argmax, sort's indices, ...) give integer tensors outside the graph, as in PyTorch.
"""
import builtins

import numpy as np

from . import backend
from .autograd import Function, Tensor


def _normalize_axes(axis, ndim, op):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: dim {a} out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


class Sum(Function):
    """y = sum of x over axes;  dx = dy broadcast back over those axes."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.array_module(gy)
        if not self.keepdims and self.axes is not None:
            gy = xp.expand_dims(gy, self.axes)
        return xp.broadcast_to(gy, self.shape).copy()


class Mean(Sum):
    """y = mean of x over axes;  dx = dy / n broadcast back."""

    def forward(self, x):
        y = super().forward(x)
        self.n = x.size // builtins.max(y.size, 1) if x.size else 0
        return y / x.dtype.type(self.n) if x.dtype.kind == "f" else y / self.n

    def backward(self, gy):
        return super().backward(gy) / gy.dtype.type(builtins.max(self.n, 1))


class Max(Function):
    """y = max of x over axes;  dx = dy at the maxima (shared equally between ties)."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError("max: the tensor is empty")
        y = x.max(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if self.keepdims else (y.reshape(()) if self.axes is None else y.squeeze(self.axes))

    def backward(self, gy):
        x, y = self.saved_tensors
        xp = backend.array_module(x)
        if not self.keepdims:
            gy = gy.reshape(y.shape)
        mask = (x == y)
        count = mask.sum(axis=self.axes, keepdims=True)
        return xp.where(mask, gy / count.astype(gy.dtype), xp.zeros((), dtype=gy.dtype))


_REDUCTIONS = {"sum": Sum, "mean": Mean, "max": Max}


def reduce(op, x, axis, dim, keepdims, keepdim):
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    axes = _normalize_axes(axis, x.ndim, op)
    if op == "mean" and x.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating point tensor, got {x.dtype}")
    return _REDUCTIONS[op](axes, bool(keepdims))(x)




def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    return reduce("sum", x, axis, dim, keepdim if keepdims is None else keepdims, None)


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    return reduce("mean", x, axis, dim, keepdim if keepdims is None else keepdims, None)


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return reduce("max", x, axis, dim, keepdim if keepdims is None else keepdims, None)


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    axis = axis if dim is None else dim
    keep = keepdim if keepdims is None else keepdims
    xp = backend.array_module(x.array)
    out = xp.argmax(x.array, axis=axis)
    if keep and axis is not None:
        out = xp.expand_dims(out, axis)
    return Tensor(out)
