"""Winograd (Toom-Cook) convolution for 3x3 and 5x5, stride-1 layers: F(2x2, r x r) and F(4x4, r x r).

**1-d F(m, r)**: m outputs of an r-tap correlation ``y[k] = sum_j d[k + j] g[j]`` read
a = m + r - 1 inputs.  Done directly that is m*r multiplies; Winograd's minimal
algorithm needs only a::

    y = A^T [ (G g) * (B^T d) ]          (* elementwise; A^T is m x a, G a x r, B^T a x a)

Derivation (Lavin & Gray 2016, after Winograd 1980): correlation is the transpose of
polynomial multiplication.  Multiplying g(t) (degree r - 1) by e(t) (degree m - 1) gives
a polynomial of degree a - 1, which a values determine: evaluate both at a - 1 points
p_k and at infinity (the leading coefficient), multiply the a values pairwise, and
interpolate back (Lagrange).  Written as matrices, evaluation of g is ``G`` (row k =
(1, p_k, p_k^2) / N_k with the Lagrange denominator N_k = prod_{l != k} (p_k - p_l) moved
into it), evaluation of e is ``A`` (row k = (1, p_k, ..., p_k^(m-1))) and interpolation
is ``B``; transposing the whole bilinear algorithm (the roles of e and the product swap)
turns it into correlation, with A^T, G and B^T as above.

F(2, 3), points 0, 1, -1 and infinity, by hand: with ``d = (d0, d1, d2, d3)``::

    m1 = (d0 - d2) g0                    y0 = d0 g0 + d1 g1 + d2 g2 = m1 + m2 + m3
    m2 = (d1 + d2) (g0 + g1 + g2) / 2    y1 = d1 g0 + d2 g1 + d3 g2 = m2 - m3 - m4
    m3 = (d2 - d1) (g0 - g1 + g2) / 2
    m4 = (d1 - d3) g2

4 multiplies instead of 6 (the factors of g are computed once per filter, not per tile)::

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

F(4, 3) uses the points 0, 1, -1, 2, -2 and infinity: 6 multiplies for 4 outputs instead
of 12 (matrices in ``TRANSFORMS``).  Its entries 1/6, 1/12, 1/24 are not exact in binary,
and B^T's entries up to 5 grow the values, so it is less accurate (see ``error_bound``).

**5 x 5** (AlexNet's conv2): the same construction with r = 5, done by :func:`toom_cook` from
the points alone (exact rational arithmetic): F(2, 5) on 0, +-1, +-2 and infinity (a = 6,
36 multiplies per 2-d tile instead of 100) and F(4, 5) on 0, +-1, +-2, +-1/2 and infinity
(a = 8, 64 instead of 400).  More points, larger entries (B^T of F(4, 5) has 21): F(4x4, 5x5)
is the least accurate variant, about 1e-5 relative in float32 (measured in
``benchmarks/results/conv-algos-*.md``; the tests bound it by ``error_bound``).

**2-d F(m x m, r x r)** nests the 1-d algorithm along rows and columns: an a x a input tile
``d`` gives an m x m output tile::

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (a*a multiplies instead of m*m*r*r)

With C input channels the sum over channels moves inside, because the transforms are
linear: ``Y = A^T [ sum_c U_c * V_c ] A`` with ``U = G g G^T`` and ``V = B^T d B``.  For each
of the a*a positions (i, j) in the tile, that sum over c for every output channel and
every tile is one matrix product, which BLAS does at its full rate::

    M[i, j] (K, P) = U[i, j] (K, C) @ V[i, j] (C, P)        K out channels, P = N * tiles

(per group, with groups).  The output tiles cover the output; a size not divisible by m
gets a last, partly outside tile, whose input is zero padding and whose extra outputs
are dropped.

**Backward** is the same algorithm transposed (each step is linear, so its adjoint is the
transposed matrix), sharing one transform of ``gy``::

    gM = A gy A^T                 per output tile (zero where the tile passes the edge)
    gU = gM @ V^T                 per position: (K, P) @ (P, C); gw = G^T gU G
    gV = U^T @ gM                 per position: (C, K) @ (K, P); gx = overlap-add of B gV B^T

so gw too is computed by Winograd, from the V kept from forward (about a*a/m^2 times
the size of x: 4x for F(2,3), 2.25x for F(4,3), 4x for F(4,5), where im2col keeps r*r).  The grad input
is a correlation of gy with the flipped kernel; the transposed algorithm computes it
with the same a*a multiplies per tile.

The readable NumPy references are below; ``kernels/winograd_numba.py`` has Numba
versions of the transforms (same signatures).  The a*a products per group are one stack,
which ``kernels/gemm.py``'s ``gemm_batched`` hands to BLAS in one call (``np.matmul``'s
result, without waking BLAS's threads once per matrix).

**On CUDA** the same op runs ``kernels/winograd.cu``'s transform kernels (one thread per tile
column, through ``kernels/winograd_cuda.py``) and each stack of a*a products is one cuBLAS
``gemmStridedBatchedEx`` in strict FP32 (never TF32: the transforms grow the operands, see
``kernels/gemm.py``).  ``tinyconv.backends.cuda.conv_algorithm`` chooses it (:func:`choose_cuda`).
"""

