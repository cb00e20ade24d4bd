"""CPU kernels (Numba) for the ``conv`` family: im2col and its adjoint col2im.

Each must equal its NumPy reference in ``tinyconv/functional/conv.py``
(``im2col_reference``, ``col2im_reference``) exactly: both only copy or add the
same numbers, and col2im adds the overlapping patches in the same order per pixel
up to float rounding.  The GEMMs around them stay in NumPy's BLAS.

Layout (the kernel contract)::

    x     (N, C, H, W)                 C-contiguous, float32 or float64
    cols  (N, C*kh*kw, OH*OW)          row r = (c*kh + i)*kw + j, column l = oh*OW + ow
    cols[n, r, l] = x[n, c, oh*sh - ph + i, ow*sw - pw + j]   (0 outside the image)
    OH = (H + 2*ph - kh)//sh + 1,  OW = (W + 2*pw - kw)//sw + 1

Both kernels run one (n, c) image plane per parallel task: the plane's kh*kw rows
of ``cols`` are written (im2col) or read (col2im) by that task alone, so col2im's
scatter-add needs no atomics.  Padding is never materialised: for each kernel tap
(i, j) the range of output columns whose input column lies inside the image is
computed once, and only the borders outside it are zero-filled.

This module imports nothing of tinyconv; ``tinyconv.backend.kernel`` finds its
functions by name.
"""
import numpy as np
from numba import njit, prange


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


@njit(cache=True, inline="always")
def _valid_range(pad, tap, stride, size, out):
    """Output indices o in [lo, hi) with 0 <= o*stride - pad + tap < size."""
    # o*stride >= pad - tap  ->  o >= ceil((pad - tap) / stride)
    lo = 0
    if pad - tap > 0:
        lo = (pad - tap + stride - 1) // stride
    # o*stride - pad + tap <= size - 1  ->  o <= floor((size - 1 + pad - tap) / stride)
    top = size - 1 + pad - tap
    hi = 0 if top < 0 else top // stride + 1
    if hi > out:
        hi = out
    if lo > hi:
        lo = hi
    return lo, hi


@njit(cache=True, parallel=True)
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, OH, OW):
    N, C, H, W = x.shape
    for nc in prange(N * C):                       # one (n, c) image plane per task
        n = nc // C
        c = nc - n * C
        plane = x[n, c]
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(ph, i, sh, H, OH)
            for j in range(kw):
                ow_lo, ow_hi = _valid_range(pw, j, sw, W, OW)
                row = cols[n, (c * kh + i) * kw + j]   # (OH*OW,), column l = oh*OW + ow
                # rows oh whose input row oh*sh - ph + i falls in the padding: all zero
                for l in range(0, oh_lo * OW):
                    row[l] = 0
                for l in range(oh_hi * OW, OH * OW):
                    row[l] = 0
                n_in = ow_hi - ow_lo
                iw0 = ow_lo * sw - pw + j             # input column of output column ow_lo
                for oh in range(oh_lo, oh_hi):
                    out = row[oh * OW:(oh + 1) * OW]  # output row oh of this tap
                    # input row oh*sh - ph + i, columns iw0, iw0 + sw, ... (slices: the indices are
                    # known non-negative, so Numba emits no wrap-around checks and the copy vectorizes)
                    src = plane[oh * sh - ph + i, iw0:iw0 + (n_in - 1) * sw + 1:sw]
                    for ow in range(ow_lo):           # left padding
                        out[ow] = 0
                    dst = out[ow_lo:ow_hi]
                    for t in range(n_in):
                        dst[t] = src[t]
                    for ow in range(ow_hi, OW):       # right padding
                        out[ow] = 0


def im2col(x, kh, kw, sh, sw, ph, pw):
    """Unfold (N,C,H,W) image patches into columns (N, C*kh*kw, OH*OW); equals ``im2col_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    cols = np.empty((N, C * kh * kw, OH * OW), dtype=x.dtype)
    _im2col(x, cols, kh, kw, sh, sw, ph, pw, OH, OW)
    return cols


@njit(cache=True, parallel=True)
def _col2im(cols, gx, kh, kw, sh, sw, ph, pw, OH, OW):
    N, C, H, W = gx.shape
    for nc in prange(N * C):                       # task owns gx[n, c]: no write races
        n = nc // C
        c = nc - n * C
        plane = gx[n, c]
        plane[:, :] = 0
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(ph, i, sh, H, OH)
            for j in range(kw):
                ow_lo, ow_hi = _valid_range(pw, j, sw, W, OW)
                row = cols[n, (c * kh + i) * kw + j]
                n_in = ow_hi - ow_lo
                iw0 = ow_lo * sw - pw + j
                for oh in range(oh_lo, oh_hi):
                    # columns ow_lo .. ow_hi-1 of output row oh land on input columns iw0, iw0 + sw, ...;
                    # the entries that fall in the padding are dropped
                    dst = plane[oh * sh - ph + i, iw0:iw0 + (n_in - 1) * sw + 1:sw]
                    src = row[oh * OW + ow_lo:oh * OW + ow_hi]
                    for t in range(n_in):
                        dst[t] += src[t]


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Fold columns back into (N,C,H,W), summing overlapping patches; equals ``col2im_reference``."""
    cols = np.ascontiguousarray(cols)
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    if cols.shape != (N, C * kh * kw, OH * OW):
        raise ValueError(f"col2im: expected cols of shape {(N, C * kh * kw, OH * OW)} for x_shape "
                         f"{tuple(x_shape)}, got {cols.shape}")
    gx = np.empty((N, C, H, W), dtype=cols.dtype)
    _col2im(cols, gx, kh, kw, sh, sw, ph, pw, OH, OW)
    return gx
