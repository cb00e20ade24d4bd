"""CPU kernels (Numba) for Winograd convolution: the tile transforms around the GEMMs.

Each has the signature of its NumPy reference ``<name>_reference`` in
``tinyconv/functional/conv_winograd.py`` and computes the same sums (in another order, so
equal up to float rounding).  The matrix products between them stay in ``np.matmul``.

Layouts (the kernel contract), with a = m + r - 1 the tile side of F(m x m, r x r)::

    x, gx   (N, C, H, W)         y, gy  (N, K, OH, OW)        w, gw (K, C, r, r)
    V, gV   (a*a, C, P)          M, gM  (a*a, K, P)           U, gU (a*a, K, C)
    tile p = n*T + ty*tw + tx (T = th*tw tiles per image), position s = i*a + j in the tile;
    tile (ty, tx) reads input rows ty*m - top + u, u < a (columns tx*m - left + v, v < a),
    zero outside the image, and writes output rows ty*m + k, k < m, those < OH.

Every transform is the "sandwich" L S L^T of each small tile S with a matrix of the
variant (B^T, G, A^T, or a transpose for the adjoints).  A parallel task owns one
(n, channel) plane and does all its T tiles at once: the tiles are gathered as the
columns of a (q*q, T) block, and both passes of the sandwich run as vector operations
along the T tiles (``_sandwich_tiles``), which the compiler vectorises.  The planes are
independent, so the overlap-add of the input adjoint (tiles overlap by a - m pixels)
needs no atomics.

This module imports nothing of tinyconv; ``tinyconv.backend.kernel`` finds its
functions by name.
"""
import numpy as np
from numba import njit, prange, uintp

from ._numba_threads import threads_for


