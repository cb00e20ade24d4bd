"""CUDA launchers for ``lrn.cu``: local response normalization across channels (PyTorch's definition).

Contract (tinyconv/functional/lrn.py): ``lrn_forward(x, size, alpha, beta, k) -> (y, scale)``
and ``lrn_backward(gy, x, y, scale, size, alpha, beta) -> gx``, x (N, C, H, W).
"""
import numpy as np

from .cuda_loader import check, launch, xp_of

KERNELS = {"lrn_forward_kernel": True, "lrn_backward_kernel": True}


def lrn_forward(x, size, alpha, beta, k):
    xp = xp_of(x)
    check("lrn_forward", "x", x)
    if x.ndim < 2:
        raise ValueError(f"lrn_forward: expected x of shape (N, C, ...), got {tuple(x.shape)}")
    x = xp.ascontiguousarray(x)
    N, C = x.shape[:2]
    HW = int(np.prod(x.shape[2:]))
    y = xp.empty_like(x)
    scale = xp.empty_like(x)
    t = x.dtype.type
    launch("lrn", "lrn_forward_kernel", x.dtype, x.size,
           (x, y, scale, np.int64(x.size), np.int32(C), np.int64(HW), np.int32(size),
            t(alpha), t(beta), t(k)))
    return y, scale


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    xp = xp_of(gy)
    check("lrn_backward", "x", x)
    if x.ndim < 2:
        raise ValueError(f"lrn_backward: expected x of shape (N, C, ...), got {tuple(x.shape)}")
    for name, a in (("gy", gy), ("y", y), ("scale", scale)):
        check("lrn_backward", name, a, shape=x.shape, dtype=x.dtype)
    gy, x, y, scale = (xp.ascontiguousarray(a) for a in (gy, x, y, scale))
    N, C = x.shape[:2]
    HW = int(np.prod(x.shape[2:]))
    gx = xp.empty_like(x)
    t = x.dtype.type
    launch("lrn", "lrn_backward_kernel", x.dtype, x.size,
           (gy, x, y, scale, gx, np.int64(x.size), np.int32(C), np.int64(HW), np.int32(size),
            t(alpha), t(beta)))
    return gx
