"""CPU kernels (Numba) for the ``pooling`` family: max-pool forward with arg-max, and its backward.

Each must equal its NumPy reference in ``tinyconv/functional/pooling.py``
(``max_pool2d_forward_reference``, ``max_pool2d_backward_reference``) exactly:
forward only compares and copies, backward adds the same gradients per input pixel
in the same (output scan) order.

Contract::

    max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1) -> (y, argmax)
        x (N,C,H,W); y (N,C,OH,OW); argmax int64 shaped like y, holding the flat index
        h*W + w of the winner inside its (n, c) input plane (PyTorch's return_indices).
        Tap (i, j) of output (oh, ow) is pixel (oh*sh - ph + i*dh, ow*sw - pw + j*dw)
        (dh, dw: the dilation).  Padding acts as -inf (it never wins); ties go to the
        first element in scan order (i, then j); a NaN always takes over, so the last NaN
        in scan order wins (as in PyTorch); a window of only -inf reports its first tap
        inside the image.
    max_pool2d_backward(gy, argmax, x_shape, kernel_size, stride, padding, dilation) -> gx
                                                     (scatter-add gy to argmax)

One (n, c) plane per parallel task.  Forward copies the plane once into a padded,
phase-split buffer (see ``_max_pool_fwd``) so that every kernel tap becomes one long
vectorized compare-select over all outputs of the plane.  No fastmath here: it would
let the compiler reorder or drop the NaN and tie logic of the comparisons.
"""
import numpy as np
from numba import njit, prange, uintp

from ._geometry import out_size
from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for
from .conv_numba import _valid_range      # the outputs whose tap lands inside, shared with im2col

#: parallel tasks of the max-pool forward, each a run of planes sharing its scratch buffers
_BLOCKS = 64


@njit(cache=True, inline="always")
def _first_tap(start, d):
    """The first tap start + m*d >= 0 of a window starting at ``start`` (the op guarantees it is
    inside the image)."""
    if start < 0:
        start += (-start + d - 1) // d * d      # skip the taps that fall in the top / left padding
    return start


