"""CUDA launchers for ``linear.cu``: the bias add of tinyconv/functional/linear.py, and its reduction.

Contract: ``bias_add(y, b) -> y + b`` with y (M, out), b (out,); it may write into y.
"""
import numpy as np

from .cuda_loader import check, launch, xp_of

KERNELS = {"bias_add_kernel": True, "bias_grad_kernel": True}


def bias_add(y, b):
    """y += b over the rows of y (in place when y is contiguous; y is the op's own GEMM result)."""
    xp = xp_of(y)
    check("bias_add", "y", y)
    if y.ndim < 1:
        raise ValueError(f"bias_add: expected y to be at least 1-d, got shape {tuple(y.shape)}")
    check("bias_add", "b", b, shape=(y.shape[-1],), dtype=y.dtype)
    y = xp.ascontiguousarray(y)
    b = xp.ascontiguousarray(b)
    launch("linear", "bias_add_kernel", y.dtype, y.size, (y, b, np.int64(y.size), np.int32(b.size)))
    return y


def bias_grad(gy):
    """gb = gy summed over every axis but the last (one thread per feature, fixed order)."""
    xp = xp_of(gy)
    check("bias_grad", "gy", gy)
    if gy.ndim < 1:
        raise ValueError(f"bias_grad: expected gy to be at least 1-d, got shape {tuple(gy.shape)}")
    gy = xp.ascontiguousarray(gy)
    C = gy.shape[-1]
    gb = xp.empty((C,), dtype=gy.dtype)
    launch("linear", "bias_grad_kernel", gy.dtype, C, (gy, gb, np.int64(gy.size // max(C, 1)), np.int32(C)))
    return gb
