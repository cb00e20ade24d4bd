"""CPU kernels (Numba) for the ``lrn`` family: local response normalization across channels.

Each must equal its NumPy reference in ``tinyconv/functional/lrn.py``
(``lrn_forward_reference``, ``lrn_backward_reference``) up to float rounding: the
window sums here are running sums (add the channel entering the window, subtract
the one leaving it), accumulated in float64 so that subtracting cannot cancel away
the small terms, where the reference sums each window afresh.

PyTorch's definition (zero padding at the channel ends)::

    window(c) = channels c - size//2 ... c + (size-1)//2, clipped to [0, C)
    scale_c   = k + alpha/size * sum_{j in window(c)} x_j^2
    y_c       = x_c * scale_c^-beta

    gx_c = gy_c * scale_c^-beta
           - (2*alpha*beta/size) * x_c * sum_{j : c in window(j)} gy_j * y_j / scale_j
    where c in window(j)  <=>  j in c - (size-1)//2 ... c + size//2

Parallel tasks are (image n, a run of pixels); each task walks the channels once,
keeping one running sum per pixel of its run, so there are no padded copies and
every inner loop reads one channel's contiguous run of pixels.  fastmath is
allowed: it only reassociates these additions and multiplies (float rounding).
"""
import numpy as np
from numba import njit, prange

_RUN = 512   # pixels per task: a few KiB of running sums that stay in L1


@njit(cache=True, parallel=True, fastmath=True)
def _lrn_fwd(x, y, scale, size, alpha, beta, k):
    N, C, HW = x.shape
    before = size // 2                 # channels below c in its window
    after = (size - 1) // 2            # channels above c in its window
    a = alpha / size
    runs = (HW + _RUN - 1) // _RUN
    for task in prange(N * runs):
        n = task // runs
        p0 = (task - n * runs) * _RUN
        p1 = min(p0 + _RUN, HW)
        acc = np.zeros(p1 - p0, dtype=np.float64)    # sum of x_j^2 over the current window
        xn = x[n]
        # prime the window of channel 0 with channels 0 .. after-1 (channel `after` enters below)
        for j in range(min(after, C)):
            for p in range(p0, p1):
                v = np.float64(xn[j, p])
                acc[p - p0] += v * v
        for c in range(C):
            enter = c + after                        # channel that joins the window of c
            leave = c - before - 1                   # channel that left it
            if enter < C:
                for p in range(p0, p1):
                    v = np.float64(xn[enter, p])
                    acc[p - p0] += v * v
            if leave >= 0:
                for p in range(p0, p1):
                    v = np.float64(xn[leave, p])
                    acc[p - p0] -= v * v
            for p in range(p0, p1):
                s = k + a * acc[p - p0]
                scale[n, c, p] = s
                y[n, c, p] = xn[c, p] * s ** -beta


def lrn_forward(x, size, alpha, beta, k):
    """LRN across channels of (N,C,H,W): returns (y, scale); equals ``lrn_forward_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    y = np.empty_like(x)
    scale = np.empty_like(x)
    _lrn_fwd(x.reshape(N, C, H * W), y.reshape(N, C, H * W), scale.reshape(N, C, H * W),
             int(size), float(alpha), float(beta), float(k))
    return y, scale


@njit(cache=True, parallel=True, fastmath=True)
def _lrn_bwd(gy, x, y, scale, gx, size, alpha, beta):
    N, C, HW = x.shape
    lo = (size - 1) // 2               # c receives from channels j = c - lo ... c + hi
    hi = size // 2
    coef = 2.0 * alpha * beta / size
    runs = (HW + _RUN - 1) // _RUN
    for task in prange(N * runs):
        n = task // runs
        p0 = (task - n * runs) * _RUN
        p1 = min(p0 + _RUN, HW)
        m = p1 - p0
        # t_j = gy_j * y_j / scale_j for the channels in the window, kept in a ring of `size`
        # rows (row j % size) so that the channel leaving the window can be subtracted exactly
        ring = np.zeros((size, m), dtype=np.float64)
        acc = np.zeros(m, dtype=np.float64)
        for j in range(min(hi, C)):                  # prime with channels 0 .. hi-1
            r = ring[j % size]
            for p in range(m):
                t = np.float64(gy[n, j, p0 + p]) * y[n, j, p0 + p] / scale[n, j, p0 + p]
                r[p] = t
                acc[p] += t
        for c in range(C):
            enter = c + hi
            leave = c - lo - 1
            if leave >= 0:                           # subtract before its ring row is reused
                r = ring[leave % size]
                for p in range(m):
                    acc[p] -= r[p]
            if enter < C:
                r = ring[enter % size]
                for p in range(m):
                    t = np.float64(gy[n, enter, p0 + p]) * y[n, enter, p0 + p] / scale[n, enter, p0 + p]
                    r[p] = t
                    acc[p] += t
            for p in range(m):
                q = p0 + p
                gx[n, c, q] = gy[n, c, q] * scale[n, c, q] ** -beta - coef * x[n, c, q] * acc[p]


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """Gradient of LRN with respect to x; equals ``lrn_backward_reference``."""
    gy, x, y, scale = (np.ascontiguousarray(a) for a in (gy, x, y, scale))
    N, C, H, W = x.shape
    gx = np.empty_like(x)
    flat = (N, C, H * W)
    _lrn_bwd(gy.reshape(flat), x.reshape(flat), y.reshape(flat), scale.reshape(flat), gx.reshape(flat),
             int(size), float(alpha), float(beta))
    return gx
