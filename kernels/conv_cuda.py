"""CUDA launchers for ``conv.cu``: im2col and col2im (the kernel contract of tinyconv/functional/conv.py).

The GEMMs of the convolution stay in ``cupy.matmul`` (cuBLAS); these two kernels move the
patches.  Both are one thread per output element: im2col per (n, c, oh, ow) output
position, col2im per input pixel in gather form (deterministic, no atomics).
"""
import numpy as np

from ._geometry import col2im_geometry, out_size
from .cuda_loader import launch, xp_of

#: kernel name -> templated on the dtype (float and double instances)
KERNELS = {"im2col_kernel": True, "col2im_kernel": True}

_i32, _i64 = np.int32, np.int64



def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """x (N, C, H, W) -> cols (N, C*kh*kw, OH*OW); (dh, dw) is the dilation."""
    xp = xp_of(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    cols = xp.empty((N, C * kh * kw, OH * OW), dtype=x.dtype)
    total = N * C * OH * OW
    launch("conv", "im2col_kernel", x.dtype, total,
           (x, cols, _i64(total), _i32(H), _i32(W), _i32(kh), _i32(kw), _i32(sh), _i32(sw),
            _i32(ph), _i32(pw), _i32(dh), _i32(dw), _i32(OH), _i32(OW)))
    return cols


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """cols (N, C*kh*kw, OH*OW) -> gx (N, C, H, W), summing overlapping patches."""
    xp = xp_of(cols)
    cols = xp.ascontiguousarray(cols)
    N, C, H, W, OH, OW = col2im_geometry(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    gx = xp.empty((N, C, H, W), dtype=cols.dtype)
    total = N * C * H * W
    launch("conv", "col2im_kernel", cols.dtype, total,
           (cols, gx, _i64(total), _i32(H), _i32(W), _i32(kh), _i32(kw), _i32(sh), _i32(sw),
            _i32(ph), _i32(pw), _i32(dh), _i32(dw), _i32(OH), _i32(OW)))
    return gx
