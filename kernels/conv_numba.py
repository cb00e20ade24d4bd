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

from ._numba_threads import threads_for


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
    with threads_for(cols.size):
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
    with threads_for(cols.size):
        _col2im(cols, gx, kh, kw, sh, sw, ph, pw, OH, OW)
    return gx


# --------------------------------------------------------------------------- batched GEMM layout
#
# conv2d does one GEMM per group over the whole batch, with the samples side by side
# along the columns: cols as (G, K, N*L), K = (C/G)*kh*kw.  Row R = g*K + k of the
# contract's (N, C*kh*kw, L) cols of sample n is then cols_b[g, k, n*L:(n+1)*L], so the
# same two kernels above write / read that layout directly through a strided view,
# (G*K, N, L) transposed to (N, G*K, L), instead of im2col followed by a transposing copy.


def im2col_batched(x, kh, kw, sh, sw, ph, pw, groups):
    """im2col written straight into conv2d's GEMM layout (G, K, N*L).

    Equals ``im2col_reference(x, ...).reshape(N, G, K, L).transpose(1, 2, 0, 3).reshape(G, K, N*L)``.
    """
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    L, CK = OH * OW, C * kh * kw
    out = np.empty((groups, CK // groups, N * L), dtype=x.dtype)
    with threads_for(out.size):
        _im2col(x, out.reshape(CK, N, L).transpose(1, 0, 2), kh, kw, sh, sw, ph, pw, OH, OW)
    return out


def col2im_batched(gcols, x_shape, kh, kw, sh, sw, ph, pw):
    """col2im reading conv2d's GEMM layout (G, K, N*L) directly.

    Equals ``col2im_reference(gcols.reshape(G, K, N, L).transpose(2, 0, 1, 3).reshape(N, G*K, L), ...)``.
    """
    gcols = np.ascontiguousarray(gcols)
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    L, CK = OH * OW, C * kh * kw
    if gcols.size != CK * N * L or gcols.ndim != 3 or gcols.shape[2] != N * L:
        raise ValueError(f"col2im_batched: expected gcols of shape (G, {CK}/G, {N * L}) for x_shape "
                         f"{tuple(x_shape)}, got {gcols.shape}")
    gx = np.empty((N, C, H, W), dtype=gcols.dtype)
    with threads_for(gcols.size):
        _col2im(gcols.reshape(CK, N, L).transpose(1, 0, 2), gx, kh, kw, sh, sw, ph, pw, OH, OW)
    return gx


@njit(cache=True, parallel=True)
def _swap01(a, out):
    A, B, L = a.shape
    for b in prange(B):                            # out[b, a, :] = a[a, b, :]: rows of L stay whole
        for i in range(A):
            src = a[i, b]
            dst = out[b, i]
            for t in range(L):
                dst[t] = src[t]


def swap01(a):
    """``ascontiguousarray(a.transpose(1, 0, 2))`` for a 3-d array, copied in parallel row blocks.

    conv2d's layout shuffles between its GEMM's (O, N, L) and NCHW's (N, O, L).
    """
    a = np.ascontiguousarray(a)
    out = np.empty((a.shape[1], a.shape[0], a.shape[2]), dtype=a.dtype)
    with threads_for(a.size):
        _swap01(a, out)
    return out
