"""CPU kernels (Numba) for Winograd convolution: the tile transforms around the GEMMs.

Each has the signature of its NumPy reference ``<name>_reference`` in
``tinyconv/functional/conv_winograd.py`` and computes the same sums (in another order, so
equal up to float rounding).  The matrix products between them are ``kernels/gemm.py``'s
``gemm_batched``.

Layouts (the kernel contract), with a = m + r - 1 the tile side of F(m x m, r x r)::

    x, gx   (N, C, H, W)         y, gy  (N, K, OH, OW)        w, gw (K, C, r, r)
    V, gV   (a*a, C, P)          M, gM  (a*a, K, P)           U, gU (a*a, K, C)
    tile p = n*T + ty*tw + tx (T = th*tw tiles per image), position s = i*a + j in the tile;
    tile (ty, tx) reads input rows ty*m - top + u, u < a (columns tx*m - left + v, v < a),
    zero outside the image, and writes output rows ty*m + k, k < m, those < OH.

**How.** Every transform is the "sandwich" L S L^T of each small tile S with a matrix L
of the variant (B^T, G, A^T, or a transpose for the adjoints), done in two passes of the
1-d transform: L applied to the columns of every tile, then to the rows.  A kernel works
on *rows of tiles*: row ``s`` of a block holds entry s of all T tiles of one (image,
channel) plane, contiguous, so one pass is a few vector operations along the T tiles::

    pass 1: tmp[i*q + v, :] = sum_u L[i, u] S[u*q + v, :]      for each column v
    pass 2: out[i*p + j, :] = sum_v L[j, v] tmp[i*q + v, :]    for each row i

Both passes are one "row function" ``f(L, src, so, ss, dst, do, ds, n)``: dst row i
(at do + i*ds, n long) = sum_u L[i, u] * src row u (at so + u*ss).  For the matrices of
F(2x2, 3x3), F(4x4, 3x3) and F(4x4, 5x5) that function is written out by hand (``_bt4``,
``_g6``, ``_at8``, ...: each output row one loop with the matrix entries as constants, so
zeros cost nothing, +-1 no multiply, and each loop reads at most eight rows, which the
compiler vectorises); any other matrix (F(2x2, 5x5)'s G and A^T; its B^T is F(4, 3)'s)
runs the generic ``_rows``, which reads the entries from L and makes one pass over the
destination row per nonzero entry.  A kernel receives the choice as an
integer, the matrix's ``row_code``, and calls its role's dispatcher (``_rows_bt``, ...) with
it: not the function as an argument, which Numba's disk cache cannot key.  Pass 2 of
the forward transforms writes straight into the GEMM layout (V, or the a*a rows of gM),
and the output transform's pass 1 reads M where the GEMM wrote it.

**Work split.** A parallel task is a chunk of (channel, image) planes, channel-major
(plane c*N + n), so that consecutive planes write consecutive tiles of each row of V and
gM; a chunk allocates its scratch rows once.  The planes are independent, so the
overlap-add of the input adjoint (tiles overlap by a - m pixels) needs no atomics.

This module imports nothing of tinyconv; ``tinyconv.backend.kernel`` finds its
functions by name.
"""
import numba
import numpy as np
from numba import njit, prange, uintp

from ._numba_threads import threads_for

# --------------------------------------------------------------------------- row functions
# f(L, s, so, ss, d, do, ds, n): d[do + i*ds + t] = sum_u L[i, u] s[so + u*ss + t], t < n.
# Offsets are cast to uintp so that Numba emits no negative-index test and the loops
# vectorise; ``k = s.dtype.type`` keeps float32 arithmetic in float32.


@njit(cache=True)
def _rows(L, s, so, ss, d, do, ds, n):
    """Any matrix L (p, q): entries read at run time, zero entries skipped."""
    p, q = L.shape
    n = uintp(n)
    for i in range(p):
        o = uintp(do + i * ds)
        for t in range(n):
            d[o + t] = 0
        for u in range(q):
            c = L[i, u]
            if c != 0:
                r = uintp(so + u * ss)
                for t in range(n):
                    d[o + t] += c * s[r + t]


# F(2x2, 3x3): B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
# G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]], A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
# Each line below is one row of the matrix named; s0..s3 are the source rows u = 0..3.


@njit(cache=True)
def _bt4(L, s, so, ss, d, do, ds, n):
    """B^T (4 x 4) of F(2, 3)."""
    s0, s1, s2, s3 = uintp(so), uintp(so + ss), uintp(so + 2 * ss), uintp(so + 3 * ss)
    d0, d1, d2, d3 = uintp(do), uintp(do + ds), uintp(do + 2 * ds), uintp(do + 3 * ds)
    for t in range(uintp(n)):
        d[d0 + t] = s[s0 + t] - s[s2 + t]                   # [1, 0, -1, 0]
    for t in range(uintp(n)):
        d[d1 + t] = s[s1 + t] + s[s2 + t]                   # [0, 1, 1, 0]
    for t in range(uintp(n)):
        d[d2 + t] = s[s2 + t] - s[s1 + t]                   # [0, -1, 1, 0]
    for t in range(uintp(n)):
        d[d3 + t] = s[s1 + t] - s[s3 + t]                   # [0, 1, 0, -1]


@njit(cache=True)
def _b4(L, s, so, ss, d, do, ds, n):
    """B = (B^T)^T (4 x 4) of F(2, 3), for the input adjoint."""
    s0, s1, s2, s3 = uintp(so), uintp(so + ss), uintp(so + 2 * ss), uintp(so + 3 * ss)
    d0, d1, d2, d3 = uintp(do), uintp(do + ds), uintp(do + 2 * ds), uintp(do + 3 * ds)
    for t in range(uintp(n)):
        d[d0 + t] = s[s0 + t]                               # [1, 0, 0, 0]
    for t in range(uintp(n)):
        d[d1 + t] = s[s1 + t] - s[s2 + t] + s[s3 + t]       # [0, 1, -1, 1]
    for t in range(uintp(n)):
        d[d2 + t] = s[s1 + t] + s[s2 + t] - s[s0 + t]       # [-1, 1, 1, 0]
    for t in range(uintp(n)):
        d[d3 + t] = -s[s3 + t]                              # [0, 0, 0, -1]


