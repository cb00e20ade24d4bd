"""Window geometry shared by the Numba and CUDA launchers (imports nothing of tinyconv)."""


def out_size(size, k, s, p, d=1, ceil_mode=False):
    """How many windows of ``k`` taps ``d`` apart fit at stride ``s`` over ``size`` plus ``p``
    padding each side (a window spans d*(k - 1) + 1): floor((size + 2p - d(k - 1) - 1) / s) + 1.

    The one output-size formula of convolution and pooling (tinyconv.functional re-exports it
    as ``conv_output_size``).  ``ceil_mode`` (pooling) rounds up, as PyTorch, but the last
    window must start inside the input or its left padding.
    """
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def col2im_geometry(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """(N, C, H, W, OH, OW) for col2im, after checking that ``cols`` is (N, C*kh*kw, OH*OW)."""
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    if cols.shape != (N, C * kh * kw, OH * OW):
        raise ValueError(f"col2im: expected cols of shape {(N, C * kh * kw, OH * OW)} for x_shape "
                         f"{tuple(x_shape)}, got {cols.shape}")
    return N, C, H, W, OH, OW


def check_out(out, shape, dtype, name):
    """``out`` as given to a kernel: exactly ``shape`` and ``dtype``, C-contiguous."""
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous out of shape {tuple(shape)} and dtype {dtype}, "
                         f"got shape {tuple(out.shape)}, dtype {out.dtype}, "
                         f"C-contiguous={out.flags.c_contiguous}")
    return out


def batched_geometry(gcols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """(N, C, H, W, OH, OW) for col2im_batched, after checking that ``gcols`` is (G, C*kh*kw/G, N*OH*OW)."""
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    CK, L = C * kh * kw, OH * OW
    if gcols.ndim != 3 or gcols.shape[0] * gcols.shape[1] != CK or gcols.shape[2] != N * L:
        raise ValueError(f"col2im_batched: expected gcols of shape (G, {CK}/G, {N * L}) for x_shape "
                         f"{tuple(x_shape)}, got {tuple(gcols.shape)}")
    return N, C, H, W, OH, OW
