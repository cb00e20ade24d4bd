"""CUDA launchers for ``conv.cu``: im2col and col2im (the kernel contract of tinyconv/functional/conv.py).

Both kernels are one thread per output element: im2col per (n, c, oh, ow) output
position, col2im per input pixel in gather form (deterministic, no atomics).  They take
the layout of the column matrix as two strides (see ``conv.cu``), so the same pair
serves the contract's (N, C*kh*kw, L) (:func:`im2col`, :func:`col2im`) and conv2d's
batched GEMM layout (G, K, N*L) (:func:`im2col_batched`, :func:`col2im_batched`, the
signatures of ``conv_numba.py``'s), which spares conv2d a transposing copy of the
columns around each GEMM.  The GEMMs themselves are cuBLAS calls (``kernels/gemm.py``).
"""
import numpy as np

from ._geometry import batched_geometry, check_out, col2im_geometry, out_size
from .cuda_loader import launch, xp_of

#: kernel name -> templated on the dtype (float and double instances)
KERNELS = {"im2col_kernel": True, "col2im_kernel": True}

_i32, _i64 = np.int32, np.int64


def _geometry_args(C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, sample_stride, row_stride):
    """The kernels' shared trailing parameters, typed as their C parameter list."""
    return (_i32(C), _i32(H), _i32(W), _i32(kh), _i32(kw), _i32(sh), _i32(sw), _i32(ph), _i32(pw),
            _i32(dh), _i32(dw), _i32(OH), _i32(OW), _i64(sample_stride), _i64(row_stride))


def _im2col_into(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, batched):
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    L = OH * OW
    # entry (n, r, l) at n*sample_stride + r*row_stride + l (conv.cu's header)
    strides = (L, N * L) if batched else (C * kh * kw * L, L)
    geometry = _geometry_args(C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, *strides)
    total = N * C * OH * OW                     # one thread per (n, c, oh, ow)
    launch("conv", "im2col_kernel", x.dtype, total, (x, cols, _i64(total)) + geometry)
    return cols


def _col2im_into(cols, gx, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, batched):
    N, C, H, W = gx.shape
    L = OH * OW
    strides = (L, N * L) if batched else (C * kh * kw * L, L)
    geometry = _geometry_args(C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, *strides)
    total = N * C * H * W                       # one thread per input pixel
    launch("conv", "col2im_kernel", cols.dtype, total, (cols, gx, _i64(total)) + geometry)
    return gx


def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """x (N, C, H, W) -> cols (N, C*kh*kw, OH*OW); (dh, dw) is the dilation."""
    xp = xp_of(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    cols = xp.empty((N, C * kh * kw, OH * OW), dtype=x.dtype)
    return _im2col_into(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, batched=False)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """cols (N, C*kh*kw, OH*OW) -> gx (N, C, H, W), summing overlapping patches."""
    xp = xp_of(cols)
    cols = xp.ascontiguousarray(cols)
    N, C, H, W, OH, OW = col2im_geometry(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    gx = xp.empty((N, C, H, W), dtype=cols.dtype)
    return _col2im_into(cols, gx, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, batched=False)


def im2col_batched(x, kh, kw, sh, sw, ph, pw, groups, out=None, dh=1, dw=1):
    """im2col written straight into conv2d's GEMM layout (G, K, N*L) (into ``out`` if given).

    Equals ``im2col_reference(x, ...).reshape(N, G, K, L).transpose(1, 2, 0, 3).reshape(G, K, N*L)``.
    """
    xp = xp_of(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    if groups < 1 or (C * kh * kw) % groups:
        raise ValueError(f"im2col_batched: groups={groups} does not divide C*kh*kw = {C * kh * kw}")
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    shape = (groups, C * kh * kw // groups, N * OH * OW)
    out = xp.empty(shape, dtype=x.dtype) if out is None else check_out(out, shape, x.dtype, "im2col_batched")
    return _im2col_into(x, out, kh, kw, sh, sw, ph, pw, dh, dw, batched=True)


def col2im_batched(gcols, x_shape, kh, kw, sh, sw, ph, pw, out=None, dh=1, dw=1):
    """col2im reading conv2d's GEMM layout (G, K, N*L) directly; writes gx into ``out`` if given.

    Equals ``col2im_reference(gcols.reshape(G, K, N, L).transpose(2, 0, 1, 3).reshape(N, G*K, L), ...)``.
    """
    xp = xp_of(gcols)
    gcols = xp.ascontiguousarray(gcols)
    N, C, H, W, OH, OW = batched_geometry(gcols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    shape = (N, C, H, W)
    out = xp.empty(shape, dtype=gcols.dtype) if out is None else check_out(out, shape, gcols.dtype,
                                                                           "col2im_batched")
    return _col2im_into(gcols, out, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, batched=True)