@njit(cache=True)
def _g4(L, s, so, ss, d, do, ds, n):
    """G (4 x 3) of F(2, 3)."""
    k = s.dtype.type
    h = k(1 / 2)
    s0, s1, s2 = uintp(so), uintp(so + ss), uintp(so + 2 * ss)
    d0, d1, d2, d3 = uintp(do), uintp(do + ds), uintp(do + 2 * ds), uintp(do + 3 * ds)
    for t in range(uintp(n)):
        d[d0 + t] = s[s0 + t]                               # [1, 0, 0]
    for t in range(uintp(n)):
        d[d1 + t] = h * (s[s0 + t] + s[s1 + t] + s[s2 + t])  # [1/2, 1/2, 1/2]
    for t in range(uintp(n)):
        d[d2 + t] = h * (s[s0 + t] - s[s1 + t] + s[s2 + t])  # [1/2, -1/2, 1/2]
    for t in range(uintp(n)):
        d[d3 + t] = s[s2 + t]                               # [0, 0, 1]


@njit(cache=True)
def _gt4(L, s, so, ss, d, do, ds, n):
    """G^T (3 x 4) of F(2, 3), for the filter adjoint."""
    k = s.dtype.type
    h = k(1 / 2)
    s0, s1, s2, s3 = uintp(so), uintp(so + ss), uintp(so + 2 * ss), uintp(so + 3 * ss)
    d0, d1, d2 = uintp(do), uintp(do + ds), uintp(do + 2 * ds)
    for t in range(uintp(n)):
        d[d0 + t] = s[s0 + t] + h * (s[s1 + t] + s[s2 + t])  # [1, 1/2, 1/2, 0]
    for t in range(uintp(n)):
        d[d1 + t] = h * (s[s1 + t] - s[s2 + t])             # [0, 1/2, -1/2, 0]
    for t in range(uintp(n)):
        d[d2 + t] = h * (s[s1 + t] + s[s2 + t]) + s[s3 + t]  # [0, 1/2, 1/2, 1]


@njit(cache=True)
def _at4(L, s, so, ss, d, do, ds, n):
    """A^T (2 x 4) of F(2, 3)."""
    s0, s1, s2, s3 = uintp(so), uintp(so + ss), uintp(so + 2 * ss), uintp(so + 3 * ss)
    d0, d1 = uintp(do), uintp(do + ds)
    for t in range(uintp(n)):
        d[d0 + t] = s[s0 + t] + s[s1 + t] + s[s2 + t]       # [1, 1, 1, 0]
    for t in range(uintp(n)):
        d[d1 + t] = s[s1 + t] - s[s2 + t] - s[s3 + t]       # [0, 1, -1, -1]


@njit(cache=True)
def _a4(L, s, so, ss, d, do, ds, n):
    """A = (A^T)^T (4 x 2) of F(2, 3), for the output adjoint."""
    s0, s1 = uintp(so), uintp(so + ss)
    d0, d1, d2, d3 = uintp(do), uintp(do + ds), uintp(do + 2 * ds), uintp(do + 3 * ds)
    for t in range(uintp(n)):
        d[d0 + t] = s[s0 + t]                               # [1, 0]
    for t in range(uintp(n)):
        d[d1 + t] = s[s0 + t] + s[s1 + t]                   # [1, 1]
    for t in range(uintp(n)):
        d[d2 + t] = s[s0 + t] - s[s1 + t]                   # [1, -1]
    for t in range(uintp(n)):
        d[d3 + t] = -s[s1 + t]                              # [0, -1]


# F(4x4, 3x3): the matrices of TRANSFORMS[4] in conv_winograd.py, row by row below.


@njit(cache=True)
def _bt6(L, s, so, ss, d, do, ds, n):
    """B^T (6 x 6) of F(4, 3)."""
    k = s.dtype.type
    s0, s1, s2 = uintp(so), uintp(so + ss), uintp(so + 2 * ss)
    s3, s4, s5 = uintp(so + 3 * ss), uintp(so + 4 * ss), uintp(so + 5 * ss)
    for t in range(uintp(n)):                               # [4, 0, -5, 0, 1, 0]
        d[uintp(do) + t] = k(4) * s[s0 + t] - k(5) * s[s2 + t] + s[s4 + t]
    for t in range(uintp(n)):                               # [0, -4, -4, 1, 1, 0]
        d[uintp(do + ds) + t] = s[s3 + t] + s[s4 + t] - k(4) * (s[s1 + t] + s[s2 + t])
    for t in range(uintp(n)):                               # [0, 4, -4, -1, 1, 0]
        d[uintp(do + 2 * ds) + t] = s[s4 + t] - s[s3 + t] + k(4) * (s[s1 + t] - s[s2 + t])
    for t in range(uintp(n)):                               # [0, -2, -1, 2, 1, 0]
        d[uintp(do + 3 * ds) + t] = s[s4 + t] - s[s2 + t] + k(2) * (s[s3 + t] - s[s1 + t])
    for t in range(uintp(n)):                               # [0, 2, -1, -2, 1, 0]
        d[uintp(do + 4 * ds) + t] = s[s4 + t] - s[s2 + t] + k(2) * (s[s1 + t] - s[s3 + t])
    for t in range(uintp(n)):                               # [0, 4, 0, -5, 0, 1]
        d[uintp(do + 5 * ds) + t] = k(4) * s[s1 + t] - k(5) * s[s3 + t] + s[s5 + t]


@njit(cache=True)
def _b6(L, s, so, ss, d, do, ds, n):
    """B = (B^T)^T (6 x 6) of F(4, 3), for the input adjoint."""
    k = s.dtype.type
    s0, s1, s2 = uintp(so), uintp(so + ss), uintp(so + 2 * ss)
    s3, s4, s5 = uintp(so + 3 * ss), uintp(so + 4 * ss), uintp(so + 5 * ss)
    for t in range(uintp(n)):                               # [4, 0, 0, 0, 0, 0]
        d[uintp(do) + t] = k(4) * s[s0 + t]
    for t in range(uintp(n)):                               # [0, -4, 4, -2, 2, 4]
        d[uintp(do + ds) + t] = k(4) * (s[s2 + t] - s[s1 + t] + s[s5 + t]) + k(2) * (s[s4 + t] - s[s3 + t])
    for t in range(uintp(n)):                               # [-5, -4, -4, -1, -1, 0]
        d[uintp(do + 2 * ds) + t] = -(k(5) * s[s0 + t] + k(4) * (s[s1 + t] + s[s2 + t])
                                      + s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [0, 1, -1, 2, -2, -5]
        d[uintp(do + 3 * ds) + t] = s[s1 + t] - s[s2 + t] + k(2) * (s[s3 + t] - s[s4 + t]) - k(5) * s[s5 + t]
    for t in range(uintp(n)):                               # [1, 1, 1, 1, 1, 0]
        d[uintp(do + 4 * ds) + t] = s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t] + s[s4 + t]
    for t in range(uintp(n)):                               # [0, 0, 0, 0, 0, 1]
        d[uintp(do + 5 * ds) + t] = s[s5 + t]


