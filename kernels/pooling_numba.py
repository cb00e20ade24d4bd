"""CPU kernels (Numba) for the ``pooling`` family: max-pool forward with arg-max, and its backward.

Each must equal its NumPy reference in ``tinyconv/functional/pooling.py``
(``max_pool2d_forward_reference``, ``max_pool2d_backward_reference``) exactly:
forward only compares and copies, backward adds the same gradients per input pixel
in the same (output scan) order.

Contract::

    max_pool2d_forward(x, kh, kw, sh, sw, ph, pw) -> (y, argmax)
        x (N,C,H,W); y (N,C,OH,OW); argmax int64 shaped like y, holding the flat index
        h*W + w of the winner inside its (n, c) input plane (PyTorch's return_indices).
        Padding acts as -inf (it never wins); ties go to the first element in scan
        order (i, then j); a NaN always takes over, so the last NaN in scan order wins (as
        in PyTorch); a window of only -inf reports its first pixel inside the image.
    max_pool2d_backward(gy, argmax, x_shape) -> gx   (scatter-add gy to argmax)

One (n, c) plane per parallel task; windows are clipped to the image, so no padded
copy is made.  No fastmath here: it would let the compiler reorder or drop the NaN
and tie logic of the comparisons.
"""
import numpy as np
from numba import njit, prange

from ._numba_threads import threads_for


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


@njit(cache=True, parallel=True)
def _max_pool_fwd(x, y, arg, kh, kw, sh, sw, ph, pw):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    # Output columns [ow_a, ow_b) have their whole window inside the image columns
    # (ow*sw - pw >= 0 and ow*sw - pw + kw <= W); the few border columns take a scalar path.
    ow_a = min((pw + sw - 1) // sw, OW)
    ow_b = max(min((W - kw + pw) // sw + 1, OW), ow_a) if W + pw >= kw else ow_a
    n_in = ow_b - ow_a
    Wq = (W + sw - 1) // sw
    for nc in prange(N * C):                       # one (n, c) plane per task
        n = nc // C
        c = nc - n * C
        plane = x[n, c]
        # De-interleave the plane by column phase: phase[r, h, m] = plane[h, m*sw + r].  Then
        # tap j of output column ow, input column w = ow*sw - pw + j = (ow + dq)*sw + dr with
        # dq, dr = divmod(j - pw, sw), is phase[dr, h, ow + dq]: consecutive ow read consecutive
        # memory, so the compare loops below vectorize.
        phase = np.empty((sw, H, Wq), dtype=x.dtype)
        for h in range(H):
            row = plane[h]
            for r in range(sw):
                dst = phase[r, h]
                for m in range((W - r + sw - 1) // sw):    # columns w = r, r + sw, ... < W
                    dst[m] = row[m * sw + r]
        best = np.empty(OW, dtype=x.dtype)         # running max and its flat index, per column
        where = np.empty(OW, dtype=np.int64)
        for oh in range(OH):
            h0 = oh * sh - ph                      # window rows h0 .. h0+kh-1, clipped to [0, H)
            h_lo = max(h0, 0)
            h_hi = min(h0 + kh, H)
            # border columns: window clipped to the image (padding is -inf, never wins)
            for t in range(OW - n_in):             # ow = 0 .. ow_a-1, then ow_b .. OW-1
                ow = t if t < ow_a else ow_b + (t - ow_a)
                w_lo = max(ow * sw - pw, 0)
                w_hi = min(ow * sw - pw + kw, W)
                b = plane[h_lo, w_lo]
                bi = h_lo * W + w_lo
                for h in range(h_lo, h_hi):        # scan order i then j
                    for w in range(w_lo, w_hi):
                        v = plane[h, w]
                        if (v > b) | (v != v):
                            b = v
                            bi = h * W + w
                best[ow] = b
                where[ow] = bi
            # interior columns: tap by tap in scan order (i, then j), each a loop over ow
            bb = best[ow_a:ow_b]
            ww = where[ow_a:ow_b]
            for h in range(h_lo, h_hi):
                for j in range(kw):
                    d = j - pw
                    dq = d // sw                   # floor division: d may be negative
                    dr = d - dq * sw
                    src = phase[dr, h, ow_a + dq:ow_a + dq + n_in]
                    base = h * W + ow_a * sw + d   # flat index of src[0]; src[k] is base + k*sw
                    if h == h_lo and j == 0:       # the first tap starts the running max
                        for k in range(n_in):
                            bb[k] = src[k]
                            ww[k] = base + k * sw
                    else:
                        for k in range(n_in):
                            v = src[k]
                            b = bb[k]
                            # strictly greater: the first maximum wins ties; a NaN always takes
                            # over (as PyTorch).  `|` rather than `or`: no branch, so it vectorizes
                            take = (v > b) | (v != v)
                            bb[k] = v if take else b
                            ww[k] = base + k * sw if take else ww[k]
            y[n, c, oh, :] = best
            arg[n, c, oh, :] = where


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """Max over kh x kw windows, and where each max came from; equals ``max_pool2d_forward_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    with threads_for(y.size * kh * kw):
        _max_pool_fwd(x, y, argmax, kh, kw, sh, sw, ph, pw)
    return y, argmax


@njit(cache=True, parallel=True)
def _max_pool_bwd(gy, arg, gx):
    N, C, OH, OW = gy.shape
    HW = gx.shape[2] * gx.shape[3]
    for nc in prange(N * C):                       # task owns gx[n, c]: no write races
        n = nc // C
        c = nc - n * C
        flat = gx[n, c].reshape(HW)                # view: index h*W + w, as argmax stores it
        flat[:] = 0
        g = gy[n, c]
        a = arg[n, c]
        for oh in range(OH):                       # output scan order, as np.add.at in the reference
            for ow in range(OW):
                flat[a[oh, ow]] += g[oh, ow]


def max_pool2d_backward(gy, argmax, x_shape):
    """Scatter-add each output gradient to its arg-max input; equals ``max_pool2d_backward_reference``."""
    gy = np.ascontiguousarray(gy)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    gx = np.empty(tuple(int(s) for s in x_shape), dtype=gy.dtype)
    with threads_for(gx.size):
        _max_pool_bwd(gy, argmax, gx)
    return gx