@njit(cache=True, parallel=True)
def _max_pool_fwd(x, y, arg, kh, kw, sh, sw, ph, pw, dh, dw, index):
    """Every output of a plane at once, one kernel tap at a time, over long contiguous runs.

    Each plane is first copied into a padded, phase-split buffer
    ``P[ri, dr, hq, m] = xpad[hq*sh + ri, m*sw + dr]`` (xpad: the plane with -inf around it),
    Hq x Wq per phase, Wq = OW + (kw-1)*dw//sw.  Tap (i, j) of output (oh, ow) reads xpad
    row oh*sh + i*dh, column ow*sw + j*dw, which with (qi, ri) = divmod(i*dh, sh) and
    (dq, dr) = divmod(j*dw, sw) is ``P[ri, dr, oh + qi, ow + dq]``: over all (oh, ow), laid out as
    t = oh*Wq + ow, that is the contiguous run ``P[ri, dr].flat[qi*Wq + dq + t]``.  So
    each tap is one vectorized compare-select loop over OH*Wq elements; the columns
    ow >= OW of that layout are computed and dropped.

    As in the reference, each output starts at -inf located at its window's first tap
    inside the image, and a tap replaces it when strictly greater or NaN: the first
    maximum wins ties, the last NaN wins, padding (-inf) never wins.

    Speed: the running (max, where) pair goes back and forth between two buffers, each
    tap reading one and writing the other.  Updated in place, LLVM turns the
    ``best[t] = v if take else best[t]`` into a masked store, which AMD's cores run
    microcoded, several times slower than the whole loop otherwise.  ``where`` holds
    flat indices in ``index``'s dtype (the caller passes int32 whenever a plane has
    fewer than 2**31 pixels): with float32 values that keeps both selects 8 lanes wide.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    Wq = OW + (kw - 1) * dw // sw
    Hq = OH + (kh - 1) * dh // sh + 1     # one spare row: the dropped columns of the last row read into it
    T = OH * Wq
    # per output t = oh*Wq + ow: the flat input index of its window's top-left tap, and of
    # its first tap inside the image (the answer for a window of only -inf)
    corner = np.empty(T, dtype=index.dtype)
    first = np.empty(T, dtype=index.dtype)
    for oh in range(OH):
        for ow in range(Wq):
            corner[oh * Wq + ow] = (oh * sh - ph) * W + ow * sw - pw
            first[oh * Wq + ow] = _first_tap(oh * sh - ph, dh) * W + _first_tap(ow * sw - pw, dw)
    ranges = np.empty((sw + 1, 2), dtype=np.int64)    # for _split_row
    ranges[sw, 0], ranges[sw, 1] = 0, Wq
    for dr in range(sw):
        lo, hi = _valid_range(pw, dr, sw, W, Wq)
        ranges[dr, 0], ranges[dr, 1] = lo, hi
        ranges[sw, 0], ranges[sw, 1] = max(ranges[sw, 0], lo), min(ranges[sw, 1], hi)
    ranges[sw, 1] = max(ranges[sw, 0], ranges[sw, 1])
    HW = H * W
    L = OH * OW
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    af = arg.reshape(arg.size)
    blocks = min(N * C, _BLOCKS)
    for blk in prange(blocks):                     # a run of whole (n, c) planes per task
        P = np.empty((sh, sw, Hq * Wq), dtype=x.dtype)
        Pf = P.reshape(P.size)
        best, best2 = np.empty(T, dtype=x.dtype), np.empty(T, dtype=x.dtype)
        where, where2 = np.empty(T, dtype=index.dtype), np.empty(T, dtype=index.dtype)
        for nc in range(blk * N * C // blocks, (blk + 1) * N * C // blocks):
            base = nc * HW                         # x[n, c, 0, 0]
            for ri in range(sh):                   # P[ri, dr, hq*Wq + m] = xpad[hq*sh + ri, m*sw + dr]
                for hq in range(Hq):
                    h = hq * sh + ri - ph
                    at = ri * sw * Hq * Wq + hq * Wq   # P[ri, 0, hq*Wq]
                    if h < 0 or h >= H:
                        for dr in range(sw):
                            for m in range(Wq):
                                Pf[uintp(at + dr * Hq * Wq + m)] = -np.inf
                    else:
                        _split_row(xf, base + h * W, sw, pw, Wq, ranges, Pf, at, Hq * Wq)
            best[:] = -np.inf
            where[:] = first
            for i in range(kh):
                qi = i * dh // sh                  # tap row i*dh = qi*sh + ri
                ri = i * dh - qi * sh
                for j in range(kw):
                    dq = j * dw // sw              # tap column j*dw = dq*sw + dr
                    dr = j * dw - dq * sw
                    src = P[ri, dr, qi * Wq + dq:qi * Wq + dq + T]
                    shift = i * dh * W + j * dw    # flat index of tap (i, j) = corner + i*dh*W + j*dw
                    for t in range(T):
                        v = src[t]
                        b = best[t]
                        # `|` rather than `or`: no branch, so the loop vectorizes
                        take = (v > b) | (v != v)
                        best2[t] = v if take else b
                        where2[t] = corner[t] + shift if take else where[t]
                    best, best2 = best2, best
                    where, where2 = where2, where
            for oh in range(OH):
                out = nc * L + oh * OW             # y[n, c, oh, 0]
                for ow in range(OW):
                    yf[uintp(out + ow)] = best[uintp(oh * Wq + ow)]
                for ow in range(OW):
                    af[uintp(out + ow)] = where[uintp(oh * Wq + ow)]


@njit(cache=True, inline="always")
def _split_row(xf, row, sw, pw, Wq, ranges, Pf, at, phase):
    """Pf[at + dr*phase + m] = xpad[m*sw + dr] for m < Wq, dr < sw: one image row (xf[row:row + W],
    -inf beyond it) split into its sw column phases, ``phase`` elements apart.

    ``ranges[dr]`` = the m with 0 <= m*sw + dr - pw < W; ``ranges[sw]`` = those valid in every phase.
    """
    lo, hi = ranges[sw, 0], ranges[sw, 1]
    src = row - pw
    if sw == 2:                                    # AlexNet's: both phases in one pass, which vectorizes
        for m in range(lo, hi):
            Pf[uintp(at + m)] = xf[uintp(src + 2 * m)]
            Pf[uintp(at + phase + m)] = xf[uintp(src + 2 * m + 1)]
    else:
        for dr in range(sw):
            for m in range(lo, hi):
                Pf[uintp(at + dr * phase + m)] = xf[uintp(src + m * sw + dr)]
    for dr in range(sw):                           # each phase's padding, and its ends beyond [lo, hi)
        lo_d, hi_d = ranges[dr, 0], ranges[dr, 1]
        dst = at + dr * phase
        for m in range(lo_d):
            Pf[uintp(dst + m)] = -np.inf
        for m in range(lo_d, lo):
            Pf[uintp(dst + m)] = xf[uintp(src + m * sw + dr)]
        for m in range(hi, hi_d):
            Pf[uintp(dst + m)] = xf[uintp(src + m * sw + dr)]
        for m in range(hi_d, Wq):
            Pf[uintp(dst + m)] = -np.inf


@float16_via_float32
def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """Max over kh x kw windows, and where each max came from; equals ``max_pool2d_forward_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    with threads_for(y.size * kh * kw):
        index = np.empty(0, dtype=np.int32 if H * W < 2**31 else np.int64)   # dtype of where
        _max_pool_fwd(x, y, argmax, kh, kw, sh, sw, ph, pw, dh, dw, index)
    return y, argmax


@njit(cache=True, parallel=True)
def _max_pool_bwd(gy, arg, gx):
    N, C, OH, OW = gy.shape
    HW = gx.shape[2] * gx.shape[3]
    L = OH * OW
    gf = gx.reshape(gx.size)
    gyf = gy.reshape(gy.size)
    af = arg.reshape(arg.size)
    for nc in prange(N * C):                       # task owns plane nc of gx: no write races
        plane = nc * HW                            # gx[n, c] starts here; argmax is h*W + w within it
        for t in range(HW):
            gf[uintp(plane + t)] = 0
        for t in range(nc * L, (nc + 1) * L):      # output scan order, as np.add.at in the reference
            gf[uintp(plane + af[t])] += gyf[t]     # uintp: argmax >= 0, no wrap-around test


@float16_via_float32
def max_pool2d_backward(gy, argmax, x_shape, *geometry):
    """Scatter-add each output gradient to its arg-max input; equals ``max_pool2d_backward_reference``.

    The window ``geometry`` (kernel_size, stride, padding, dilation) that the op passes is
    not needed here: one task per plane scatters, with no pixel-to-window search."""
    gy = np.ascontiguousarray(gy)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    gx = np.empty(tuple(int(s) for s in x_shape), dtype=gy.dtype)
    with threads_for(gx.size):
        _max_pool_bwd(gy, argmax, gx)
    return gx
