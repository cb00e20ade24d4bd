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

Speed.  The kernels move little more than the bytes they must (forward reads x and
writes y and scale; backward reads gy, x, y, scale and writes gx): per channel one
loop updates the running sum with the channel entering and the one leaving the window
together, and one computes the power.  ``error_model="numpy"`` matters: under Numba's
default (Python's) every float division checks its divisor, to raise ZeroDivisionError,
and a loop with that branch does not vectorize (measured: the power loop ran 4 times
slower).  With NumPy's model 1/0 is Inf, as in
the reference (k = 0 over an all-zero window gives 0 * Inf = NaN there too).
"""
import numpy as np
from numba import njit, prange

from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for

_RUN = 512   # pixels per task: a few KiB of running sums that stay in L1
#: fastmath that keeps Inf and NaN their IEEE meaning (see the module doc)
_FAST = {"nsz", "contract", "reassoc"}


@njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
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


@njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _pow_neg(s, beta, one):
    """s ** -beta for one value s, in its precision (``one`` is 1 in s's dtype); as :func:`_times_pow_neg`."""
    if beta == 0.75:
        r = one / np.sqrt(s)
        return r * np.sqrt(r)
    if beta == 0.5:
        return one / np.sqrt(s)
    if beta == 1.0:
        return one / s
    return np.exp(-beta * np.log(s))


@njit(cache=True, inline="always", error_model="numpy")
def _runs(HW):
    """(number of pixel runs per image, pixels per run): runs of at most _RUN, of near-equal length."""
    runs = (HW + _RUN - 1) // _RUN
    return runs, (HW + runs - 1) // runs


@njit(cache=True, parallel=True, fastmath=_FAST, error_model="numpy")
def _lrn_fwd(x, y, scale, size, alpha, beta, k):
    """One pass per channel: the running sum, scale and y of a run of pixels in one loop.

    The channel entering the window and the one leaving it are read in the same loop
    (a row of zeros stands in for a channel beyond either end), so each channel costs
    one vectorized loop instead of one per step.  ``bad`` collects acc * 0, which is NaN
    exactly when some running sum is not finite; only then does a second, scalar pass
    sum those pixels' windows afresh and redo their scale and y.
    """
    N, C, HW = x.shape                 # x viewed as (N, C, H*W): pixel p = h*W + w
    before = size // 2                 # channels below c in its window
    after = (size - 1) // 2            # channels above c in its window
    a = alpha / size
    runs, run = _runs(HW)
    for task in prange(N * runs):      # task = (image n, pixels p0 .. p1-1)
        n = task // runs
        p0 = (task - n * runs) * run
        p1 = min(p0 + run, HW)
        m = p1 - p0
        acc = np.zeros(m, dtype=np.float64)     # sum of x_j^2 over the window of c
        zero = np.zeros(m, dtype=x.dtype)
        # prime with channels 0 .. after-1; channel `after` enters at c = 0 below
        for j in range(min(after, C)):
            xj = x[n, j, p0:p1]
            for p in range(m):
                v = np.float64(xj[p])
                acc[p] += v * v
        for c in range(C):
            xin = x[n, c + after, p0:p1] if c + after < C else zero              # entering
            xout = x[n, c - before - 1, p0:p1] if c - before - 1 >= 0 else zero  # leaving
            xc, sc, yc = x[n, c, p0:p1], scale[n, c, p0:p1], y[n, c, p0:p1]
            bad = 0.0
            for p in range(m):
                vi = np.float64(xin[p])
                vo = np.float64(xout[p])
                t = acc[p] + vi * vi - vo * vo
                acc[p] = t
                bad += t * 0.0
                sc[p] = k + a * t
            _times_pow_neg(xc, sc, beta, yc)                # y = x * scale^-beta
            if bad != bad:                              # Inf/NaN cannot be subtracted: sum afresh
                lo, hi = max(c - before, 0), min(c + after, C - 1)
                for p in range(m):
                    if not np.isfinite(acc[p]):
                        t = 0.0
                        for j in range(lo, hi + 1):
                            v = np.float64(x[n, j, p0 + p])
                            t += v * v
                        acc[p] = t
                        sc[p] = k + a * t
                        yc[p] = xc[p] * _pow_neg(sc[p], beta, sc.dtype.type(1))


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


@njit(cache=True, parallel=True, fastmath=_FAST, error_model="numpy")
def _lrn_bwd(gy, x, y, scale, gx, size, alpha, beta):
    """One pass per channel, as :func:`_lrn_fwd`.

    t_j = gy_j * y_j / scale_j of the channels in the window are kept in a ring of
    ``size`` rows (row j % size), so the channel leaving the window is subtracted
    exactly as it was added.  The channel entering at step e (e + hi) and the one
    leaving (e - lo - 1) are ``size`` apart: they share a ring row, read (leaving) and
    overwritten (entering) in the same loop.  Beyond the last channel a zero row enters
    (gy = y = 0 over scale = 1).  Non-finite sums are redone afresh, as in the forward.
    """
    N, C, HW = x.shape
    lo = (size - 1) // 2               # c receives from channels j = c - lo ... c + hi
    hi = size // 2
    coef = 2.0 * alpha * beta / size
    runs, run = _runs(HW)
    for task in prange(N * runs):
        n = task // runs
        p0 = (task - n * runs) * run
        p1 = min(p0 + run, HW)
        m = p1 - p0
        ring = np.zeros((size, m), dtype=np.float64)
        acc = np.zeros(m, dtype=np.float64)
        zero = np.zeros(m, dtype=x.dtype)
        ones = np.ones(m, dtype=x.dtype)
        for j in range(min(hi, C)):                  # prime the window with channels 0 .. hi-1
            r = ring[j % size]
            g, yy, sc = gy[n, j, p0:p1], y[n, j, p0:p1], scale[n, j, p0:p1]
            for p in range(m):
                t = np.float64(g[p]) * yy[p] / sc[p]
                r[p] = t
                acc[p] += t
        for e in range(C):
            j = e + hi                               # entering; e - lo - 1 leaves (row j % size)
            if j < C:
                g, yy, sc = gy[n, j, p0:p1], y[n, j, p0:p1], scale[n, j, p0:p1]
            else:
                g, yy, sc = zero, zero, ones
            r = ring[j % size]
            out, xs, ge, se = gx[n, e, p0:p1], x[n, e, p0:p1], gy[n, e, p0:p1], scale[n, e, p0:p1]
            bad = 0.0
            for p in range(m):
                t = np.float64(g[p]) * yy[p] / sc[p]
                u = acc[p] - r[p] + t
                r[p] = t
                acc[p] = u
                bad += u * 0.0
            _times_pow_neg(ge, se, beta, out)        # gy * scale^-beta ...
            for p in range(m):
                out[p] -= coef * xs[p] * acc[p]      # ... - coef * x * window sum
            if bad != bad:                           # Inf/NaN cannot be subtracted: sum afresh
                j_lo, j_hi = max(e - lo, 0), min(e + hi, C - 1)
                for p in range(m):
                    if not np.isfinite(acc[p]):
                        t = 0.0
                        for jj in range(j_lo, j_hi + 1):
                            t += ring[jj % size, p]
                        acc[p] = t
                        out[p] = ge[p] * _pow_neg(se[p], beta, se.dtype.type(1)) - coef * xs[p] * t


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
