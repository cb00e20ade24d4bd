"""CUDA launchers for ``linear.cu``: the bias add of tinyconv/functional/linear.py, and its reduction.

Contract: ``bias_add(y, b) -> y + b`` with y (M, out), b (out,); it may write into y.
"""
import numpy as np

from .cuda_loader import launch, xp_of

KERNELS = {"bias_add_kernel": True, "bias_grad_kernel": True}


def bias_add(y, b):
    """y += b over the rows of y (in place when y is contiguous; y is the op's own GEMM result)."""
    xp = xp_of(y)
    y = xp.ascontiguousarray(y)
    b = xp.ascontiguousarray(b)
    if y.shape[-1] != b.size:
        raise ValueError(f"bias_add: expected a bias of {y.shape[-1]} elements, got shape {b.shape}")
    launch("linear", "bias_add_kernel", y.dtype, y.size,
           (y, b, np.int64(y.size), np.int32(b.size), np.int64(1)))
    return y


def bias_grad(gy):
    """gb = gy summed over every axis but the last (one thread per feature, fixed order)."""
    xp = xp_of(gy)
    gy = xp.ascontiguousarray(gy)
    C = gy.shape[-1]
    gb = xp.empty((C,), dtype=gy.dtype)
    launch("linear", "bias_grad_kernel", gy.dtype, C,
           (gy, gb, np.int64(gy.size // C), np.int32(C), np.int64(1)))
    return gb
