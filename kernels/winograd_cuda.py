"""CUDA launchers for ``winograd.cu``: the tile transforms of the Winograd convolution.

Same signatures as ``winograd_numba.py`` and the NumPy references of
tinyconv/functional/conv_winograd.py (layouts there and in ``winograd.cu``'s header), so the
op calls whichever ``kernel("winograd", name, x)`` finds for the array's device.  The
kernels have the transform matrices compiled in (``winograd_matrices.cuh``, one instance per
F(m, r)); the matrices the op hands over only say which instance, and are checked against
that file (:func:`_variant`), so other matrices are refused, not silently replaced.  The a*a
products between the transforms are cuBLAS strided-batched GEMMs (``kernels/gemm.py``'s
``gemm_batched``), not launched here.

One difference from the CPU versions: :func:`input_adjoint` overwrites ``gV`` (its first
kernel turns each tile into B gV B^T in place, the second overlap-adds them into gx); the op
passes a workspace it never reads again.
"""
import os
import re

import numpy as np

from .cuda_loader import KERNEL_DIR, check, launch, xp_of

#: the compiled variants (m, r), as template arguments of every kernel
VARIANTS = ("2, 3", "4, 3", "2, 5", "4, 5")
#: kernel name -> its variants (each instanced for float and double)
KERNELS = {name: VARIANTS for name in (
    "winograd_input_transform_kernel", "winograd_input_adjoint_tiles_kernel",
    "winograd_input_adjoint_gather_kernel", "winograd_filter_transform_kernel",
    "winograd_filter_adjoint_kernel", "winograd_output_transform_kernel", "winograd_output_adjoint_kernel")}

_i32, _i64 = np.int32, np.int64
_tables = None


def compiled_matrices():
    """{(m, r): {"BT", "G", "AT": float64 array}} as ``winograd_matrices.cuh`` compiles them.

    Each entry there is an integer or a quotient of two (``-1.0 / 6.0``), which C++ and Python
    both round once to the nearest double: the same numbers.
    """
    global _tables
    if _tables is None:
        with open(os.path.join(KERNEL_DIR, "winograd_matrices.cuh"), encoding="utf-8") as f:
            text = f.read()
        tables = {}
        for m, r, body in re.findall(r"struct tc_wino<(\d+), (\d+)> \{(.*?)\n\};", text, re.S):
            found = {}
            for name, rows, cols, entries in re.findall(
                    r"static double (\w+)\(int i, int j\) \{\s*constexpr double t\[(\d+)\]\[(\d+)\] = "
                    r"\{(.*?)\};", body, re.S):
                values = [_quotient(e) for e in entries.replace("{", "").replace("}", "").split(",")]
                key = {"bt": "BT", "g": "G", "at": "AT"}[name]
                found[key] = np.array(values).reshape(int(rows), int(cols))
            tables[int(m), int(r)] = found
        _tables = tables
    return _tables


def _quotient(text):
    num, _, den = text.partition("/")
    return float(num) / float(den) if den else float(num)


def _variant(op, name, t, m, r):
    """The template variant ``"m, r"`` after checking that ``t`` is F(m, r)'s matrix ``name`` as compiled."""
    want = compiled_matrices().get((m, r))
    if want is None:
        have = ", ".join(f"F({a}x{a}, {b}x{b})" for a, b in sorted(compiled_matrices()))
        raise ValueError(f"{op}: no kernel for F({m}x{m}, {r}x{r}); compiled: {have}")
    if not isinstance(t, np.ndarray) or t.shape != want[name].shape or not np.array_equal(
            t, want[name].astype(t.dtype)):
        raise ValueError(f"{op}: {name} is not the {name} of F({m}x{m}, {r}x{r}) compiled into winograd.cu "
                         f"(kernels/winograd_matrices.cuh); got {getattr(t, 'shape', type(t).__name__)}")
    return f"{m}, {r}"


def _out(op, out, shape, like):
    xp = xp_of(like)
    if out is None:
        return xp.empty(shape, dtype=like.dtype)
    return check(op, "out", out, shape=shape, dtype=like.dtype, in_place=True)


def _bt_variant(op, BT, m):
    check(op, "BT", BT, ndim=2)
    a = BT.shape[0]
    return a, _variant(op, "BT", BT, m, a - m + 1)


def input_transform(x, BT, m, top, left, th, tw, out=None):
    """V (a*a, C, N*th*tw): B^T d B of every a x a input tile d of x (N, C, H, W), into ``out`` if given."""
    op = "winograd input_transform"
    check(op, "x", x, ndim=4)
    a, variant = _bt_variant(op, BT, m)
    x = xp_of(x).ascontiguousarray(x)
    N, C, H, W = x.shape
    V = _out(op, out, (a * a, C, N * th * tw), x)
    total = C * N * th * tw
    launch("winograd", "winograd_input_transform_kernel", x.dtype, total,
           (x, V, _i64(total), _i32(C), _i32(H), _i32(W), _i32(top), _i32(left), _i32(th), _i32(tw)),
           variant=variant)
    return V


