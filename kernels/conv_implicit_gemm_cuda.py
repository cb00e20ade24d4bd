"""CUDA launchers for ``conv_implicit_gemm.cu``: conv2d's three products without a column matrix.

:func:`forward` (y = W * im2col(x) + b, written NCHW), :func:`backward_data` (gx, the
transposed convolution, split by stride phase) and :func:`backward_filter` (gW, split-K
over N*OH*OW with a deterministic second pass).  The column matrix is never stored: each
kernel forms its tiles of it in shared memory (see the header of the ``.cu`` file).
Memory each call allocates: its output, and for :func:`backward_filter` with S > 1
splits an (S, O, C/G*kh*kw) buffer of partial sums (a few MB at AlexNet's shapes).

Every launcher checks shapes and dtypes before launching (a kernel trusts its sizes) and
takes float32 or float64 CuPy arrays (NumPy arrays under the host emulation of the tests).
These are strict FP32 (or FP64) SIMT kernels; TF32 tensor cores stay with cuBLAS
(``kernels/gemm.py``) behind im2col: see ``tinyconv.backends.cuda.conv_algorithm``.
"""
import numpy as np

from ._geometry import out_size
from .cuda_loader import check, launch, xp_of

#: the tile shapes: name -> (BM, BN) rows x columns of the GEMM per block (256 threads)
TILES = {"wide": (128, 128), "mid": (64, 128), "narrow": (4, 256)}
PASSES = ("forward", "backward_data", "backward_filter")

#: kernel name -> templated on the dtype (float and double instances)
KERNELS = {f"igemm_{p}_{t}_kernel": True for p in PASSES for t in TILES}
KERNELS["igemm_splitk_sum_kernel"] = True
#: the kernels whose threads share memory and meet at barriers (host emulation: coroutines)
COOPERATIVE = tuple(k for k in KERNELS if k != "igemm_splitk_sum_kernel")

THREADS = 256
#: backward-filter splits its reduction until the launch has about this many blocks (a few
#: per SM on an H100's 132), each split at least MIN_SPLIT_LENGTH reduction steps long
TARGET_BLOCKS = 1024
MIN_SPLIT_LENGTH = 512

_i32, _i64 = np.int32, np.int64