from fractions import Fraction
from math import gcd, lcm, prod

import numpy as np

from ..autograd import Function
from ..backend import array_module, is_cuda_array, kernel, kernel_mode, recycle, recycled_empty, workspace
from ..backends import cudnn
from ..kernels.gemm import gemm_batched
from .conv import conv_output_size

_F23 = dict(
    BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    G=[[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
    AT=[[1, 1, 1, 0], [0, 1, -1, -1]])
_F43 = dict(
    BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])


def toom_cook(m, r, points):
    """Exact (B^T, G, A^T) of the 1-d F(m, r), as lists of Fractions, from its a - 1 finite points.

    The construction of the module docstring, with a = m + r - 1 and the points p_k plus
    infinity (index a - 1)::

        A^T[i, k] = p_k^i                  A^T[:, a-1] = (0, ..., 0, 1)
        G[k, j]   = p_k^j / N_k            G[a-1]      = (0, ..., 0, 1),  N_k = prod_{l != k} (p_k - p_l)
        B^T[k]    = coefficients (t^0 first) of prod_{l != k} (t - p_l);  B^T[a-1]: of prod_l (t - p_l)

    Each row k of B^T is then scaled to coprime integers (and G's row k by the inverse),
    which changes nothing in exact arithmetic and keeps B^T's entries small integers.
    """
    a = m + r - 1
    p = [Fraction(v) for v in points]
    if len(p) != a - 1 or len(set(p)) != len(p):
        raise ValueError(f"toom_cook: F({m}, {r}) needs {a - 1} distinct finite points, got {points}")

    def monic(roots):                       # coefficients of prod (t - z), lowest degree first
        c = [Fraction(1)]
        for z in roots:
            c = [(c[i - 1] if i else 0) - z * (c[i] if i < len(c) else 0) for i in range(len(c) + 1)]
        return c

    def integers(row):                      # the coprime integer multiple of row, and its factor
        scale = Fraction(lcm(*(c.denominator for c in row)))
        scale /= gcd(*(int(c * scale) for c in row))
        return [c * scale for c in row], scale

    BT, G = [], []
    for k, pk in enumerate(p + [None]):     # None: the point at infinity
        others = p[:k] + p[k + 1:]
        row, scale = integers(monic(others) + [Fraction(0)] * (pk is not None))
        BT.append(row)
        G.append([(pk ** j / prod(pk - z for z in others) if pk is not None else Fraction(int(j == r - 1)))
                  / scale for j in range(r)])
    AT = [[pk ** i for pk in p] + [Fraction(int(i == m - 1))] for i in range(m)]
    return BT, G, AT


#: The finite interpolation points of each F(m, r) made by toom_cook (r = 5; the r = 3
#: matrices are Lavin & Gray's, written out above, the same points scaled by hand).
POINTS = {(2, 5): (0, 1, -1, 2, -2), (4, 5): (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))}

