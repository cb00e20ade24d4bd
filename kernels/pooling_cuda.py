"""CUDA launchers for ``pooling.cu``: max-pool forward with arg-max, and backward in gather form.

Contract (tinyconv/functional/pooling.py): argmax is int64, shaped like y, holding the flat
index h*W + w of the winner inside its (n, c) plane; the first maximum wins ties.
"""
import numpy as np

from ._geometry import out_size
from .cuda_loader import launch, xp_of

KERNELS = {"max_pool2d_forward_kernel": True, "max_pool2d_backward_kernel": True,
           "max_pool2d_backward_plane_kernel": True, "max_pool2d_row_bounds_kernel": False,
           "max_pool2d_col_bounds_kernel": False, "max_pool2d_backward_bounds_kernel": True}

_i32, _i64 = np.int32, np.int64


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """x (N, C, H, W) -> (y, argmax), both (N, C, OH, OW); (dh, dw) is the dilation."""
    xp = xp_of(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = xp.empty((N, C, OH, OW), dtype=np.int64)
    total = N * C * OH * OW
    launch("pooling", "max_pool2d_forward_kernel", x.dtype, total,
           (x, y, argmax, _i64(total), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(kh), _i32(kw),
            _i32(sh), _i32(sw), _i32(ph), _i32(pw), _i32(dh), _i32(dw)))
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel_size=None, stride=None, padding=None, method=None,
                        dilation=(1, 1)):
    """gx (``x_shape``): gy summed onto the arg-max pixels, deterministically (no atomics).

    ``method``:
      * ``"gather"`` (the default when the geometry ``kernel_size``, ``stride``, ``padding``
        and ``dilation`` is given, as pairs): one thread per input pixel sums the outputs
        with a window tap on it;
      * ``"bounds"`` (the default for the contract call ``(gy, argmax, x_shape)``, which
        carries no geometry): per output row and column the range of input rows and
        columns its arg-maxes hit, then one thread per input pixel sums the outputs whose
        ranges hold it;
      * ``"plane"``: the plain twin, one thread per (n, c) plane walking its outputs.
    All three add in the same (oh, ow) order, so they agree bit for bit.
    """
    xp = xp_of(gy)
    gy = xp.ascontiguousarray(gy)
    argmax = xp.ascontiguousarray(argmax, dtype=np.int64)
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = gy.shape[2], gy.shape[3]
    if argmax.shape != gy.shape:
        raise ValueError(f"max_pool2d_backward: argmax shape {argmax.shape} != gy shape {gy.shape}")
    method = method or ("bounds" if kernel_size is None else "gather")
    total = N * C * H * W
    if method == "plane":
        gx = xp.zeros((N, C, H, W), dtype=gy.dtype)    # the plane kernel accumulates into zeros
        launch("pooling", "max_pool2d_backward_plane_kernel", gy.dtype, N * C,
               (gy, argmax, gx, _i64(N * C), _i64(H * W), _i64(OH * OW)))
        return gx
    gx = xp.empty((N, C, H, W), dtype=gy.dtype)
    if method == "bounds":
        rlo, rhi = xp.empty(N * C * OH, dtype=np.int32), xp.empty(N * C * OH, dtype=np.int32)
        clo, chi = xp.empty(N * C * OW, dtype=np.int32), xp.empty(N * C * OW, dtype=np.int32)
        launch("pooling", "max_pool2d_row_bounds_kernel", None, N * C * OH,
               (argmax, rlo, rhi, _i64(N * C * OH), _i32(W), _i32(OW)))
        launch("pooling", "max_pool2d_col_bounds_kernel", None, N * C * OW,
               (argmax, clo, chi, _i64(N * C * OW), _i32(W), _i32(OH), _i32(OW)))
        launch("pooling", "max_pool2d_backward_bounds_kernel", gy.dtype, total,
               (gy, argmax, rlo, rhi, clo, chi, gx, _i64(total), _i32(H), _i32(W), _i32(OH), _i32(OW)))
        return gx
    if method != "gather" or kernel_size is None:
        raise ValueError(f"max_pool2d_backward: method must be 'gather' (with the geometry), 'bounds' "
                         f"or 'plane', got {method!r}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    launch("pooling", "max_pool2d_backward_kernel", gy.dtype, total,
           (gy, argmax, gx, _i64(total), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(kh), _i32(kw),
            _i32(sh), _i32(sw), _i32(ph), _i32(pw), _i32(dh), _i32(dw)))
    return gx