@njit(cache=True)
def _g6(L, s, so, ss, d, do, ds, n):
    """G (6 x 3) of F(4, 3); 1/6, 1/12, 1/24 rounded to the dtype, as G itself."""
    k = s.dtype.type
    c4, c6, c12, c24 = k(1 / 4), k(1 / 6), k(1 / 12), k(1 / 24)
    s0, s1, s2 = uintp(so), uintp(so + ss), uintp(so + 2 * ss)
    for t in range(uintp(n)):                               # [1/4, 0, 0]
        d[uintp(do) + t] = c4 * s[s0 + t]
    for t in range(uintp(n)):                               # [-1/6, -1/6, -1/6]
        d[uintp(do + ds) + t] = -c6 * (s[s0 + t] + s[s1 + t] + s[s2 + t])
    for t in range(uintp(n)):                               # [-1/6, 1/6, -1/6]
        d[uintp(do + 2 * ds) + t] = c6 * (s[s1 + t] - s[s0 + t] - s[s2 + t])
    for t in range(uintp(n)):                               # [1/24, 1/12, 1/6]
        d[uintp(do + 3 * ds) + t] = c24 * s[s0 + t] + c12 * s[s1 + t] + c6 * s[s2 + t]
    for t in range(uintp(n)):                               # [1/24, -1/12, 1/6]
        d[uintp(do + 4 * ds) + t] = c24 * s[s0 + t] - c12 * s[s1 + t] + c6 * s[s2 + t]
    for t in range(uintp(n)):                               # [0, 0, 1]
        d[uintp(do + 5 * ds) + t] = s[s2 + t]


@njit(cache=True)
def _gt6(L, s, so, ss, d, do, ds, n):
    """G^T (3 x 6) of F(4, 3), for the filter adjoint."""
    k = s.dtype.type
    c4, c6, c12, c24 = k(1 / 4), k(1 / 6), k(1 / 12), k(1 / 24)
    s0, s1, s2 = uintp(so), uintp(so + ss), uintp(so + 2 * ss)
    s3, s4, s5 = uintp(so + 3 * ss), uintp(so + 4 * ss), uintp(so + 5 * ss)
    for t in range(uintp(n)):                               # [1/4, -1/6, -1/6, 1/24, 1/24, 0]
        d[uintp(do) + t] = c4 * s[s0 + t] - c6 * (s[s1 + t] + s[s2 + t]) + c24 * (s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [0, -1/6, 1/6, 1/12, -1/12, 0]
        d[uintp(do + ds) + t] = c6 * (s[s2 + t] - s[s1 + t]) + c12 * (s[s3 + t] - s[s4 + t])
    for t in range(uintp(n)):                               # [0, -1/6, -1/6, 1/6, 1/6, 1]
        d[uintp(do + 2 * ds) + t] = c6 * (s[s3 + t] + s[s4 + t] - s[s1 + t] - s[s2 + t]) + s[s5 + t]


@njit(cache=True)
def _at6(L, s, so, ss, d, do, ds, n):
    """A^T (4 x 6) of F(4, 3)."""
    k = s.dtype.type
    s0, s1, s2 = uintp(so), uintp(so + ss), uintp(so + 2 * ss)
    s3, s4, s5 = uintp(so + 3 * ss), uintp(so + 4 * ss), uintp(so + 5 * ss)
    for t in range(uintp(n)):                               # [1, 1, 1, 1, 1, 0]
        d[uintp(do) + t] = s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t] + s[s4 + t]
    for t in range(uintp(n)):                               # [0, 1, -1, 2, -2, 0]
        d[uintp(do + ds) + t] = s[s1 + t] - s[s2 + t] + k(2) * (s[s3 + t] - s[s4 + t])
    for t in range(uintp(n)):                               # [0, 1, 1, 4, 4, 0]
        d[uintp(do + 2 * ds) + t] = s[s1 + t] + s[s2 + t] + k(4) * (s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [0, 1, -1, 8, -8, 1]
        d[uintp(do + 3 * ds) + t] = s[s1 + t] - s[s2 + t] + k(8) * (s[s3 + t] - s[s4 + t]) + s[s5 + t]


@njit(cache=True)
def _a6(L, s, so, ss, d, do, ds, n):
    """A = (A^T)^T (6 x 4) of F(4, 3), for the output adjoint."""
    k = s.dtype.type
    s0, s1, s2, s3 = uintp(so), uintp(so + ss), uintp(so + 2 * ss), uintp(so + 3 * ss)
    for t in range(uintp(n)):                               # [1, 0, 0, 0]
        d[uintp(do) + t] = s[s0 + t]
    for t in range(uintp(n)):                               # [1, 1, 1, 1]
        d[uintp(do + ds) + t] = s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t]
    for t in range(uintp(n)):                               # [1, -1, 1, -1]
        d[uintp(do + 2 * ds) + t] = s[s0 + t] - s[s1 + t] + s[s2 + t] - s[s3 + t]
    for t in range(uintp(n)):                               # [1, 2, 4, 8]
        d[uintp(do + 3 * ds) + t] = s[s0 + t] + k(2) * s[s1 + t] + k(4) * s[s2 + t] + k(8) * s[s3 + t]
    for t in range(uintp(n)):                               # [1, -2, 4, -8]
        d[uintp(do + 4 * ds) + t] = s[s0 + t] - k(2) * s[s1 + t] + k(4) * s[s2 + t] - k(8) * s[s3 + t]
    for t in range(uintp(n)):                               # [0, 0, 0, 1]
        d[uintp(do + 5 * ds) + t] = s[s3 + t]


# F(4x4, 5x5) on the points 0, +-1, +-2, +-1/2 and infinity (toom_cook's POINTS[(4, 5)]),
# written out like the above; ``_offsets8`` gives the eight row offsets of a source or destination.


@njit(cache=True, inline="always")
def _offsets8(so, ss):
    return (uintp(so), uintp(so + ss), uintp(so + 2 * ss), uintp(so + 3 * ss),
            uintp(so + 4 * ss), uintp(so + 5 * ss), uintp(so + 6 * ss), uintp(so + 7 * ss))