#: (m, r) -> the float64 matrices B^T (a x a), G (a x r), A^T (m x a) of F(m x m, r x r).
TRANSFORMS = {(2, 3): _F23, (4, 3): _F43}
TRANSFORMS.update({mr: dict(zip(("BT", "G", "AT"), toom_cook(*mr, pts))) for mr, pts in POINTS.items()})
TRANSFORMS = {mr: {k: np.array(v, dtype=np.float64) for k, v in t.items()} for mr, t in TRANSFORMS.items()}
TILES, KERNELS = (2, 4), (3, 5)             # the m and r of the variants above


def cuda_matrices_source():
    """The text of ``kernels/winograd_matrices.cuh``: every F(m, r) of ``TRANSFORMS`` as C++ constants.

    Each entry is written as the exact quotient of two integers (1/6 as ``1.0 / 6.0``), which
    the compiler rounds once to the double Python holds; ``winograd.cu``'s kernels fold the
    entries into their arithmetic (zeros and ones cost nothing) and the CUDA launchers check the
    matrices they are handed against the file.  tests/test_cuda_sources.py checks that the
    file is this text; after a change to ``TRANSFORMS``, write it again with
    :func:`write_cuda_matrices`.
    """
    def entry(v):
        f = Fraction(float(v)).limit_denominator(1 << 20)
        if float(f) != v:
            raise ValueError(f"cuda_matrices_source: {v!r} is not a quotient of small integers")
        return f"{f.numerator}.0" if f.denominator == 1 else f"{f.numerator}.0 / {f.denominator}.0"

    def table(name, t):
        rows = ", ".join("{" + ", ".join(entry(v) for v in row) + "}" for row in t)
        return (f"    __device__ __forceinline__ static double {name}(int i, int j) {{\n"
                f"        constexpr double t[{t.shape[0]}][{t.shape[1]}] = {{{rows}}};\n"
                f"        return t[i][j];\n    }}\n")

    out = ["// Generated by tinyconv/functional/conv_winograd.py (cuda_matrices_source) from its TRANSFORMS:",
           "// do not edit.  tc_wino<M, R> holds F(M x M, R x R)'s matrices, A = M + R - 1:",
           "//   bt(i, j) = B^T[i][j] (A x A),  g(i, j) = G[i][j] (A x R),  at(i, j) = A^T[i][j] (M x A).",
           "#ifndef TINYCONV_WINOGRAD_MATRICES_CUH", "#define TINYCONV_WINOGRAD_MATRICES_CUH", "",
           "template <int M, int R>", "struct tc_wino;", ""]
    for (m, r), t in sorted(TRANSFORMS.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        out.append(f"template <>\nstruct tc_wino<{m}, {r}> {{\n    static constexpr int A = {m + r - 1};\n"
                   + table("bt", t["BT"]) + table("g", t["G"]) + table("at", t["AT"]) + "};\n")
    out.append("#endif  // TINYCONV_WINOGRAD_MATRICES_CUH")
    return "\n".join(out) + "\n"


def write_cuda_matrices():
    """Write :func:`cuda_matrices_source` to ``kernels/winograd_matrices.cuh``; returns the path."""
    import os

    from ..kernels.cuda_loader import KERNEL_DIR
    path = os.path.join(KERNEL_DIR, "winograd_matrices.cuh")
    with open(path, "w", encoding="utf-8") as f:
        f.write(cuda_matrices_source())
    return path


def transforms(m, r, dtype, absolute=False):
    """(B^T, G, A^T) of F(m x m, r x r) in ``dtype``; ``absolute`` takes entrywise |.| (for error_bound)."""
    t = TRANSFORMS[m, r]
    return tuple((np.abs(t[k]) if absolute else t[k]).astype(dtype) for k in ("BT", "G", "AT"))


def tiles(OH, OW, m):
    """Tile rows and columns covering an OH x OW output with m x m tiles."""
    return -(-OH // m), -(-OW // m)


# --------------------------------------------------------------------------- NumPy references
# Layouts: V and gV (a*a, C, P), U (a*a, K, C), M and gM (a*a, K, P), with position
# s = i*a + j of the tile and tile p = (n*th + ty)*tw + tx.  Tile (ty, tx) reads the input
# rows ty*m - top ... ty*m - top + a - 1 (and columns likewise): ``top``/``left`` is the padding.


def input_transform_reference(x, BT, m, top, left, th, tw, out=None):
    """V[i*a + j, c, p] = (B^T d B)[i, j] for the a x a input tile d of tile p of x (N, C, H, W).

    Into ``out`` (a*a, C, P) if given (the op passes a recycled array), else a new array.
    """
    a = BT.shape[0]
    N, C, H, W = x.shape
    canvas = np.zeros((N, C, th * m + a - m, tw * m + a - m), dtype=x.dtype)   # x inside its padding
    canvas[:, :, top:top + H, left:left + W] = x[:, :, :th * m + a - m - top, :tw * m + a - m - left]
    d = np.empty((a, a, C, N, th, tw), dtype=x.dtype)
    for u in range(a):
        for v in range(a):                  # d[u, v] = pixel (u, v) of every tile
            d[u, v] = canvas[:, :, u:u + th * m:m, v:v + tw * m:m].transpose(1, 0, 2, 3)
    V = np.einsum("iu,jv,uvcnyx->ijcnyx", BT, BT, d, optimize=True).reshape(a * a, C, N * th * tw)
    return V if out is None else _into(out, V)


def input_adjoint_reference(gV, BT, m, top, left, th, tw, x_shape):
    """The adjoint of input_transform: gx (N, C, H, W) = overlap-add of the tiles B gV B^T."""
    a = BT.shape[0]
    N, C, H, W = x_shape
    gd = np.einsum("iu,jv,ijcnyx->uvncyx", BT, BT, gV.reshape(a, a, C, N, th, tw), optimize=True)
    canvas = np.zeros((N, C, th * m + a - m, tw * m + a - m), dtype=gV.dtype)
    for u in range(a):
        for v in range(a):                  # tiles overlap by a - m pixels: add, do not assign
            canvas[:, :, u:u + th * m:m, v:v + tw * m:m] += gd[u, v]
    gx = np.zeros(x_shape, dtype=gV.dtype)
    hh, ww = min(H, canvas.shape[2] - top), min(W, canvas.shape[3] - left)
    gx[:, :, :hh, :ww] = canvas[:, :, top:top + hh, left:left + ww]
    return gx


def filter_transform_reference(w, G, out=None):
    """U[i*a + j, k, c] = (G g G^T)[i, j] for the r x r kernel g = w[k, c] of w (K, C, r, r); G is a x r."""
    a = G.shape[0]
    U = np.einsum("iu,jv,kcuv->ijkc", G, G, w, optimize=True).reshape(a * a, *w.shape[:2])
    return U if out is None else _into(out, U)


def filter_adjoint_reference(gU, G):
    """The adjoint of filter_transform: gw (K, C, r, r) = G^T gU G per (k, c)."""
    a = G.shape[0]
    return np.einsum("iu,jv,ijkc->kcuv", G, G, gU.reshape(a, a, *gU.shape[1:]), optimize=True)


def output_transform_reference(M, AT, m, N, OH, OW, bias=None):
    """y (N, K, OH, OW): the m x m tile A^T M A of every tile, cropped to OH x OW (+ bias)."""
    a = AT.shape[1]
    th, tw = tiles(OH, OW, m)
    Y = np.einsum("ki,lj,ijonyx->noykxl", AT, AT, M.reshape(a, a, M.shape[1], N, th, tw), optimize=True)
    y = np.ascontiguousarray(Y.reshape(N, M.shape[1], th * m, tw * m)[:, :, :OH, :OW])
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def output_adjoint_reference(gy, AT, m, out=None):
    """The adjoint of output_transform: gM (a*a, K, P) = A gy_tile A^T, gy zero-padded to whole tiles."""
    a = AT.shape[1]
    N, K, OH, OW = gy.shape
    th, tw = tiles(OH, OW, m)
    g = np.zeros((N, K, th * m, tw * m), dtype=gy.dtype)
    g[:, :, :OH, :OW] = gy
    gM = np.einsum("ki,lj,noykxl->ijonyx", AT, AT, g.reshape(N, K, th, m, tw, m), optimize=True)
    return gM.reshape(a * a, K, N * th * tw) if out is None else _into(out, gM.reshape(out.shape))


def _into(out, a):
    out[...] = a
    return out


def _transform(name, like):
    return kernel("winograd", name, like) or globals()[name + "_reference"]


# --------------------------------------------------------------------------- the op


class WinogradConv2dFn(Function):
    """conv2d for 3x3 and 5x5 kernels, stride 1, dilation 1, by Winograd F(m x m, r x r) (module docstring).

    Same results as ``Conv2dFn`` up to float rounding (the error model is
    :func:`error_bound`).  ``padding`` (top, left) pads symmetrically, ``extra`` adds
    rows / columns at the bottom / right (``padding="same"``); they only set the output
    size and where each tile reads.  Groups split the channel dims of U and V, so each
    position is one batched matmul over the groups.
    """

    def __init__(self, padding, groups, m, extra=(0, 0)):
        self.padding, self.groups, self.m, self.extra = padding, groups, m, extra

    def forward(self, x, w, b=None):
        G, m = self.groups, self.m
        (ph, pw), (eh, ew) = self.padding, self.extra
        xp = array_module(x)
        x = xp.ascontiguousarray(x)
        N, C, H, W = x.shape
        K, r = w.shape[0], w.shape[2]
        OH, OW = conv_output_size(H + eh, r, 1, ph), conv_output_size(W + ew, r, 1, pw)
        th, tw = tiles(OH, OW, m)
        BT, Gm, AT = transforms(m, r, x.dtype)
        a, P = BT.shape[0], N * th * tw
        need_x, need_w = self.needs_input_grad[:2]
        # V and U are kept for backward (V for gw, U for gx) in arrays recycled across
        # steps (fresh ones cost a page fault per 4 KiB); release() gives them back.
        keep = lambda shape, needed: recycled_empty(shape, x.dtype, x) if needed else None  # noqa: E731
        V = _transform("input_transform", x)(x, BT, m, ph, pw, th, tw, out=keep((a * a, C, P), need_w))
        U = _transform("filter_transform", x)(xp.ascontiguousarray(w), Gm,
                                              out=keep((a * a, K, C // G), need_x))
        Mt = gemm_batched(U.reshape(a * a, G, K // G, C // G), V.reshape(a * a, G, C // G, P),
                          workspace("winograd.M", (a * a, G, K // G, P), x.dtype, x))
        y = _transform("output_transform", x)(Mt.reshape(a * a, K, P), AT, m, N, OH, OW, b)
        self.geometry = (x.shape, r, OH, OW, th, tw)
        self.save_for_backward(V if need_w else None, U if need_x else None)
        return y

    def release(self):
        saved = self.saved_tensors or ()
        super().release()
        for a in saved:
            if a is not None:
                recycle(a)

    def backward(self, gy):
        V, U = self.saved_tensors
        G, m = self.groups, self.m
        (ph, pw) = self.padding
        x_shape, r, OH, OW, th, tw = self.geometry
        C, K = x_shape[1], gy.shape[1]
        BT, Gm, AT = transforms(m, r, gy.dtype)
        a, P = BT.shape[0], V.shape[2] if V is not None else x_shape[0] * th * tw
        gM = _transform("output_adjoint", gy)(array_module(gy).ascontiguousarray(gy), AT, m,
                                              out=workspace("winograd.gM", (a * a, K, P), gy.dtype, gy))
        gMg = gM.reshape(a * a, G, K // G, P)
        gx = gw = None
        if self.needs_input_grad[0]:        # gV = U^T @ gM per position, then the input adjoint
            # (the CUDA one overwrites gV: a workspace, spent here)
            gV = gemm_batched(U.reshape(a * a, G, K // G, C // G).transpose(0, 1, 3, 2), gMg,
                              workspace("winograd.gV", (a * a, G, C // G, P), gy.dtype, gy))
            gx = _transform("input_adjoint", gy)(gV.reshape(a * a, C, P), BT, m, ph, pw, th, tw, x_shape)
        if self.needs_input_grad[1]:        # gU = gM @ V^T per position, then the filter adjoint
            gU = gemm_batched(gMg, V.reshape(a * a, G, C // G, P).transpose(0, 1, 3, 2),
                              workspace("winograd.gU", (a * a, G, K // G, C // G), gy.dtype, gy))
            gw = _transform("filter_adjoint", gy)(gU.reshape(a * a, K, C // G), Gm)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        gb = gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return gx, gw, gb


# --------------------------------------------------------------------------- algorithm choice

ALGORITHMS = ("auto", "im2col", "winograd", "winograd2x2", "winograd4x4")
#: the tile size m each explicit Winograd setting forces (the same names on the CPU and on CUDA)
FORCED_TILE = {"winograd2x2": 2, "winograd": 4, "winograd4x4": 4}


def applies(x, weight, stride, dilation):
    """Whether Winograd can do this conv2d: float32/64, a 3x3 or 5x5 kernel, stride 1, dilation 1, on
    the CPU or on CUDA with the fast kernels (the NumPy references are CPU code)."""
    device_ok = isinstance(x, np.ndarray) or (is_cuda_array(x) and kernel_mode() == "fast")
    return (device_ok and x.dtype in (np.float32, np.float64)
            and weight.shape[2] == weight.shape[3] and weight.shape[2] in KERNELS
            and stride == (1, 1) and dilation == (1, 1))


def choose(algorithm, x, weight, stride, dilation, groups):
    """The tile size m (2 or 4) conv2d should use for this call, or None for im2col.

    ``"auto"`` picks F(4x4, r x r) by shape from the measured table ``AUTO_RULE``, else
    im2col.  Deterministic: no timing at run time.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"tinyconv.backends.conv_algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "im2col" or not applies(x, weight, stride, dilation):
        return None
    if algorithm in FORCED_TILE:
        return FORCED_TILE[algorithm]
    N, _, H, W = x.shape
    channels = min(x.shape[1], weight.shape[0]) // groups
    tiles4 = N * -(-H // 4) * -(-W // 4)
    return 4 if any(tiles4 >= p and channels >= c for p, c in AUTO_RULE[weight.shape[2]]) else None


#: ``"auto"``'s rule: F(4x4, r x r) when, for some row (p, c) of the kernel size's table,
#: the batch has at least p tiles of 4x4 (N * ceil(H/4) * ceil(W/4), H x W the input) and
#: the layer at least c input and output channels per group; im2col otherwise.  Winograd
#: saves multiplies, but runs a*a smaller GEMMs (36 or 64 per group, each (K, C) @ (C, P))
#: plus transforms that add about a third of the GEMMs' time, so it wins once the GEMMs are
#: long enough (many tiles) and deep enough (many channels).  Measured on the 2-core
#: development machine by ``benchmarks/bench_conv_algos.py --sweep`` (C = K from 16 to 384
#: at 13x13 and 27x27, batch 4 and 16; benchmarks/results/conv-algos-*-sweep-*.md): each
#: row lies on the side of the crossover where Winograd measured faster in every sweep
#: (those of 08:18-08:20 and, with the GEMMs batched, of 17:55-17:58 on 2026-12-03).
AUTO_RULE = {3: ((768, 16), (192, 128), (64, 256)), 5: ((192, 16), (64, 64))}


def choose_cuda(algorithm, x, weight, stride, dilation, groups):
    """The tile size m (2 or 4) conv2d should use on CUDA, or None (im2col or the implicit GEMM).

    ``algorithm`` is ``tinyconv.backends.cuda.conv_algorithm``: ``"winograd"`` /
    ``"winograd4x4"`` and ``"winograd2x2"`` force it where it applies; ``"auto"`` takes
    F(4x4, r x r) for layers of at least ``CUDA_AUTO_MIN_CHANNELS`` channels per group each
    way: all of them in strict arithmetic (float64, or float32 with
    ``tinyconv.backends.cudnn.allow_tf32`` False), only the 5x5 ones
    (``CUDA_AUTO_TF32_KERNELS``) where TF32 is allowed, the 3x3 ones then staying on im2col +
    TF32 cuBLAS.  (Winograd's products are strict FP32 either way.)  A model, not a
    measurement: see ``CUDA_AUTO_MIN_CHANNELS``.
    """
    if not applies(x, weight, stride, dilation):
        return None
    if algorithm in FORCED_TILE:
        return FORCED_TILE[algorithm]
    if algorithm != "auto":
        return None
    strict = x.dtype == np.float64 or not cudnn.allow_tf32
    channels = min(x.shape[1], weight.shape[0]) // groups
    wanted = strict or weight.shape[2] in CUDA_AUTO_TF32_KERNELS
    return 4 if wanted and channels >= CUDA_AUTO_MIN_CHANNELS else None


#: ``"auto"`` on CUDA takes Winograd F(4x4, r x r) for layers with at least this many channels per
#: group in and out (AlexNet's conv2-5: 48 to 384).  Not measured (no GPU has run tinyconv yet): by
#: the model in benchmarks/results/GPU_NOTES.md, a strict-FP32 GEMM there is compute-bound, and
#: F(4x4, 3x3) / F(4x4, 5x5) cut its multiplies to 0.38 / 0.17 of im2col's at 13x13 / 27x27 while
#: moving fewer bytes than the column matrix; narrower layers are memory-bound either way, and
#: their GEMMs (inner dimension C/groups) too short for cuBLAS.  bench_gpu.py's "(winograd)" rows
#: are the check.
CUDA_AUTO_MIN_CHANNELS = 32

#: The kernel sizes for which ``"auto"`` on CUDA takes Winograd (strict FP32) even where TF32 is
#: allowed.  By the same model, F(4x4, 5x5)'s 0.17 of the multiplies at strict FP32's sixth of TF32's
#: rate still beat im2col's column traffic (AlexNet's conv2 on an H100: about 0.43 against 0.71 ms
#: per pass), where F(4x4, 3x3)'s 0.38 do not; and the result is the more accurate one.
CUDA_AUTO_TF32_KERNELS = (5,)


def winograd_conv2d(input, weight, bias, padding, extra, groups, m):
    """conv2d by Winograd F(m x m, r x r); the arguments already checked by ``conv2d``."""
    fn = WinogradConv2dFn(padding, groups, m, extra)
    return fn(input, weight) if bias is None else fn(input, weight, bias)


# --------------------------------------------------------------------------- error model


def error_bound(x, w, padding=(1, 1), groups=1, m=2, extra=(0, 0)):
    """A componentwise bound on |y_float32 - y_exact| of the Winograd forward, as an array like y.

    The model (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1): a sum of n
    rounded products computed in any order has error at most gamma_n = n*u / (1 - n*u)
    times the same sum of absolute values (u = 2^-24 in float32).  Each output is such a
    chain: the input transform (two passes of a terms: 2a), the filter transform (two
    passes of r terms, with G's entries themselves rounded: 2*(r + 1)), the GEMM (C/groups
    terms), the output transform (2a), the bias (1).  So::

        |y_computed - y| <= gamma_n * |A^T| [ sum_c (|G| |g| |G^T|) * (|B^T| |d| |B|) ] |A|,
        n = 4a + 2(r + 1) + C/groups + 1

    where the right-hand side is the same algorithm run on absolute values (in float64).
    This is a worst case; typical errors are far below it (rounding errors mostly cancel),
    and a wrong transform or index errs by O(1), far above it.
    """
    r = w.shape[2]
    a = m + r - 1
    n = 4 * a + 2 * (r + 1) + x.shape[1] // groups + 1
    u = np.finfo(x.dtype).eps / 2
    gamma = n * u / (1 - n * u)
    BT, G, AT = transforms(m, r, np.float64, absolute=True)
    xa, wa = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    N, C, H, W = x.shape
    OH, OW = H + extra[0] + 2 * padding[0] - r + 1, W + extra[1] + 2 * padding[1] - r + 1
    th, tw = tiles(OH, OW, m)
    V = input_transform_reference(xa, BT, m, padding[0], padding[1], th, tw)
    U = filter_transform_reference(wa, G)
    K = w.shape[0]
    Mt = np.matmul(U.reshape(a * a, groups, K // groups, C // groups),
                   V.reshape(a * a, groups, C // groups, -1)).reshape(a * a, K, -1)
    return gamma * output_transform_reference(Mt, AT, m, N, OH, OW)


def backward_error_bounds(x, w, gy, padding=(1, 1), groups=1, m=2, extra=(0, 0)):
    """Componentwise bounds (on gx, on gw) of the Winograd backward, by the model of :func:`error_bound`.

    Same argument, for the transposed algorithm run on absolute values: gx's chain is the
    output adjoint (2a), the filter transform (2*(r + 1)), the GEMM over K/groups, the input
    adjoint (2a) and the overlap-add of up to ceil(a/m)^2 tiles; gw's is the output adjoint
    (2a), the input transform (2a), the GEMM over all P tiles and the filter adjoint
    (two passes of a terms, G rounded: 2*(a + 1)).
    """
    r = w.shape[2]
    a = m + r - 1
    N, C, H, W = x.shape
    K = w.shape[0]
    OH, OW = gy.shape[2:]
    th, tw = tiles(OH, OW, m)
    u = np.finfo(x.dtype).eps / 2
    gamma = lambda n: n * u / (1 - n * u)           # noqa: E731
    BT, G, AT = transforms(m, r, np.float64, absolute=True)
    xa, wa, ga = (np.abs(t).astype(np.float64) for t in (x, w, gy))
    V = input_transform_reference(xa, BT, m, padding[0], padding[1], th, tw)
    V = V.reshape(a * a, groups, C // groups, -1)
    U = filter_transform_reference(wa, G).reshape(a * a, groups, K // groups, C // groups)
    gM = output_adjoint_reference(ga, AT, m).reshape(a * a, groups, K // groups, -1)
    gV = (U.transpose(0, 1, 3, 2) @ gM).reshape(a * a, C, -1)
    gx = input_adjoint_reference(gV, BT, m, padding[0], padding[1], th, tw, x.shape)
    gU = (gM @ V.transpose(0, 1, 3, 2)).reshape(a * a, K, C // groups)
    gw = filter_adjoint_reference(gU, G)
    n_gx = 2 * a + 2 * (r + 1) + K // groups + 2 * a + (-(-a // m)) ** 2
    n_gw = 2 * a + 2 * a + N * th * tw + 2 * (a + 1)
    return gamma(n_gx) * gx, gamma(n_gw) * gw


__all__ = ["WinogradConv2dFn", "winograd_conv2d", "error_bound", "backward_error_bounds", "choose",
           "choose_cuda", "toom_cook", "TRANSFORMS", "AUTO_RULE", "CUDA_AUTO_MIN_CHANNELS",
           "CUDA_AUTO_TF32_KERNELS"]
