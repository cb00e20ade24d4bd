"""CPU kernels (Numba) for the ``lrn`` family: local response normalization across channels.

Each must equal its NumPy reference in ``tinyconv/functional/lrn.py``
(``lrn_forward_reference``, ``lrn_backward_reference``) up to float rounding: the
window sums here are running sums (add the channel entering the window, subtract
the one leaving it), accumulated in float64 so that subtracting cannot cancel away
the small terms, where the reference sums each window afresh.  What remains of a
channel that left is float64 rounding of the largest sum seen along the run (about
1e-16 of it): invisible next to k > 0, and below float32 rounding unless one channel's
square is some 1e9 times its neighbours' and k = 0.

Non-finite inputs keep the reference's (IEEE) result.  A running sum cannot subtract
an Inf or a NaN away again (inf - inf is NaN, and NaN stays), so wherever the running
sum is not finite it is summed afresh over its window: Inf while an Inf is in the window,
NaN while a NaN is, and exact again once they have left.  For that the kernels'
fastmath flags leave out ``nnan`` and ``ninf`` (which would let LLVM assume no NaN and
no Inf, and drop the check), and ``arcp``/``afn`` (which turn ``1/sqrt(s)`` into an
approximate reciprocal square root whose refinement step makes NaN of s = Inf);
reassociation and contraction stay.

PyTorch's definition (zero padding at the channel ends)::

    window(c) = channels c - size//2 ... c + (size-1)//2, clipped to [0, C)
    scale_c   = k + alpha/size * sum_{j in window(c)} x_j^2
    y_c       = x_c * scale_c^-beta

    gx_c = gy_c * scale_c^-beta
           - (2*alpha*beta/size) * x_c * sum_{j : c in window(j)} gy_j * y_j / scale_j
    where c in window(j)  <=>  j in c - (size-1)//2 ... c + size//2

Parallel tasks are (image n, a run of pixels); each task walks the channels once,
keeping one running sum per pixel of its run, so there are no padded copies and
every inner loop reads one channel's contiguous run of pixels.  Some fastmath is
allowed: reassociating these additions and multiplies only changes float rounding.
"""
import numpy as np
from numba import njit, prange

from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for

_RUN = 512   # pixels per task: a few KiB of running sums that stay in L1
#: fastmath that keeps Inf and NaN their IEEE meaning (see the module doc)
_FAST = {"nsz", "contract", "reassoc"}


@njit(cache=True, inline="always", fastmath=_FAST)
def _times_pow_neg(v, s, beta, out):
    """out[p] = v[p] * s[p] ** -beta over one run of pixels.

    The branch on beta sits outside the loops so each loop vectorizes.  AlexNet's
    beta = 0.75 takes square roots instead of a scalar pow call:
    s^-0.75 = r * sqrt(r) with r = 1/sqrt(s).
    """
    m = out.shape[0]
    one = s.dtype.type(1)              # 1 in s's dtype: float32 math stays float32 (twice the lanes)
    if beta == 0.75:
        for p in range(m):
            r = one / np.sqrt(s[p])
            out[p] = v[p] * (r * np.sqrt(r))
    elif beta == 0.5:
        for p in range(m):
            out[p] = v[p] / np.sqrt(s[p])
    elif beta == 1.0:
        for p in range(m):
            out[p] = v[p] / s[p]
    else:
        for p in range(m):
            out[p] = v[p] * np.exp(-beta * np.log(s[p]))


@njit(cache=True, inline="always", fastmath=_FAST)
def _add_squares(acc, src, sign):
    """acc[p] += sign * src[p]^2, squared in float64."""
    for p in range(acc.shape[0]):
        v = np.float64(src[p])
        acc[p] += sign * (v * v)


@njit(cache=True, inline="always", fastmath=_FAST)
def _refresh_squares(acc, x, n, lo, hi, p0):
    """acc[p] = sum of x[n, lo..hi, p0 + p]^2 afresh wherever the running acc[p] is not finite."""
    for p in range(acc.shape[0]):
        if not np.isfinite(acc[p]):
            t = 0.0
            for j in range(lo, hi + 1):
                v = np.float64(x[n, j, p0 + p])
                t += v * v
            acc[p] = t


