"""CPU kernels (Numba) for the ``conv`` family: im2col and its adjoint col2im.

Each must equal its NumPy reference in ``tinyconv/functional/conv.py``
(``im2col_reference``, ``col2im_reference``) exactly: both only copy or add the
same numbers, and col2im adds the overlapping patches in the same order per pixel
up to float rounding.  The GEMMs around them stay in NumPy's BLAS.

Layout (the kernel contract)::

    x     (N, C, H, W)                 C-contiguous, float32 or float64
    cols  (N, C*kh*kw, OH*OW)          row r = (c*kh + i)*kw + j, column l = oh*OW + ow
    cols[n, r, l] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   (0 outside the image)
    OH = (H + 2*ph - dh*(kh-1) - 1)//sh + 1,  OW likewise
    (dh, dw) is the dilation, the trailing optional arguments of every kernel (default 1).

A parallel task of col2im owns whole image planes of gx, so its scatter-add needs no
atomics; a task of im2col writes one contiguous block of ``cols``.  Padding is never
materialised: for each kernel tap (i, j) the range of output columns whose input
column lies inside the image is computed once, and only the borders outside it are
zero-filled.

This module imports nothing of tinyconv; ``tinyconv.backend.kernel`` finds its
functions by name.
"""
import numpy as np
from numba import njit, prange, uintp

from ._geometry import batched_geometry, check_out, col2im_geometry, out_size
from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for



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
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, batched):
    """cols[n, r, l] <- x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], r = (c*kh + i)*kw + j, l = oh*OW + ow.

    Tap (i, j) sits at row offset i*dh and column offset j*dw inside the padded window,
    so every index below uses those offsets where an undilated im2col uses i and j.

    ``batched=False``: cols is the contract's (N, C*kh*kw, L); row r of sample n starts
    at flat offset (n*C*kh*kw + r)*L, and a task is one (n, c, i): its kw rows adjoin.
    ``batched=True``: cols is conv2d's (C*kh*kw, N, L) GEMM layout; row r of sample n
    starts at (r*N + n)*L, and a task is one (c, i) for every n, so that it too writes
    one contiguous block.  Indices are flat and cast to uintp: Numba then emits no
    negative-index wrap-around test, and the row copies vectorize.
    """
    N, C, H, W = x.shape
    L = OH * OW
    xf = x.reshape(x.size)
    cf = cols.reshape(cols.size)
    n_tasks = C * kh if batched else N * C * kh
    for task in prange(n_tasks):
        rest = task % (C * kh)
        c = rest // kh
        i = rest - c * kh
        n_lo = 0 if batched else task // (C * kh)
        n_hi = N if batched else n_lo + 1
        oh_lo, oh_hi = _valid_range(ph, i * dh, sh, H, OH)       # outputs whose tap row is inside
        for j in range(kw):
            ow_lo, ow_hi = _valid_range(pw, j * dw, sw, W, OW)
            r = (c * kh + i) * kw + j
            for n in range(n_lo, n_hi):
                row = (r * N + n) * L if batched else (n * C * kh * kw + r) * L   # cols[n, r, 0]
                plane = (n * C + c) * H * W                                      # x[n, c, 0, 0]
                # output rows whose input row oh*sh - ph + i falls in the padding: all zero
                for t in range(oh_lo * OW):
                    cf[uintp(row + t)] = 0
                for t in range(oh_hi * OW, L):
                    cf[uintp(row + t)] = 0
                for oh in range(oh_lo, oh_hi):
                    out = row + oh * OW                                          # cols[n, r, oh*OW]
                    src = plane + (oh * sh - ph + i * dh) * W + ow_lo * sw - pw + j * dw   # x at ow_lo
                    for ow in range(ow_lo):                                      # left padding
                        cf[uintp(out + ow)] = 0
                    for ow in range(ow_hi, OW):                                  # right padding
                        cf[uintp(out + ow)] = 0
                    out += ow_lo
                    if sw == 1:                                                  # a plain copy
                        for t in range(ow_hi - ow_lo):
                            cf[uintp(out + t)] = xf[uintp(src + t)]
                    else:
                        for t in range(ow_hi - ow_lo):
                            cf[uintp(out + t)] = xf[uintp(src + t * sw)]