def input_adjoint(gV, BT, m, top, left, th, tw, x_shape):
    """gx (``x_shape``): the overlap-add of B gV B^T over the tiles (the input transform's adjoint).

    Overwrites ``gV`` with the tiles' B gV B^T (see the module docstring).
    """
    op = "winograd input_adjoint"
    a, variant = _bt_variant(op, BT, m)
    N, C, H, W = (int(s) for s in x_shape)
    check(op, "gV", gV, shape=(a * a, C, N * th * tw), in_place=True)
    total = C * N * th * tw
    launch("winograd", "winograd_input_adjoint_tiles_kernel", gV.dtype, total, (gV, _i64(total)),
           variant=variant)
    gx = xp_of(gV).empty((N, C, H, W), dtype=gV.dtype)
    total = N * C * H * W
    launch("winograd", "winograd_input_adjoint_gather_kernel", gV.dtype, total,
           (gV, gx, _i64(total), _i32(C), _i32(H), _i32(W), _i32(top), _i32(left), _i32(th), _i32(tw)),
           variant=variant)
    return gx


def _g_variant(op, G):
    check(op, "G", G, ndim=2)
    a, r = G.shape
    return a, r, _variant(op, "G", G, a - r + 1, r)


def filter_transform(w, G, out=None):
    """U (a*a, K, Cg): G g G^T of every r x r kernel g = w[k, c] of w (K, Cg, r, r), into ``out`` if given."""
    op = "winograd filter_transform"
    a, r, variant = _g_variant(op, G)
    check(op, "w", w, ndim=4)
    if w.shape[2:] != (r, r):
        raise ValueError(f"{op}: expected w of shape (K, Cg, {r}, {r}) for G {tuple(G.shape)}, "
                         f"got {tuple(w.shape)}")
    w = xp_of(w).ascontiguousarray(w)
    K, Cg = w.shape[:2]
    U = _out(op, out, (a * a, K, Cg), w)
    total = K * Cg
    launch("winograd", "winograd_filter_transform_kernel", w.dtype, total, (w, U, _i64(total)),
           variant=variant)
    return U


def filter_adjoint(gU, G):
    """gw (K, Cg, r, r) = G^T gU G per (k, c): the filter transform's adjoint."""
    op = "winograd filter_adjoint"
    a, r, variant = _g_variant(op, G)
    check(op, "gU", gU, ndim=3)
    if gU.shape[0] != a * a:
        raise ValueError(f"{op}: expected gU of shape ({a * a}, K, Cg) for G {tuple(G.shape)}, "
                         f"got {tuple(gU.shape)}")
    gU = xp_of(gU).ascontiguousarray(gU)
    K, Cg = gU.shape[1:]
    gw = xp_of(gU).empty((K, Cg, r, r), dtype=gU.dtype)
    total = K * Cg
    launch("winograd", "winograd_filter_adjoint_kernel", gU.dtype, total, (gU, gw, _i64(total)),
           variant=variant)
    return gw


def _at_variant(op, AT, m):
    check(op, "AT", AT, ndim=2)
    a = AT.shape[1]
    return a, _variant(op, "AT", AT, m, a - m + 1)


def output_transform(M, AT, m, N, OH, OW, bias=None):
    """y (N, K, OH, OW): the m x m tile A^T M A of every tile of M (a*a, K, P), cropped (+ bias)."""
    op = "winograd output_transform"
    a, variant = _at_variant(op, AT, m)
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
           (M, M if bias is None else bias, y, _i64(total), _i32(K), _i32(OH), _i32(OW), _i32(th), _i32(tw),
            _i32(bias is not None)), variant=variant)
    return y


def output_adjoint(gy, AT, m, out=None):
    """gM (a*a, K, N*th*tw) = A g A^T of every m x m tile g of gy (N, K, OH, OW), zero-padded
    (into ``out`` if given)."""
    op = "winograd output_adjoint"
    a, variant = _at_variant(op, AT, m)
    check(op, "gy", gy, ndim=4)
    gy = xp_of(gy).ascontiguousarray(gy)
    N, K, OH, OW = gy.shape
    th, tw = -(-OH // m), -(-OW // m)
    gM = _out(op, out, (a * a, K, N * th * tw), gy)
    total = K * N * th * tw
    launch("winograd", "winograd_output_adjoint_kernel", gy.dtype, total,
           (gy, gM, _i64(total), _i32(K), _i32(OH), _i32(OW), _i32(th), _i32(tw)), variant=variant)
    return gM
