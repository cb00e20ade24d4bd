"""CUDA launchers for ``pooling.cu``: max-pool forward with arg-max, and backward in gather form.

Contract (tinyconv/functional/pooling.py): argmax is int64, shaped like y, holding the flat
index h*W + w of the winner inside its (n, c) plane; the first maximum wins ties.
"""
import numpy as np

from ._geometry import out_size
from .cuda_loader import check, launch, xp_of

KERNELS = {"max_pool2d_forward_kernel": True, "max_pool2d_backward_kernel": True}

_i32, _i64 = np.int32, np.int64


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """x (N, C, H, W) -> (y, argmax), both (N, C, OH, OW); (dh, dw) is the dilation."""
    xp = xp_of(x)
    check("max_pool2d_forward", "x", x, ndim=4)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = xp.empty((N, C, OH, OW), dtype=np.int64)
    total = N * C * OH * OW
    launch("pooling", "max_pool2d_forward_kernel", x.dtype, total,
           (x, y, argmax, _i64(total), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(kh), _i32(kw),
            _i32(sh), _i32(sw), _i32(ph), _i32(pw), _i32(dh), _i32(dw)))
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel_size, stride, padding, dilation=(1, 1)):
    """gx (``x_shape``): gy summed onto the arg-max pixels, deterministically (no atomics).

    Gather form: one thread per input pixel visits the outputs with a window tap on it
    (from the geometry: ``kernel_size``, ``stride``, ``padding``, ``dilation``, as pairs)
    in increasing (oh, ow) order and sums gy where the arg-max is this pixel.
    """
    op = "max_pool2d_backward"
    xp = xp_of(gy)
    N, C, H, W = (int(s) for s in x_shape)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    check(op, "gy", gy, ndim=4)
    # ceil_mode may add a last window past the edge: up to one more output row / column
    if gy.shape[:2] != (N, C) or not (OH <= gy.shape[2] <= OH + 1 and OW <= gy.shape[3] <= OW + 1):
        raise ValueError(f"{op}: expected gy of shape {(N, C, OH, OW)} for x_shape {(N, C, H, W)} and "
                         f"kernel {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}, "
                         f"got {tuple(gy.shape)}")
    check(op, "argmax", argmax, shape=gy.shape, dtype=np.int64)
    gy = xp.ascontiguousarray(gy)
    argmax = xp.ascontiguousarray(argmax)
    OH, OW = gy.shape[2], gy.shape[3]
    gx = xp.empty((N, C, H, W), dtype=gy.dtype)
    total = N * C * H * W
    launch("pooling", "max_pool2d_backward_kernel", gy.dtype, total,
           (gy, argmax, gx, _i64(total), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(kh), _i32(kw),
            _i32(sh), _i32(sw), _i32(ph), _i32(pw), _i32(dh), _i32(dw)))
    return gx