@float16_via_float32
def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """Unfold (N,C,H,W) image patches into columns (N, C*kh*kw, OH*OW); equals ``im2col_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    L = OH * OW
    cols = np.empty((N, C * kh * kw, L), dtype=x.dtype)
    with threads_for(cols.size):
        _im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, False)
    return cols


@njit(cache=True, parallel=True)
def _col2im(cols, gx, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, batched):
    """gx[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] += cols[n, r, l]: the adjoint of :func:`_im2col`.

    Same two layouts.  A task owns whole planes of gx, so no two tasks add to one pixel:
    one (n, c) plane, or (batched) channel c of every sample.  Each pixel receives its
    taps in order (i, j), as in the reference; entries that fall in the padding are dropped.
    """
    N, C, H, W = gx.shape
    L = OH * OW
    gf = gx.reshape(gx.size)
    cf = cols.reshape(cols.size)
    n_tasks = C if batched else N * C
    for task in prange(n_tasks):
        c = task % C
        n_lo = 0 if batched else task // C
        n_hi = N if batched else n_lo + 1
        for n in range(n_lo, n_hi):
            plane = (n * C + c) * H * W
            for t in range(H * W):
                gf[uintp(plane + t)] = 0
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(ph, i * dh, sh, H, OH)   # tap offsets i*dh, j*dw, as in _im2col
            for j in range(kw):
                ow_lo, ow_hi = _valid_range(pw, j * dw, sw, W, OW)
                r = (c * kh + i) * kw + j
                for n in range(n_lo, n_hi):
                    row = (r * N + n) * L if batched else (n * C * kh * kw + r) * L
                    plane = (n * C + c) * H * W
                    for oh in range(oh_lo, oh_hi):
                        src = row + oh * OW + ow_lo
                        dst = plane + (oh * sh - ph + i * dh) * W + ow_lo * sw - pw + j * dw
                        if sw == 1:
                            for t in range(ow_hi - ow_lo):
                                gf[uintp(dst + t)] += cf[uintp(src + t)]
                        else:
                            for t in range(ow_hi - ow_lo):
                                gf[uintp(dst + t * sw)] += cf[uintp(src + t)]


@float16_via_float32
def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """Fold columns back into (N,C,H,W), summing overlapping patches; equals ``col2im_reference``."""
    cols = np.ascontiguousarray(cols)
    N, C, H, W, OH, OW = col2im_geometry(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    gx = np.empty((N, C, H, W), dtype=cols.dtype)
    with threads_for(cols.size):
        _col2im(cols, gx, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, False)
    return gx


# --------------------------------------------------------------------------- batched GEMM layout
#
# conv2d does one GEMM per group over the whole batch, with the samples side by side
# along the columns: cols as (G, K, N*L), K = (C/G)*kh*kw.  Row R = g*K + k of the
# contract's (N, C*kh*kw, L) cols of sample n is then cols_b[g, k, n*L:(n+1)*L], at flat
# offset (R*N + n)*L, so the same two kernels above write / read that layout directly
# (``batched=True``) instead of an im2col followed by a transposing copy.


@float16_via_float32
def im2col_batched(x, kh, kw, sh, sw, ph, pw, groups, out=None, dh=1, dw=1):
    """im2col written straight into conv2d's GEMM layout (G, K, N*L) (into ``out`` if given).

    Equals ``im2col_reference(x, ...).reshape(N, G, K, L).transpose(1, 2, 0, 3).reshape(G, K, N*L)``.
    """
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    shape = (groups, C * kh * kw // groups, N * OH * OW)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    check_out(out, shape, x.dtype, "im2col_batched")
    with threads_for(out.size):
        _im2col(x, out, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, True)
    return out


@float16_via_float32
def col2im_batched(gcols, x_shape, kh, kw, sh, sw, ph, pw, out=None, dh=1, dw=1):
    """col2im reading conv2d's GEMM layout (G, K, N*L) directly; writes gx into ``out`` if given.

    Equals ``col2im_reference(gcols.reshape(G, K, N, L).transpose(2, 0, 1, 3).reshape(N, G*K, L), ...)``.
    """
    gcols = np.ascontiguousarray(gcols)
    N, C, H, W, OH, OW = batched_geometry(gcols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    if out is None:
        out = np.empty((N, C, H, W), dtype=gcols.dtype)
    check_out(out, (N, C, H, W), gcols.dtype, "col2im_batched")
    with threads_for(gcols.size):
        _col2im(gcols, out, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, True)
    return out