@njit(cache=True)
def _bt8(L, s, so, ss, d, do, ds, n):
    """B^T (8 x 8) of F(4, 5)."""
    k = s.dtype.type
    s0, s1, s2, s3, s4, s5, s6, s7 = _offsets8(so, ss)
    d0, d1, d2, d3, d4, d5, d6, d7 = _offsets8(do, ds)
    for t in range(uintp(n)):                               # [-4, 0, 21, 0, -21, 0, 4, 0]
        d[d0 + t] = k(4) * (s[s6 + t] - s[s0 + t]) + k(21) * (s[s2 + t] - s[s4 + t])
    for t in range(uintp(n)):                               # [0, 4, 4, -17, -17, 4, 4, 0]
        d[d1 + t] = k(4) * (s[s1 + t] + s[s2 + t] + s[s5 + t] + s[s6 + t]) - k(17) * (s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [0, -4, 4, 17, -17, -4, 4, 0]
        d[d2 + t] = k(4) * (s[s2 + t] - s[s1 + t] + s[s6 + t] - s[s5 + t]) + k(17) * (s[s3 + t] - s[s4 + t])
    for t in range(uintp(n)):                               # [0, 2, 1, -10, -5, 8, 4, 0]
        d[d3 + t] = (k(2) * s[s1 + t] + s[s2 + t] - k(10) * s[s3 + t] - k(5) * s[s4 + t]
                     + k(8) * s[s5 + t] + k(4) * s[s6 + t])
    for t in range(uintp(n)):                               # [0, -2, 1, 10, -5, -8, 4, 0]
        d[d4 + t] = (s[s2 + t] - k(2) * s[s1 + t] + k(10) * s[s3 + t] - k(5) * s[s4 + t]
                     - k(8) * s[s5 + t] + k(4) * s[s6 + t])
    for t in range(uintp(n)):                               # [0, 4, 8, -5, -10, 1, 2, 0]
        d[d5 + t] = (k(4) * s[s1 + t] + k(8) * s[s2 + t] - k(5) * s[s3 + t] - k(10) * s[s4 + t]
                     + s[s5 + t] + k(2) * s[s6 + t])
    for t in range(uintp(n)):                               # [0, -4, 8, 5, -10, -1, 2, 0]
        d[d6 + t] = (k(8) * s[s2 + t] - k(4) * s[s1 + t] + k(5) * s[s3 + t] - k(10) * s[s4 + t]
                     - s[s5 + t] + k(2) * s[s6 + t])
    for t in range(uintp(n)):                               # [0, -4, 0, 21, 0, -21, 0, 4]
        d[d7 + t] = k(4) * (s[s7 + t] - s[s1 + t]) + k(21) * (s[s3 + t] - s[s5 + t])


@njit(cache=True)
def _b8(L, s, so, ss, d, do, ds, n):
    """B = (B^T)^T (8 x 8) of F(4, 5), for the input adjoint."""
    k = s.dtype.type
    s0, s1, s2, s3, s4, s5, s6, s7 = _offsets8(so, ss)
    d0, d1, d2, d3, d4, d5, d6, d7 = _offsets8(do, ds)
    for t in range(uintp(n)):                               # [-4, 0, 0, 0, 0, 0, 0, 0]
        d[d0 + t] = -k(4) * s[s0 + t]
    for t in range(uintp(n)):                               # [0, 4, -4, 2, -2, 4, -4, -4]
        d[d1 + t] = (k(4) * (s[s1 + t] - s[s2 + t] + s[s5 + t] - s[s6 + t] - s[s7 + t])
                     + k(2) * (s[s3 + t] - s[s4 + t]))
    for t in range(uintp(n)):                               # [21, 4, 4, 1, 1, 8, 8, 0]
        d[d2 + t] = (k(21) * s[s0 + t] + k(4) * (s[s1 + t] + s[s2 + t]) + s[s3 + t] + s[s4 + t]
                     + k(8) * (s[s5 + t] + s[s6 + t]))
    for t in range(uintp(n)):                               # [0, -17, 17, -10, 10, -5, 5, 21]
        d[d3 + t] = (k(17) * (s[s2 + t] - s[s1 + t]) + k(10) * (s[s4 + t] - s[s3 + t])
                     + k(5) * (s[s6 + t] - s[s5 + t]) + k(21) * s[s7 + t])
    for t in range(uintp(n)):                               # [-21, -17, -17, -5, -5, -10, -10, 0]
        d[d4 + t] = -(k(21) * s[s0 + t] + k(17) * (s[s1 + t] + s[s2 + t]) + k(5) * (s[s3 + t] + s[s4 + t])
                      + k(10) * (s[s5 + t] + s[s6 + t]))
    for t in range(uintp(n)):                               # [0, 4, -4, 8, -8, 1, -1, -21]
        d[d5 + t] = (k(4) * (s[s1 + t] - s[s2 + t]) + k(8) * (s[s3 + t] - s[s4 + t]) + s[s5 + t] - s[s6 + t]
                     - k(21) * s[s7 + t])
    for t in range(uintp(n)):                               # [4, 4, 4, 4, 4, 2, 2, 0]
        d[d6 + t] = (k(4) * (s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t] + s[s4 + t])
                     + k(2) * (s[s5 + t] + s[s6 + t]))
    for t in range(uintp(n)):                               # [0, 0, 0, 0, 0, 0, 0, 4]
        d[d7 + t] = k(4) * s[s7 + t]


