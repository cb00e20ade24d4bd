"""CUDA launchers for ``winograd.cu``: the tile transforms of the Winograd convolution.

Same signatures as ``winograd_numba.py`` and the NumPy references of
tinyconv/functional/conv_winograd.py (layouts there and in ``winograd.cu``'s header), so the
op calls whichever ``kernel("winograd", name, x)`` finds for the array's device.  The
transform matrices arrive as NumPy arrays; each is copied to the GPU once and kept
(:func:`_matrix`), so a step uploads nothing.  The a*a products between the transforms are
cuBLAS strided-batched GEMMs (``kernels/gemm.py``'s ``gemm_batched``), not launched here.

One difference from the CPU versions: :func:`input_adjoint` overwrites ``gV`` (its first
kernel turns each tile into B gV B^T in place, the second overlap-adds them into gx); the op
passes a workspace it never reads again.
"""
import numpy as np

from .cuda_loader import check, launch, xp_of

#: kernel name -> templated on the dtype (float and double instances)
KERNELS = {"winograd_input_transform_kernel": True, "winograd_input_adjoint_tiles_kernel": True,
           "winograd_input_adjoint_gather_kernel": True, "winograd_filter_transform_kernel": True,
           "winograd_filter_adjoint_kernel": True, "winograd_output_transform_kernel": True,
           "winograd_output_adjoint_kernel": True}

#: the largest tile a = m + r - 1 the kernels hold (TC_WINO_MAX_A in winograd.cu)
MAX_A = 8

_i32, _i64 = np.int32, np.int64
_matrices = {}


def _matrix(t, like):
    """Transform matrix ``t`` (NumPy) in ``like``'s dtype, C-contiguous, on ``like``'s device.

    On the GPU the copy is made once per (matrix, dtype, device) and cached: the matrices are
    constants of the algorithm, and a fresh upload per call would be a synchronous host copy.
    """
    t = np.ascontiguousarray(t, dtype=like.dtype)
    xp = xp_of(like)
    if xp is np:                                          # host emulation
        return t
    key = (t.tobytes(), t.shape, t.dtype.str, like.device.id)
    if key not in _matrices:
        with xp.cuda.Device(like.device.id):
            _matrices[key] = xp.asarray(t)
    return _matrices[key]


def _square(op, name, t, a=None):
    check(op, name, t, ndim=2)
    if t.shape[0] != t.shape[1] or (a is not None and t.shape[0] != a) or not 1 <= t.shape[0] <= MAX_A:
        raise ValueError(f"{op}: expected {name} square, at most {MAX_A} x {MAX_A}"
                         + (f" and {a} x {a}" if a else "") + f", got {tuple(t.shape)}")
    return t.shape[0]


def _tile_count(op, m, a):
    if not 1 <= m <= a:
        raise ValueError(f"{op}: tile size m = {m} must be between 1 and a = {a}")


def _out(op, out, shape, like):
    xp = xp_of(like)
    if out is None:
        return xp.empty(shape, dtype=like.dtype)
    return check(op, "out", out, shape=shape, dtype=like.dtype, in_place=True)


def input_transform(x, BT, m, top, left, th, tw, out=None):
    """V (a*a, C, N*th*tw): B^T d B of every a x a input tile d of x (N, C, H, W), into ``out`` if given."""
    op = "winograd input_transform"
    check(op, "x", x, ndim=4)
    a = _square(op, "BT", BT)
    _tile_count(op, m, a)
    x = xp_of(x).ascontiguousarray(x)
    N, C, H, W = x.shape
    V = _out(op, out, (a * a, C, N * th * tw), x)
    total = C * N * th * tw
    launch("winograd", "winograd_input_transform_kernel", x.dtype, total,
           (x, _matrix(BT, x), V, _i64(total), _i32(C), _i32(H), _i32(W), _i32(a), _i32(m),
            _i32(top), _i32(left), _i32(th), _i32(tw)))
    return V


def input_adjoint(gV, BT, m, top, left, th, tw, x_shape):
    """gx (``x_shape``): the overlap-add of B gV B^T over the tiles (the input transform's adjoint).

    Overwrites ``gV`` with the tiles' B gV B^T (see the module docstring).
    """
    op = "winograd input_adjoint"
    a = _square(op, "BT", BT)
    _tile_count(op, m, a)
    N, C, H, W = (int(s) for s in x_shape)
    check(op, "gV", gV, shape=(a * a, C, N * th * tw), in_place=True)
    total = C * N * th * tw
    launch("winograd", "winograd_input_adjoint_tiles_kernel", gV.dtype, total,
           (gV, _matrix(BT, gV), _i64(total), _i32(C), _i32(a)))
    gx = xp_of(gV).empty((N, C, H, W), dtype=gV.dtype)
    total = N * C * H * W
    launch("winograd", "winograd_input_adjoint_gather_kernel", gV.dtype, total,
           (gV, gx, _i64(total), _i32(C), _i32(H), _i32(W), _i32(a), _i32(m), _i32(top), _i32(left),
            _i32(th), _i32(tw)))
    return gx