@njit(cache=True, parallel=True, fastmath=_FAST)
def _lrn_fwd(x, y, scale, size, alpha, beta, k):
    N, C, HW = x.shape                 # x viewed as (N, C, H*W): pixel p = h*W + w
    before = size // 2                 # channels below c in its window
    after = (size - 1) // 2            # channels above c in its window
    a = alpha / size
    runs = (HW + _RUN - 1) // _RUN
    for task in prange(N * runs):      # task = (image n, pixels p0 .. p1-1)
        n = task // runs
        p0 = (task - n * runs) * _RUN
        p1 = min(p0 + _RUN, HW)
        acc = np.zeros(p1 - p0, dtype=np.float64)    # sum of x_j^2 over the window of c
        # prime with channels 0 .. after-1; channel `after` enters at c = 0 below
        for j in range(min(after, C)):
            _add_squares(acc, x[n, j, p0:p1], 1.0)
        for c in range(C):
            if c + after < C:                        # channel entering the window of c
                _add_squares(acc, x[n, c + after, p0:p1], 1.0)
            if c - before - 1 >= 0:                  # channel that left it
                _add_squares(acc, x[n, c - before - 1, p0:p1], -1.0)
            _refresh_squares(acc, x, n, max(c - before, 0), min(c + after, C - 1), p0)
            sc = scale[n, c, p0:p1]
            for p in range(p1 - p0):
                sc[p] = k + a * acc[p]
            _times_pow_neg(x[n, c, p0:p1], sc, beta, y[n, c, p0:p1])   # y = x * scale^-beta


@float16_via_float32
def lrn_forward(x, size, alpha, beta, k):
    """LRN across channels of (N,C,H,W): returns (y, scale); equals ``lrn_forward_reference``."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    y = np.empty_like(x)
    scale = np.empty_like(x)
    with threads_for(x.size):
        _lrn_fwd(x.reshape(N, C, H * W), y.reshape(N, C, H * W), scale.reshape(N, C, H * W),
                 int(size), float(alpha), float(beta), float(k))
    return y, scale


@njit(cache=True, parallel=True, fastmath=_FAST)
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
        # t_j = gy_j * y_j / scale_j of the channels in the window, kept in a ring of `size`
        # rows (row j % size) so the channel leaving the window is subtracted exactly as added
        ring = np.zeros((size, m), dtype=np.float64)
        acc = np.zeros(m, dtype=np.float64)
        for e in range(-1, C):
            # e = -1 primes the window with channels 0 .. hi-1; e = c then handles channel c
            enter_lo = 0 if e < 0 else e + hi        # channels entering at this step
            enter_hi = min(hi if e < 0 else e + hi + 1, C)
            if e >= 0 and e - lo - 1 >= 0:           # channel leaving: before its row is reused
                r = ring[(e - lo - 1) % size]
                for p in range(m):
                    acc[p] -= r[p]
            for j in range(enter_lo, enter_hi):
                r = ring[j % size]
                g, yy, sc = gy[n, j, p0:p1], y[n, j, p0:p1], scale[n, j, p0:p1]
                for p in range(m):
                    t = np.float64(g[p]) * yy[p] / sc[p]
                    r[p] = t
                    acc[p] += t
            if e < 0:
                continue
            j_lo, j_hi = max(e - lo, 0), min(e + hi, C - 1)
            for p in range(m):                       # Inf/NaN cannot be subtracted: sum afresh
                if not np.isfinite(acc[p]):
                    t = 0.0
                    for j in range(j_lo, j_hi + 1):
                        t += ring[j % size, p]
                    acc[p] = t
            out, xs = gx[n, e, p0:p1], x[n, e, p0:p1]
            _times_pow_neg(gy[n, e, p0:p1], scale[n, e, p0:p1], beta, out)   # gy * scale^-beta
            for p in range(m):
                out[p] -= coef * xs[p] * acc[p]


@float16_via_float32
def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """Gradient of LRN with respect to x; equals ``lrn_backward_reference``."""
    gy, x, y, scale = (np.ascontiguousarray(a) for a in (gy, x, y, scale))
    N, C, H, W = x.shape
    gx = np.empty_like(x)
    flat = (N, C, H * W)
    with threads_for(x.size):
        _lrn_bwd(gy.reshape(flat), x.reshape(flat), y.reshape(flat), scale.reshape(flat), gx.reshape(flat),
                 int(size), float(alpha), float(beta))
    return gx