@njit(cache=True)
def _g8(L, s, so, ss, d, do, ds, n):
    """G (8 x 5) of F(4, 5); 1/4, 1/18, 1/45, 1/360 rounded to the dtype (times powers of two: exact)."""
    k = s.dtype.type
    c4, c18, c45, c360 = k(1 / 4), k(1 / 18), k(1 / 45), k(1 / 360)
    s0, s1, s2, s3, s4, _, _, _ = _offsets8(so, ss)
    d0, d1, d2, d3, d4, d5, d6, d7 = _offsets8(do, ds)
    for t in range(uintp(n)):                               # [-1/4, 0, 0, 0, 0]
        d[d0 + t] = -c4 * s[s0 + t]
    for t in range(uintp(n)):                               # [-1/18, -1/18, -1/18, -1/18, -1/18]
        d[d1 + t] = -c18 * (s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [-1/18, 1/18, -1/18, 1/18, -1/18]
        d[d2 + t] = c18 * (s[s1 + t] + s[s3 + t] - s[s0 + t] - s[s2 + t] - s[s4 + t])
    for t in range(uintp(n)):                               # [1/360, 1/180, 1/90, 1/45, 2/45]
        d[d3 + t] = (c360 * (s[s0 + t] + k(2) * s[s1 + t] + k(4) * s[s2 + t])
                     + c45 * (s[s3 + t] + k(2) * s[s4 + t]))
    for t in range(uintp(n)):                               # [1/360, -1/180, 1/90, -1/45, 2/45]
        d[d4 + t] = (c360 * (s[s0 + t] - k(2) * s[s1 + t] + k(4) * s[s2 + t])
                     + c45 * (k(2) * s[s4 + t] - s[s3 + t]))
    for t in range(uintp(n)):                               # [16/45, 8/45, 4/45, 2/45, 1/45]
        d[d5 + t] = c45 * (k(16) * s[s0 + t] + k(8) * s[s1 + t] + k(4) * s[s2 + t]
                           + k(2) * s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [16/45, -8/45, 4/45, -2/45, 1/45]
        d[d6 + t] = c45 * (k(16) * s[s0 + t] - k(8) * s[s1 + t] + k(4) * s[s2 + t]
                           - k(2) * s[s3 + t] + s[s4 + t])
    for t in range(uintp(n)):                               # [0, 0, 0, 0, 1/4]
        d[d7 + t] = c4 * s[s4 + t]


@njit(cache=True)
def _gt8(L, s, so, ss, d, do, ds, n):
    """G^T (5 x 8) of F(4, 5), for the filter adjoint."""
    k = s.dtype.type
    c4, c18, c45, c360 = k(1 / 4), k(1 / 18), k(1 / 45), k(1 / 360)
    s0, s1, s2, s3, s4, s5, s6, s7 = _offsets8(so, ss)
    d0, d1, d2, d3, d4, _, _, _ = _offsets8(do, ds)
    for t in range(uintp(n)):                     # [-1/4, -1/18, -1/18, 1/360, 1/360, 16/45, 16/45, 0]
        d[d0 + t] = (c360 * (s[s3 + t] + s[s4 + t]) + k(16) * c45 * (s[s5 + t] + s[s6 + t])
                     - c4 * s[s0 + t] - c18 * (s[s1 + t] + s[s2 + t]))
    for t in range(uintp(n)):                               # [0, -1/18, 1/18, 1/180, -1/180, 8/45, -8/45, 0]
        d[d1 + t] = (c18 * (s[s2 + t] - s[s1 + t]) + k(2) * c360 * (s[s3 + t] - s[s4 + t])
                     + k(8) * c45 * (s[s5 + t] - s[s6 + t]))
    for t in range(uintp(n)):                               # [0, -1/18, -1/18, 1/90, 1/90, 4/45, 4/45, 0]
        d[d2 + t] = (k(4) * c360 * (s[s3 + t] + s[s4 + t]) + k(4) * c45 * (s[s5 + t] + s[s6 + t])
                     - c18 * (s[s1 + t] + s[s2 + t]))
    for t in range(uintp(n)):                               # [0, -1/18, 1/18, 1/45, -1/45, 2/45, -2/45, 0]
        d[d3 + t] = (c18 * (s[s2 + t] - s[s1 + t])
                     + c45 * (s[s3 + t] - s[s4 + t] + k(2) * (s[s5 + t] - s[s6 + t])))
    for t in range(uintp(n)):                               # [0, -1/18, -1/18, 2/45, 2/45, 1/45, 1/45, 1/4]
        d[d4 + t] = (c45 * (k(2) * (s[s3 + t] + s[s4 + t]) + s[s5 + t] + s[s6 + t]) + c4 * s[s7 + t]
                     - c18 * (s[s1 + t] + s[s2 + t]))


@njit(cache=True)
def _at8(L, s, so, ss, d, do, ds, n):
    """A^T (4 x 8) of F(4, 5)."""
    k = s.dtype.type
    h, q, e = k(1 / 2), k(1 / 4), k(1 / 8)
    s0, s1, s2, s3, s4, s5, s6, s7 = _offsets8(so, ss)
    d0, d1, d2, d3, _, _, _, _ = _offsets8(do, ds)
    for t in range(uintp(n)):                               # [1, 1, 1, 1, 1, 1, 1, 0]
        d[d0 + t] = s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t] + s[s4 + t] + s[s5 + t] + s[s6 + t]
    for t in range(uintp(n)):                               # [0, 1, -1, 2, -2, 1/2, -1/2, 0]
        d[d1 + t] = s[s1 + t] - s[s2 + t] + k(2) * (s[s3 + t] - s[s4 + t]) + h * (s[s5 + t] - s[s6 + t])
    for t in range(uintp(n)):                               # [0, 1, 1, 4, 4, 1/4, 1/4, 0]
        d[d2 + t] = s[s1 + t] + s[s2 + t] + k(4) * (s[s3 + t] + s[s4 + t]) + q * (s[s5 + t] + s[s6 + t])
    for t in range(uintp(n)):                               # [0, 1, -1, 8, -8, 1/8, -1/8, 1]
        d[d3 + t] = (s[s1 + t] - s[s2 + t] + k(8) * (s[s3 + t] - s[s4 + t]) + e * (s[s5 + t] - s[s6 + t])
                     + s[s7 + t])


@njit(cache=True)
def _a8(L, s, so, ss, d, do, ds, n):
    """A = (A^T)^T (8 x 4) of F(4, 5), for the output adjoint."""
    k = s.dtype.type
    h, q, e = k(1 / 2), k(1 / 4), k(1 / 8)
    s0, s1, s2, s3, _, _, _, _ = _offsets8(so, ss)
    d0, d1, d2, d3, d4, d5, d6, d7 = _offsets8(do, ds)
    for t in range(uintp(n)):                               # [1, 0, 0, 0]
        d[d0 + t] = s[s0 + t]
    for t in range(uintp(n)):                               # [1, 1, 1, 1]
        d[d1 + t] = s[s0 + t] + s[s1 + t] + s[s2 + t] + s[s3 + t]
    for t in range(uintp(n)):                               # [1, -1, 1, -1]
        d[d2 + t] = s[s0 + t] - s[s1 + t] + s[s2 + t] - s[s3 + t]
    for t in range(uintp(n)):                               # [1, 2, 4, 8]
        d[d3 + t] = s[s0 + t] + k(2) * s[s1 + t] + k(4) * s[s2 + t] + k(8) * s[s3 + t]
    for t in range(uintp(n)):                               # [1, -2, 4, -8]
        d[d4 + t] = s[s0 + t] - k(2) * s[s1 + t] + k(4) * s[s2 + t] - k(8) * s[s3 + t]
    for t in range(uintp(n)):                               # [1, 1/2, 1/4, 1/8]
        d[d5 + t] = s[s0 + t] + h * s[s1 + t] + q * s[s2 + t] + e * s[s3 + t]
    for t in range(uintp(n)):                               # [1, -1/2, 1/4, -1/8]
        d[d6 + t] = s[s0 + t] - h * s[s1 + t] + q * s[s2 + t] - e * s[s3 + t]
    for t in range(uintp(n)):                               # [0, 0, 0, 1]
        d[d7 + t] = s[s3 + t]


_F23 = {"BT": [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        "G": [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        "AT": [[1, 1, 1, 0], [0, 1, -1, -1]]}
_F43 = {"BT": [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        "G": [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        "AT": [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]}
_F45 = {"BT": [[-4, 0, 21, 0, -21, 0, 4, 0], [0, 4, 4, -17, -17, 4, 4, 0], [0, -4, 4, 17, -17, -4, 4, 0],
               [0, 2, 1, -10, -5, 8, 4, 0], [0, -2, 1, 10, -5, -8, 4, 0], [0, 4, 8, -5, -10, 1, 2, 0],
               [0, -4, 8, 5, -10, -1, 2, 0], [0, -4, 0, 21, 0, -21, 0, 4]],
        "G": [[-1 / 4, 0, 0, 0, 0], [-1 / 18] * 5, [-1 / 18, 1 / 18, -1 / 18, 1 / 18, -1 / 18],
              [1 / 360, 1 / 180, 1 / 90, 1 / 45, 2 / 45], [1 / 360, -1 / 180, 1 / 90, -1 / 45, 2 / 45],
              [16 / 45, 8 / 45, 4 / 45, 2 / 45, 1 / 45], [16 / 45, -8 / 45, 4 / 45, -2 / 45, 1 / 45],
              [0, 0, 0, 0, 1 / 4]],
        "AT": [[1, 1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
               [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0], [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 1]]}
#: The hand-written row functions by role, the matrix of a variant they apply (``B`` is
#: B^T's transpose, for the input adjoint; ``GT`` and ``A`` likewise): role -> [(matrix in
#: float64, its function)] for F(2, 3), F(4, 3), F(4, 5).
ROLES = ("BT", "B", "G", "GT", "AT", "A")
_TRANSPOSE_OF = {"B": "BT", "GT": "G", "A": "AT"}
SPECIALISED = {role: [] for role in ROLES}
for _t, _fns in ((_F23, (_bt4, _b4, _g4, _gt4, _at4, _a4)), (_F43, (_bt6, _b6, _g6, _gt6, _at6, _a6)),
                 (_F45, (_bt8, _b8, _g8, _gt8, _at8, _a8))):
    for _role, _fn in zip(ROLES, _fns):
        _L = np.array(_t[_TRANSPOSE_OF.get(_role, _role)], dtype=np.float64)
        SPECIALISED[_role].append((_L.T.copy() if _role in _TRANSPOSE_OF else _L, _fn))


def row_code(L, role):
    """Which row function a kernel of ``role`` runs for matrix L: 1 + L's index in
    SPECIALISED[role], or 0 for the generic ``_rows`` (any other matrix)."""
    for code, (known, _) in enumerate(SPECIALISED[role], 1):
        if known.shape == L.shape and np.array_equal(known.astype(L.dtype), L):
            return code
    return 0


# A kernel takes its row function as this code, not as a function argument: a jitted
# function passed as an argument is typed by its address in memory, which differs from
# process to process, so Numba's disk cache would never match and every process would
# compile the kernels again (and add one more cache file).  Each kernel calls the
# dispatcher of its role below, so it holds four row functions (the filter kernel, which
# serves G and G^T, eight), not all nineteen: LLVM inlines them, and with all of them a
# kernel took 20 s to compile.  The six dispatchers stay six explicit functions for that
# reason: one over every role is what LLVM inlined whole.


@njit(cache=True)
def _rows_bt(code, L, s, so, ss, d, do, ds, n):
    """B^T's row function: code 1, 2, 3 for F(2, 3), F(4, 3), F(4, 5) (row_code), else ``_rows``."""
    if code == 1:
        _bt4(L, s, so, ss, d, do, ds, n)
    elif code == 2:
        _bt6(L, s, so, ss, d, do, ds, n)
    elif code == 3:
        _bt8(L, s, so, ss, d, do, ds, n)
    else:
        _rows(L, s, so, ss, d, do, ds, n)


@njit(cache=True)
def _rows_b(code, L, s, so, ss, d, do, ds, n):
    """B's row function (the input adjoint), coded as ``_rows_bt``."""
    if code == 1:
        _b4(L, s, so, ss, d, do, ds, n)
    elif code == 2:
        _b6(L, s, so, ss, d, do, ds, n)
    elif code == 3:
        _b8(L, s, so, ss, d, do, ds, n)
    else:
        _rows(L, s, so, ss, d, do, ds, n)


@njit(cache=True)
def _rows_g(code, L, s, so, ss, d, do, ds, n):
    """G's row function, coded as ``_rows_bt``."""
    if code == 1:
        _g4(L, s, so, ss, d, do, ds, n)
    elif code == 2:
        _g6(L, s, so, ss, d, do, ds, n)
    elif code == 3:
        _g8(L, s, so, ss, d, do, ds, n)
    else:
        _rows(L, s, so, ss, d, do, ds, n)


@njit(cache=True)
def _rows_gt(code, L, s, so, ss, d, do, ds, n):
    """G^T's row function (the filter adjoint), coded as ``_rows_bt``."""
    if code == 1:
        _gt4(L, s, so, ss, d, do, ds, n)
    elif code == 2:
        _gt6(L, s, so, ss, d, do, ds, n)
    elif code == 3:
        _gt8(L, s, so, ss, d, do, ds, n)
    else:
        _rows(L, s, so, ss, d, do, ds, n)


@njit(cache=True)
def _rows_at(code, L, s, so, ss, d, do, ds, n):
    """A^T's row function, coded as ``_rows_bt``."""
    if code == 1:
        _at4(L, s, so, ss, d, do, ds, n)
    elif code == 2:
        _at6(L, s, so, ss, d, do, ds, n)
    elif code == 3:
        _at8(L, s, so, ss, d, do, ds, n)
    else:
        _rows(L, s, so, ss, d, do, ds, n)


@njit(cache=True)
def _rows_a(code, L, s, so, ss, d, do, ds, n):
    """A's row function (the output adjoint), coded as ``_rows_bt``."""
    if code == 1:
        _a4(L, s, so, ss, d, do, ds, n)
    elif code == 2:
        _a6(L, s, so, ss, d, do, ds, n)
    elif code == 3:
        _a8(L, s, so, ss, d, do, ds, n)
    else:
        _rows(L, s, so, ss, d, do, ds, n)


#: role -> its dispatcher (for the tests)
DISPATCH = {"BT": _rows_bt, "B": _rows_b, "G": _rows_g, "GT": _rows_gt, "AT": _rows_at, "A": _rows_a}


@njit(cache=True)
def _chunk(i, nchunks, ntasks):
    """Tasks [lo, hi) of chunk i when ntasks are split into nchunks near-equal chunks."""
    return i * ntasks // nchunks, (i + 1) * ntasks // nchunks


@njit(cache=True)
def _corners(th, tw, row_step, col_step):
    """corner[ty*tw + tx] = ty*row_step + tx*col_step: where tile t starts in a canvas."""
    corner = np.empty(th * tw, np.uintp)
    for ty in range(th):
        for tx in range(tw):
            corner[ty * tw + tx] = ty * row_step + tx * col_step
    return corner


@njit(cache=True)
def _pixel_offsets(count, m, entry_step, tile_step):
    """o[c] = (c % m)*entry_step + (c // m)*tile_step: where pixel c of a row (or column) of
    an output plane sits in the (m*m, P) tile rows: entry c % m of tile c // m."""
    o = np.empty(count, np.uintp)
    for c in range(count):
        o[c] = (c % m) * entry_step + (c // m) * tile_step
    return o


def _nchunks(ntasks):
    """A few chunks per thread (of those threads_for leaves), so that a slow thread delays the region less."""
    return max(1, min(ntasks, 4 * numba.get_num_threads()))


# --------------------------------------------------------------------------- the kernels


@njit(cache=True, parallel=True)
def _input_transform(code, BT, x, m, top, left, th, tw, V, nchunks):
    N, C, H, W = x.shape
    a = BT.shape[0]
    T = th * tw
    P = N * T
    Hc, Wc = th * m + a - m, tw * m + a - m                  # the padded canvas the tiles cover
    xf, Vf = x.reshape(x.size), V.reshape(V.size)
    for chunk in prange(nchunks):
        canvas = np.zeros(Hc * Wc, x.dtype)                  # its border stays zero: the padding
        S = np.empty(a * a * P, x.dtype)
        tmp = np.empty(a * a * P, x.dtype)
        corner = _corners(th, tw, m * Wc, m)
        lo, hi = _chunk(chunk, nchunks, C)
        for c in range(lo, hi):
            for n in range(N):
                base = uintp((n * C + c) * H * W)            # plane (n, c) of x at (top, left) in the canvas
                for h in range(min(H, Hc - top)):
                    for w_ in range(min(W, Wc - left)):
                        canvas[uintp((h + top) * Wc + w_ + left)] = xf[base + uintp(h * W + w_)]
                for u in range(a):                           # S[u*a + v, n*T + t] = pixel (u, v) of tile t
                    for v in range(a):
                        row, o = uintp((u * a + v) * P + n * T), uintp(u * Wc + v)
                        for t in range(uintp(T)):
                            S[row + t] = canvas[corner[t] + o]
            for v in range(a):                               # tmp[i*a + v] = (B^T d)[i, v]
                _rows_bt(code, BT, S, v * P, a * P, tmp, v * P, a * P, P)
            for i in range(a):                               # V[i*a + j, c] = (B^T d B)[i, j]
                _rows_bt(code, BT, tmp, i * a * P, P, Vf, (i * a * C + c) * P, C * P, P)


def input_transform(x, BT, m, top, left, th, tw, out=None):
    """V (a*a, C, N*th*tw): B^T d B of every input tile of x (into ``out`` if given)."""
    N, C = x.shape[:2]
    V = np.empty((BT.shape[0] ** 2, C, N * th * tw), dtype=x.dtype) if out is None else out
    with threads_for(V.size):
        _input_transform(row_code(BT, "BT"), BT, np.ascontiguousarray(x), m, top, left, th, tw, V,
                         _nchunks(C))
    return V


@njit(cache=True, parallel=True)
def _input_adjoint(code, B, gV, m, top, left, th, tw, gx, nchunks):
    N, C, H, W = gx.shape
    a = B.shape[0]
    T = th * tw
    P = N * T
    Hc, Wc = th * m + a - m, tw * m + a - m
    gVf, gxf = gV.reshape(gV.size), gx.reshape(gx.size)
    for chunk in prange(nchunks):
        canvas = np.empty(Hc * Wc, gV.dtype)
        S = np.empty(a * a * P, gV.dtype)
        tmp = np.empty(a * a * P, gV.dtype)
        corner = _corners(th, tw, m * Wc, m)
        lo, hi = _chunk(chunk, nchunks, C)
        for c in range(lo, hi):
            for v in range(a):                               # tmp[i*a + v] = (B gV)[i, v], gV as is
                _rows_b(code, B, gVf, (v * C + c) * P, a * C * P, tmp, v * P, a * P, P)
            for i in range(a):                               # S[i*a + j] = (B gV B^T)[i, j]
                _rows_b(code, B, tmp, i * a * P, P, S, i * a * P, P, P)
            for n in range(N):
                canvas[:] = 0
                for u in range(a):                           # overlapping tiles add up
                    for v in range(a):
                        row, o = uintp((u * a + v) * P + n * T), uintp(u * Wc + v)
                        for t in range(uintp(T)):
                            canvas[corner[t] + o] += S[row + t]
                base = uintp((n * C + c) * H * W)            # the padding's gradient is dropped
                for h in range(H):
                    for w_ in range(W):
                        inside = h + top < Hc and w_ + left < Wc
                        g = canvas[uintp((h + top) * Wc + w_ + left)] if inside else 0
                        gxf[base + uintp(h * W + w_)] = g


def input_adjoint(gV, BT, m, top, left, th, tw, x_shape):
    """gx (x_shape): the overlap-add of B gV B^T over the tiles (the adjoint of input_transform)."""
    gx = np.empty(x_shape, dtype=gV.dtype)
    B = np.ascontiguousarray(BT.T)
    with threads_for(gV.size):
        _input_adjoint(row_code(B, "B"), B, np.ascontiguousarray(gV), m, top, left, th, tw, gx,
                       _nchunks(x_shape[1]))
    return gx


@njit(cache=True, parallel=True)
def _output_transform(code, AT, M, m, th, tw, bias, y, nchunks):
    N, K, OH, OW = y.shape
    a = AT.shape[1]
    T = th * tw
    P = N * T
    Mf, yf = M.reshape(M.size), y.reshape(y.size)
    row = _pixel_offsets(OH, m, m * P, tw)                   # y row r: row r % m of tile row r // m
    col = _pixel_offsets(OW, m, P, 1)                        # y column c: column c % m of tile column c // m
    for chunk in prange(nchunks):
        tmp = np.empty(m * a * P, M.dtype)
        Y = np.empty(m * m * P, M.dtype)
        lo, hi = _chunk(chunk, nchunks, K)
        for k in range(lo, hi):
            for v in range(a):                               # tmp[i*a + v] = (A^T M)[i, v], M as is
                _rows_at(code, AT, Mf, (v * K + k) * P, a * K * P, tmp, v * P, a * P, P)
            for i in range(m):                               # Y[i*m + j, p] = (A^T M A)[i, j]
                _rows_at(code, AT, tmp, i * a * P, P, Y, i * m * P, P, P)
            b = bias[k]
            for n in range(N):                               # y pixel (r, c) = Y[row[r] + col[c], n*T]
                for r in range(OH):                          # (the last tiles may pass the edge)
                    src, dst = row[r] + uintp(n * T), uintp(((n * K + k) * OH + r) * OW)
                    for c in range(OW):
                        yf[dst + c] = Y[src + col[c]] + b


def output_transform(M, AT, m, N, OH, OW, bias=None):
    """y (N, K, OH, OW): A^T M A of every tile, cropped to OH x OW, plus ``bias`` if given."""
    K = M.shape[1]
    y = np.empty((N, K, OH, OW), dtype=M.dtype)
    b = np.zeros(K, M.dtype) if bias is None else np.ascontiguousarray(bias, dtype=M.dtype)
    th, tw = -(-OH // m), -(-OW // m)
    with threads_for(M.size):
        _output_transform(row_code(AT, "AT"), AT, np.ascontiguousarray(M), m, th, tw, b, y, _nchunks(K))
    return y


@njit(cache=True, parallel=True)
def _output_adjoint(code, A, gy, m, th, tw, gM, nchunks):
    N, K, OH, OW = gy.shape
    a = A.shape[0]
    T = th * tw
    P = N * T
    gyf, gMf = gy.reshape(gy.size), gM.reshape(gM.size)
    row = _pixel_offsets(OH, m, m * P, tw)                   # as in _output_transform
    col = _pixel_offsets(OW, m, P, 1)
    for chunk in prange(nchunks):
        S = np.zeros(m * m * P, gy.dtype)                    # tile pixels past the edge stay 0
        tmp = np.empty(a * m * P, gy.dtype)
        lo, hi = _chunk(chunk, nchunks, K)
        for k in range(lo, hi):
            for n in range(N):                               # S[u*m + v, n*T + t] = gy pixel (u, v) of tile t
                for r in range(OH):
                    src, dst = uintp(((n * K + k) * OH + r) * OW), row[r] + uintp(n * T)
                    for c in range(OW):
                        S[dst + col[c]] = gyf[src + c]
            for v in range(m):                               # tmp[i*m + v] = (A gy)[i, v]
                _rows_a(code, A, S, v * P, m * P, tmp, v * P, m * P, P)
            for i in range(a):                               # gM[i*a + j, k] = (A gy A^T)[i, j]
                _rows_a(code, A, tmp, i * m * P, P, gMf, (i * a * K + k) * P, K * P, P)


def output_adjoint(gy, AT, m, out=None):
    """gM (a*a, K, P): A gy_tile A^T of every output tile (the adjoint of output_transform)."""
    N, K, OH, OW = gy.shape
    a = AT.shape[1]
    th, tw = -(-OH // m), -(-OW // m)
    gM = np.empty((a * a, K, N * th * tw), dtype=gy.dtype) if out is None else out
    A = np.ascontiguousarray(AT.T)
    with threads_for(gM.size):
        _output_adjoint(row_code(A, "A"), A, np.ascontiguousarray(gy), m, th, tw, gM, _nchunks(K))
    return gM


_FILTER_BLOCK = 512     # kernels per parallel task of the filter transforms


@njit(cache=True, parallel=True)
def _filter_sandwich(code, L, S, out, block, adjoint):
    """The filter transform (out_t = G S_t G^T) or, with ``adjoint``, its adjoint (G^T S_t G)
    of every kernel t, ``block`` kernels per task; L is G (a x r), or G^T.

    Transform: S is w as (KC, r*r) (kernel-major, as w holds its taps), out is U (a*a, KC)
    (entry-major: the GEMM layout).  Adjoint: S is gU (a*a, KC), out is gw as (KC, r*r).  A
    kernel-major block is transposed into (or out of) entry-major scratch rows on the way,
    so the two passes always run along the block's kernels.
    """
    p, q = L.shape
    KC = S.size // (q * q)
    Sf, of = S.reshape(S.size), out.reshape(out.size)
    for blk in prange(-(-KC // block)):
        lo = blk * block
        n = min(block, KC - lo)
        src = np.empty(q * q * block, S.dtype)               # the block's entry rows of w
        tmp = np.empty(p * q * block, S.dtype)
        dst = np.empty(p * p * block, S.dtype)               # the block's entry rows of gw
        if not adjoint:
            for t in range(n):
                for e in range(q * q):
                    src[e * block + t] = Sf[(lo + t) * q * q + e]
        rows, so, ss = (Sf, lo, KC) if adjoint else (src, 0, block)     # entry e at so + e*ss
        for v in range(q):                                   # tmp[i*q + v] = (L S)[i, v]
            if adjoint:
                _rows_gt(code, L, rows, so + v * ss, q * ss, tmp, v * block, q * block, n)
            else:
                _rows_g(code, L, rows, so + v * ss, q * ss, tmp, v * block, q * block, n)
        rows, do, ds = (dst, 0, block) if adjoint else (of, lo, KC)
        for i in range(p):                                   # out[i*p + j] = (L S L^T)[i, j]
            if adjoint:
                _rows_gt(code, L, tmp, i * q * block, block, rows, do + i * p * ds, ds, n)
            else:
                _rows_g(code, L, tmp, i * q * block, block, rows, do + i * p * ds, ds, n)
        if adjoint:
            for t in range(n):
                for e in range(p * p):
                    of[(lo + t) * p * p + e] = dst[e * block + t]


def filter_transform(w, G, out=None):
    """U (a*a, K, C): G g G^T of every r x r kernel g = w[k, c] (G is a x r), into ``out`` if given."""
    K, C = w.shape[:2]
    a, r = G.shape
    U = np.empty((a * a, K, C), dtype=w.dtype) if out is None else out
    with threads_for(U.size):
        _filter_sandwich(row_code(G, "G"), G, np.ascontiguousarray(w).reshape(K * C, r * r),
                         U.reshape(a * a, K * C), _FILTER_BLOCK, False)
    return U


def filter_adjoint(gU, G):
    """gw (K, C, r, r): G^T gU G per kernel (the adjoint of filter_transform; G is a x r)."""
    a, K, C = gU.shape
    r = G.shape[1]
    GT = np.ascontiguousarray(G.T)
    gw = np.empty((K, C, r, r), dtype=gU.dtype)
    with threads_for(gU.size):
        _filter_sandwich(row_code(GT, "GT"), GT, np.ascontiguousarray(gU).reshape(a, K * C),
                         gw.reshape(K * C, r * r), _FILTER_BLOCK, True)
    return gw
