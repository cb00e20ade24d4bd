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
        order (i, then j); a NaN in the window wins (as in PyTorch and np.max).
    max_pool2d_backward(gy, argmax, x_shape) -> gx   (scatter-add gy to argmax)

One (n, c) plane per parallel task; windows are clipped to the image, so no padded
copy is made.  No fastmath here: it would let the compiler reorder or drop the NaN
and tie logic of the comparisons.
"""
import numpy as np
from numba import njit, prange


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


@njit(cache=True, parallel=True)
def _max_pool_fwd(x, y, arg, kh, kw, sh, sw, ph, pw):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):                       # one (n, c) plane per task
        n = nc // C
        c = nc - n * C
        plane = x[n, c]
        for oh in range(OH):
            h0 = oh * sh - ph                      # window rows h0 .. h0+kh-1, clipped to [0, H)
            h_lo = max(h0, 0)
            h_hi = min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                w_lo = max(w0, 0)
                w_hi = min(w0 + kw, W)
                best = -np.inf
                best_idx = -1
                for h in range(h_lo, h_hi):        # scan order i then j, as the reference
                    for w in range(w_lo, w_hi):
                        v = plane[h, w]
                        # strictly greater: the first maximum wins ties; a NaN wins and stays
                        if v > best or (v != v and best == best) or best_idx < 0:
                            best = v
                            best_idx = h * W + w
                y[n, c, oh, ow] = best
                arg[n, c, oh, ow] = best_idx


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """Max over kh x kw windows, and where each max came from; equals ``max_pool2d_forward_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
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
    _max_pool_bwd(gy, argmax, gx)
    return gx