def tile_for(rows):
    """The tile shape for a GEMM of ``rows`` rows: narrow up to 8 rows, else the one of wide
    and mid that pads the rows least (wide on a tie: it re-reads the columns half as often)."""
    if rows <= 8:
        return "narrow"
    padded = {t: -(-rows // TILES[t][0]) * TILES[t][0] for t in ("wide", "mid")}
    return "mid" if padded["mid"] < padded["wide"] else "wide"


def _cdiv(a, b):
    return -(-a // b)


def _check_conv(op, x_shape, w_shape, stride, padding, dilation, groups):
    """(N, C, H, W, O, kh, kw, OH, OW) after checking the geometry of a convolution."""
    N, C, H, W = x_shape
    O, Cg, kh, kw = w_shape
    if groups < 1 or C != Cg * groups or O % groups:
        raise ValueError(f"{op}: weight {tuple(w_shape)} with groups={groups} does not fit an input of "
                         f"{C} channels (expected C = weight.shape[1] * groups and groups dividing "
                         f"weight.shape[0])")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if min(sh, sw, dh, dw, kh, kw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{op}: stride {stride}, dilation {dilation} and kernel ({kh}, {kw}) must be >= 1, "
                         f"padding {padding} >= 0")
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    if OH < 1 or OW < 1:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) dilated by {dilation} is larger than the padded input "
                         f"({H + 2 * ph}, {W + 2 * pw})")
    for n in (N * C * H * W, O * Cg * kh * kw, N * O * OH * OW):
        if n >= 2**62:
            raise ValueError(f"{op}: sizes too large for 64-bit indices")
    if max(N, C, H, W, O) >= 2**31:
        raise ValueError(f"{op}: a dimension exceeds the kernels' 32-bit int")
    return N, C, H, W, O, kh, kw, OH, OW


def _geometry(N, C, H, W, O, G, kh, kw, stride, padding, dilation, OH, OW):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    return tuple(_i32(v) for v in (N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW))


def _check_array(op, name, a, shape, dtype):
    check(op, name, a, ndim=len(shape))
    check(op, name, a, shape=shape, dtype=dtype)
    return xp_of(a).ascontiguousarray(a)


def _check_dtype(op, a):
    check(op, "x", a, ndim=4)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: CUDA kernels take float32 or float64 arrays, got {a.dtype}")


def _out(op, out, shape, dtype, xp):
    if out is None:
        return xp.empty(shape, dtype=dtype)
    return check(op, "out", out, shape=shape, dtype=dtype, in_place=True)


def forward(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, out=None):
    """y (N, O, OH, OW) = conv2d(x, w, b): x (N, C, H, W), w (O, C/groups, kh, kw), b (O,) or None."""
    op = "conv_implicit_gemm.forward"
    _check_dtype(op, x)
    check(op, "w", w, ndim=4)
    N, C, H, W, O, kh, kw, OH, OW = _check_conv(op, x.shape, w.shape, stride, padding, dilation, groups)
    xp = xp_of(x)
    x = xp.ascontiguousarray(x)
    w = _check_array(op, "w", w, w.shape, x.dtype)
    if b is not None:
        b = _check_array(op, "b", b, (O,), x.dtype)
    y = _out(op, out, (N, O, OH, OW), x.dtype, xp)
    M = O // groups
    tile = tile_for(M)
    BM, BN = TILES[tile]
    grid = groups * _cdiv(M, BM) * _cdiv(N * OH * OW, BN)
    args = (x, w, x if b is None else b, _i32(b is not None), y) + _geometry(
        N, C, H, W, O, groups, kh, kw, stride, padding, dilation, OH, OW)
    launch("conv_implicit_gemm", f"igemm_forward_{tile}_kernel", x.dtype, grid, args, grid=grid,
           block=THREADS)
    return y


def backward_data(gy, w, x_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, out=None):
    """gx (N, C, H, W) of conv2d from gy (N, O, OH, OW) and w (O, C/groups, kh, kw)."""
    op = "conv_implicit_gemm.backward_data"
    check(op, "gy", gy, ndim=4)
    check(op, "w", w, ndim=4)
    if len(x_shape) != 4:
        raise ValueError(f"{op}: expected x_shape (N, C, H, W), got {tuple(x_shape)}")
    N, C, H, W, O, kh, kw, OH, OW = _check_conv(op, x_shape, w.shape, stride, padding, dilation, groups)
    _check_dtype(op, gy)
    gy = _check_array(op, "gy", gy, (N, O, OH, OW), gy.dtype)
    w = _check_array(op, "w", w, w.shape, gy.dtype)
    gx = _out(op, out, (N, C, H, W), gy.dtype, xp_of(gy))
    (sh, sw) = stride
    Cg = C // groups
    tile = tile_for(Cg)
    BM, BN = TILES[tile]
    # one block column per BN pixels of the largest phase, sh*sw phases, per group
    grid = groups * sh * sw * _cdiv(Cg, BM) * _cdiv(N * _cdiv(H, sh) * _cdiv(W, sw), BN)
    args = (gy, w, gx) + _geometry(N, C, H, W, O, groups, kh, kw, stride, padding, dilation, OH, OW)
    launch("conv_implicit_gemm", f"igemm_backward_data_{tile}_kernel", gy.dtype, grid, args, grid=grid,
           block=THREADS)
    return gx


def splits_for(tiles, reduction):
    """How many ranges backward-filter splits its reduction of length ``reduction`` into."""
    return int(max(1, min(_cdiv(TARGET_BLOCKS, tiles), reduction // MIN_SPLIT_LENGTH)))


def backward_filter(gy, x, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, out=None,
                    splits=None):
    """gw (O, C/groups, kh, kw) of conv2d from gy (N, O, OH, OW) and x (N, C, H, W).

    ``splits`` (default :func:`splits_for`) ranges of the reduction over N*OH*OW, summed
    in order by a second kernel.
    """
    op = "conv_implicit_gemm.backward_filter"
    _check_dtype(op, x)
    check(op, "gy", gy, ndim=4)
    if len(w_shape) != 4:
        raise ValueError(f"{op}: expected w_shape (O, C/groups, kh, kw), got {tuple(w_shape)}")
    N, C, H, W, O, kh, kw, OH, OW = _check_conv(op, x.shape, w_shape, stride, padding, dilation, groups)
    xp = xp_of(x)
    x = xp.ascontiguousarray(x)
    gy = _check_array(op, "gy", gy, (N, O, OH, OW), x.dtype)
    gw = _out(op, out, tuple(w_shape), x.dtype, xp)
    M, K, R = O // groups, (C // groups) * kh * kw, N * OH * OW
    tile = tile_for(M)
    BM, BN = TILES[tile]
    tiles = groups * _cdiv(M, BM) * _cdiv(K, BN)
    S = splits_for(tiles, R) if splits is None else int(splits)
    if S < 1:
        raise ValueError(f"{op}: splits must be >= 1, got {splits}")
    # each split a whole number of BK = 8 reduction steps (the last one shorter)
    chunk = _cdiv(_cdiv(R, S), 8) * 8 if R else 8
    part = gw if S == 1 else xp.empty((S, O, K), dtype=x.dtype)
    grid = S * tiles
    args = (gy, x, part, _i64(chunk)) + _geometry(N, C, H, W, O, groups, kh, kw, stride, padding, dilation,
                                                  OH, OW)
    launch("conv_implicit_gemm", f"igemm_backward_filter_{tile}_kernel", x.dtype, grid, args, grid=grid,
           block=THREADS)
    if S > 1:
        total = O * K
        launch("conv_implicit_gemm", "igemm_splitk_sum_kernel", x.dtype, total,
               (part, gw, _i64(total), _i32(S)))
    return gw