def _filter_matrix(op, G):
    check(op, "G", G, ndim=2)
    a, r = G.shape
    if not 1 <= r <= a <= MAX_A:
        raise ValueError(f"{op}: expected G of shape (a, r) with r <= a <= {MAX_A}, got {tuple(G.shape)}")
    return a, r


def filter_transform(w, G, out=None):
    """U (a*a, K, Cg): G g G^T of every r x r kernel g = w[k, c] of w (K, Cg, r, r), into ``out`` if given."""
    op = "winograd filter_transform"
    a, r = _filter_matrix(op, G)
    check(op, "w", w, ndim=4)
    if w.shape[2:] != (r, r):
        raise ValueError(f"{op}: expected w of shape (K, Cg, {r}, {r}) for G {tuple(G.shape)}, "
                         f"got {tuple(w.shape)}")
    w = xp_of(w).ascontiguousarray(w)
    K, Cg = w.shape[:2]
    U = _out(op, out, (a * a, K, Cg), w)
    total = K * Cg
    launch("winograd", "winograd_filter_transform_kernel", w.dtype, total,
           (w, _matrix(G, w), U, _i64(total), _i32(a), _i32(r)))
    return U


def filter_adjoint(gU, G):
    """gw (K, Cg, r, r) = G^T gU G per (k, c): the filter transform's adjoint."""
    op = "winograd filter_adjoint"
    a, r = _filter_matrix(op, G)
    check(op, "gU", gU, ndim=3)
    if gU.shape[0] != a * a:
        raise ValueError(f"{op}: expected gU of shape ({a * a}, K, Cg) for G {tuple(G.shape)}, "
                         f"got {tuple(gU.shape)}")
    gU = xp_of(gU).ascontiguousarray(gU)
    K, Cg = gU.shape[1:]
    gw = xp_of(gU).empty((K, Cg, r, r), dtype=gU.dtype)
    total = K * Cg
    launch("winograd", "winograd_filter_adjoint_kernel", gU.dtype, total,
           (gU, _matrix(G, gU), gw, _i64(total), _i32(a), _i32(r)))
    return gw


def _output_matrix(op, AT, m):
    check(op, "AT", AT, ndim=2)
    if AT.shape[0] != m or not 1 <= m <= AT.shape[1] <= MAX_A:
        raise ValueError(f"{op}: expected AT of shape ({m}, a) with {m} <= a <= {MAX_A}, "
                         f"got {tuple(AT.shape)}")
    return AT.shape[1]


def output_transform(M, AT, m, N, OH, OW, bias=None):
    """y (N, K, OH, OW): the m x m tile A^T M A of every tile of M (a*a, K, P), cropped (+ bias)."""
    op = "winograd output_transform"
    a = _output_matrix(op, AT, m)
    th, tw = -(-OH // m), -(-OW // m)
    check(op, "M", M, ndim=3)
    K = M.shape[1]
    check(op, "M", M, shape=(a * a, K, N * th * tw))
    xp = xp_of(M)
    M = xp.ascontiguousarray(M)
    if bias is not None:
        bias = xp.ascontiguousarray(check(op, "bias", bias, shape=(K,), dtype=M.dtype))
    y = xp.empty((N, K, OH, OW), dtype=M.dtype)
    total = K * N * th * tw
    launch("winograd", "winograd_output_transform_kernel", M.dtype, total,
           (M, _matrix(AT, M), M if bias is None else bias, y, _i64(total), _i32(K), _i32(OH), _i32(OW),
            _i32(a), _i32(m), _i32(th), _i32(tw), _i32(bias is not None)))
    return y


def output_adjoint(gy, AT, m, out=None):
    """gM (a*a, K, N*th*tw) = A g A^T of every m x m tile g of gy (N, K, OH, OW), zero-padded
    (into ``out`` if given)."""
    op = "winograd output_adjoint"
    a = _output_matrix(op, AT, m)
    check(op, "gy", gy, ndim=4)
    gy = xp_of(gy).ascontiguousarray(gy)
    N, K, OH, OW = gy.shape
    th, tw = -(-OH // m), -(-OW // m)
    gM = _out(op, out, (a * a, K, N * th * tw), gy)
    total = K * N * th * tw
    launch("winograd", "winograd_output_adjoint_kernel", gy.dtype, total,
           (gy, _matrix(AT, gy), gM, _i64(total), _i32(K), _i32(OH), _i32(OW), _i32(a), _i32(m),
            _i32(th), _i32(tw)))
    return gM