@njit(cache=True, inline="always")
def _sandwich_tiles(L, S, tmp, out):
    """out[i*p + j, t] = (L S_t L^T)[i, j] for the tiles S_t[u, v] = S[u*q + v, t]; L (p, q).

    Pass 1: tmp[i*q + v] = sum_u L[i, u] S[u*q + v]   (L applied to the rows of each tile)
    Pass 2: out[i*p + j] = sum_v L[j, v] tmp[i*q + v]  (then to its columns)
    Each line is a vector operation over the T tiles; zero entries of L are skipped.
    S, tmp and out are flat (rows of T); indices are cast to uintp so that Numba emits no
    negative-index test and the loops over t vectorise.
    """
    p, q = L.shape
    T = uintp(S.size // (q * q))
    for i in range(p):
        for v in range(q):
            r = uintp(i * q + v) * T
            for t in range(T):
                tmp[r + t] = 0
            for u in range(q):
                c = L[i, u]
                if c != 0:
                    s = uintp(u * q + v) * T
                    for t in range(T):
                        tmp[r + t] += c * S[s + t]
    for i in range(p):
        for j in range(p):
            r = uintp(i * p + j) * T
            for t in range(T):
                out[r + t] = 0
            for v in range(q):
                c = L[j, v]
                if c != 0:
                    s = uintp(i * q + v) * T
                    for t in range(T):
                        out[r + t] += c * tmp[s + t]


@njit(cache=True, parallel=True)
def _input_transform(x, BT, m, top, left, th, tw, V):
    N, C, H, W = x.shape
    a = BT.shape[0]
    T = th * tw
    P = N * T
    Hc, Wc = th * m + a - m, tw * m + a - m                  # the padded canvas the tiles cover
    xf, Vf = x.reshape(x.size), V.reshape(V.size)
    for task in prange(N * C):
        n, c = task // C, task % C
        canvas = np.zeros(Hc * Wc, x.dtype)
        base = uintp(task) * uintp(H * W)                    # plane (n, c) of x
        for h in range(min(H, Hc - top)):                    # x sits at (top, left) in the canvas
            for w_ in range(min(W, Wc - left)):
                canvas[uintp((h + top) * Wc + w_ + left)] = xf[base + uintp(h * W + w_)]
        S = np.empty(a * a * T, x.dtype)
        # S[u*a + v, tile] = canvas pixel (u, v) of the tile
        for u in range(a):
            for v in range(a):
                row = uintp(u * a + v) * uintp(T)
                for ty in range(th):
                    src = uintp((ty * m + u) * Wc + v)
                    dst = row + uintp(ty * tw)
                    for tx in range(uintp(tw)):
                        S[dst + tx] = canvas[src + tx * uintp(m)]
        tmp = np.empty(a * a * T, x.dtype)
        out = np.empty(a * a * T, x.dtype)
        _sandwich_tiles(BT, S, tmp, out)                     # B^T d B
        for s in range(a * a):                               # V[s, c, n*T + t]
            dst = uintp((s * C + c) * P + n * T)
            src = uintp(s * T)
            for t in range(uintp(T)):
                Vf[dst + t] = out[src + t]


def input_transform(x, BT, m, top, left, th, tw):
    """V (a*a, C, N*th*tw): B^T d B of every input tile of x."""
    N, C = x.shape[:2]
    V = np.empty((BT.shape[0] ** 2, C, N * th * tw), dtype=x.dtype)
    with threads_for(V.size):
        _input_transform(np.ascontiguousarray(x), BT, m, top, left, th, tw, V)
    return V


@njit(cache=True, parallel=True)
def _input_adjoint(gV, B, m, top, left, th, tw, gx):
    N, C, H, W = gx.shape
    a = B.shape[0]
    T = th * tw
    P = N * T
    Hc, Wc = th * m + a - m, tw * m + a - m
    gVf, gxf = gV.reshape(gV.size), gx.reshape(gx.size)
    for task in prange(N * C):
        n, c = task // C, task % C
        S = np.empty(a * a * T, gV.dtype)
        for s in range(a * a):                               # S[s, t] = gV[s, c, n*T + t]
            src = uintp((s * C + c) * P + n * T)
            dst = uintp(s * T)
            for t in range(uintp(T)):
                S[dst + t] = gVf[src + t]
        tmp = np.empty(a * a * T, gV.dtype)
        out = np.empty(a * a * T, gV.dtype)
        _sandwich_tiles(B, S, tmp, out)                      # B gV B^T
        canvas = np.zeros(Hc * Wc, gV.dtype)
        for u in range(a):                                   # overlapping tiles add up
            for v in range(a):
                row = uintp(u * a + v) * uintp(T)
                for ty in range(th):
                    dst = uintp((ty * m + u) * Wc + v)
                    src = row + uintp(ty * tw)
                    for tx in range(uintp(tw)):
                        canvas[dst + tx * uintp(m)] += out[src + tx]
        base = uintp(task) * uintp(H * W)                    # the padding's gradient is dropped
        for h in range(H):
            for w_ in range(W):
                inside = h + top < Hc and w_ + left < Wc
                gxf[base + uintp(h * W + w_)] = canvas[uintp((h + top) * Wc + w_ + left)] if inside else 0


def input_adjoint(gV, BT, m, top, left, th, tw, x_shape):
    """gx (x_shape): the overlap-add of B gV B^T over the tiles (the adjoint of input_transform)."""
    gx = np.empty(x_shape, dtype=gV.dtype)
    with threads_for(gV.size):
        _input_adjoint(np.ascontiguousarray(gV), np.ascontiguousarray(BT.T), m, top, left, th, tw, gx)
    return gx


@njit(cache=True, parallel=True)
def _output_transform(M, AT, m, th, tw, bias, y):
    N, K, OH, OW = y.shape
    a = AT.shape[1]
    T = th * tw
    P = N * T
    Mf, yf = M.reshape(M.size), y.reshape(y.size)
    for task in prange(N * K):
        n, k = task // K, task % K
        S = np.empty(a * a * T, M.dtype)
        for s in range(a * a):                               # S[s, t] = M[s, k, n*T + t]
            src = uintp((s * K + k) * P + n * T)
            dst = uintp(s * T)
            for t in range(uintp(T)):
                S[dst + t] = Mf[src + t]
        tmp = np.empty(m * a * T, M.dtype)
        out = np.empty(m * m * T, M.dtype)
        _sandwich_tiles(AT, S, tmp, out)                     # A^T M A, m x m per tile
        b = bias[k]
        base = uintp(task) * uintp(OH * OW)
        for u in range(m):
            for v in range(m):
                row = uintp(u * m + v) * uintp(T)
                for ty in range(th):
                    r = ty * m + u
                    if r < OH:                               # the last tiles may pass the edge
                        for tx in range(tw):
                            q = tx * m + v
                            if q < OW:
                                yf[base + uintp(r * OW + q)] = out[row + uintp(ty * tw + tx)] + b


def output_transform(M, AT, m, N, OH, OW, bias=None):
    """y (N, K, OH, OW): A^T M A of every tile, cropped to OH x OW, plus ``bias`` if given."""
    K = M.shape[1]
    y = np.empty((N, K, OH, OW), dtype=M.dtype)
    b = np.zeros(K, M.dtype) if bias is None else np.ascontiguousarray(bias, dtype=M.dtype)
    th, tw = -(-OH // m), -(-OW // m)
    with threads_for(M.size):
        _output_transform(np.ascontiguousarray(M), AT, m, th, tw, b, y)
    return y


@njit(cache=True, parallel=True)
def _output_adjoint(gy, A, m, th, tw, gM):
    N, K, OH, OW = gy.shape
    a = A.shape[0]
    T = th * tw
    P = N * T
    gyf, gMf = gy.reshape(gy.size), gM.reshape(gM.size)
    for task in prange(N * K):
        n, k = task // K, task % K
        S = np.zeros(m * m * T, gy.dtype)                    # zero where the tile passes the edge
        base = uintp(task) * uintp(OH * OW)
        for u in range(m):
            for v in range(m):
                row = uintp(u * m + v) * uintp(T)
                for ty in range(th):
                    r = ty * m + u
                    if r < OH:
                        for tx in range(tw):
                            q = tx * m + v
                            if q < OW:
                                S[row + uintp(ty * tw + tx)] = gyf[base + uintp(r * OW + q)]
        tmp = np.empty(a * m * T, gy.dtype)
        out = np.empty(a * a * T, gy.dtype)
        _sandwich_tiles(A, S, tmp, out)                      # A gy A^T, a x a per tile
        for s in range(a * a):
            dst = uintp((s * K + k) * P + n * T)
            src = uintp(s * T)
            for t in range(uintp(T)):
                gMf[dst + t] = out[src + t]


def output_adjoint(gy, AT, m):
    """gM (a*a, K, P): A gy_tile A^T of every output tile (the adjoint of output_transform)."""
    N, K, OH, OW = gy.shape
    a = AT.shape[1]
    th, tw = -(-OH // m), -(-OW // m)
    gM = np.empty((a * a, K, N * th * tw), dtype=gy.dtype)
    with threads_for(gM.size):
        _output_adjoint(np.ascontiguousarray(gy), np.ascontiguousarray(AT.T), m, th, tw, gM)
    return gM


@njit(cache=True)
def _filter_sandwich(L, S, out):
    """out (p*p, KC) = L S_t L^T of the kernels S (q*q, KC), flat; all K*C kernels at once."""
    p, q = L.shape
    tmp = np.empty(p * q * (S.size // (q * q)), S.dtype)
    _sandwich_tiles(L, S, tmp, out)


def filter_transform(w, G):
    """U (a*a, K, C): G g G^T of every r x r kernel g = w[k, c] (G is a x r)."""
    K, C = w.shape[:2]
    a, r = G.shape
    S = np.ascontiguousarray(w.reshape(K * C, r * r).T)      # (r*r, K*C): tap u*r + v of kernel (k, c)
    U = np.empty(a * a * K * C, dtype=w.dtype)
    _filter_sandwich(G, S.reshape(S.size), U)
    return U.reshape(a * a, K, C)


def filter_adjoint(gU, G):
    """gw (K, C, r, r): G^T gU G per kernel (the adjoint of filter_transform; G is a x r)."""
    K, C = gU.shape[1:]
    r = G.shape[1]
    out = np.empty(r * r * K * C, dtype=gU.dtype)
    _filter_sandwich(np.ascontiguousarray(G.T), np.ascontiguousarray(gU).reshape(gU.size), out)
    return np.ascontiguousarray(out.reshape(r * r, K * C).T).reshape(K, C, r, r)
