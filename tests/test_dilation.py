"""Dilation in conv2d and max_pool2d, and conv2d's padding="same" / "valid".

The NumPy references against a by-definition loop, the fast kernels (Numba; the CUDA
sources run on the CPU in test_cuda_sources.py) against the references, the ops against
PyTorch (forward and backward, both kernel paths), float64 gradchecks, and bad input.
"""
import warnings

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.functional as F
import tinyconv.nn as nn
from tinyconv.backend import kernel
from tinyconv.functional import conv
from tinyconv.functional.conv import col2im_reference, im2col_reference
from tinyconv.functional.pooling import max_pool2d_backward_reference, max_pool2d_forward_reference

# --------------------------------------------------------------------------- im2col / col2im


def _im2col_by_definition(x, kh, kw, sh, sw, ph, pw, dh, dw):
    """cols[n, (c*kh + i)*kw + j, oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]."""
    N, C, H, W = x.shape
    OH, OW = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((N, C * kh * kw, OH * OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                cols[n, (c * kh + i) * kw + j, oh * OW + ow] = x[n, c, h, w]
    return cols


GEOMETRIES = [  # (x shape, kh, kw, sh, sw, ph, pw, dh, dw)
    ((2, 3, 7, 7), 3, 3, 1, 1, 0, 0, 2, 2),
    ((1, 2, 9, 8), 3, 2, 2, 1, 2, 1, 3, 2),
    ((2, 1, 10, 11), 2, 3, 3, 2, 1, 2, 2, 3),
    ((1, 2, 3, 3), 3, 3, 1, 1, 2, 2, 2, 2),      # dilated kernel == padded input
    ((1, 2, 12, 12), 3, 3, 4, 4, 0, 1, 1, 5),    # stride > dilated span: pixels nobody reads
    ((1, 3, 6, 5), 1, 1, 2, 1, 0, 0, 3, 3),      # 1x1 kernel: dilation changes nothing
]


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_im2col_reference_matches_definition(geom):
    shape, *args = geom
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_array_equal(im2col_reference(x, *args), _im2col_by_definition(x, *args))


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(geom):
    shape, *args = geom
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(im2col_reference(x, *args).shape)
    np.testing.assert_allclose(np.sum(im2col_reference(x, *args) * cols),
                               np.sum(x * col2im_reference(cols, shape, *args)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_fast_conv_kernels_equal_reference(geom, dtype):
    """The Numba im2col / col2im, plain and in conv2d's batched GEMM layout, with dilation."""
    shape, kh, kw, sh, sw, ph, pw, dh, dw = geom
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    with tc.use_kernels("fast"):
        names = ("im2col", "col2im", "im2col_batched", "col2im_batched")
        fast = {n: kernel("conv", n, x) for n in names}
    if any(f is None for f in fast.values()):
        pytest.skip("no fast conv kernel for this device")
    g = (kh, kw, sh, sw, ph, pw)
    ref = im2col_reference(x, *g, dh, dw)
    np.testing.assert_array_equal(fast["im2col"](x, *g, dh, dw), ref)
    gc = rng.standard_normal(ref.shape).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    ref_gx = col2im_reference(gc, shape, *g, dh, dw)
    np.testing.assert_allclose(fast["col2im"](gc, shape, *g, dh, dw), ref_gx, rtol=tol, atol=tol)
    groups = shape[1]
    N, CK, L = ref.shape
    K = CK // groups
    batched = ref.reshape(N, groups, K, L).transpose(1, 2, 0, 3).reshape(groups, K, N * L)
    np.testing.assert_array_equal(fast["im2col_batched"](x, *g, groups, dh=dh, dw=dw), batched)
    gb = np.ascontiguousarray(gc.reshape(N, groups, K, L).transpose(1, 2, 0, 3)).reshape(groups, K, N * L)
    np.testing.assert_allclose(fast["col2im_batched"](gb, shape, *g, dh=dh, dw=dw), ref_gx,
                               rtol=tol, atol=tol)


# --------------------------------------------------------------------------- conv2d against PyTorch

CONV_CASES = [  # (x shape, (O, kh, kw), stride, padding, dilation, groups)
    ((2, 3, 9, 9), (4, 3, 3), 1, 0, 1, 1),
    ((2, 3, 9, 9), (4, 3, 3), 1, 0, 2, 1),
    ((2, 3, 11, 10), (4, 3, 3), 1, 2, 3, 1),
    ((1, 4, 12, 13), (6, 3, 2), (2, 1), (1, 2), (2, 3), 2),
    ((2, 6, 10, 10), (6, 2, 2), 3, 1, (3, 1), 3),
    ((1, 2, 5, 5), (2, 3, 3), 1, 2, 3, 1),               # dilated span 7 == padded input
]


def _conv_both(torch, case, dtype, padding=None):
    xs, (O, kh, kw), stride, pad, dil, groups = case
    pad = pad if padding is None else padding
    rng = np.random.default_rng(4)
    xa = rng.standard_normal(xs).astype(dtype)
    wa = rng.standard_normal((O, xs[1] // groups, kh, kw)).astype(dtype)
    ba = rng.standard_normal(O).astype(dtype)
    x, w, b = (tc.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    y = F.conv2d(x, w, b, stride, pad, dil, groups)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(tc.tensor(gy))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    with warnings.catch_warnings():       # PyTorch's note that an odd "same" total copies the input
        warnings.simplefilter("ignore")
        yt = torch.nn.functional.conv2d(xt, wt, bt, stride, pad, dil, groups)
    yt.backward(torch.tensor(gy))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    for ours, theirs in [(y, yt), (x.grad, xt.grad), (w.grad, wt.grad), (b.grad, bt.grad)]:
        assert ours.shape == tuple(theirs.shape) and ours.dtype == dtype
        np.testing.assert_allclose(ours.array, theirs.detach().numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES)
def test_dilated_conv_matches_torch(kernel_mode, torch, case, dtype):
    _conv_both(torch, case, dtype)


@pytest.mark.parametrize("chunk_samples", [1, 2])
def test_dilated_conv_in_chunks_matches_torch(kernel_mode, torch, monkeypatch, chunk_samples):
    monkeypatch.setattr(conv, "CPU_CHUNK_BYTES", chunk_samples * 600 * 8)   # a few samples per chunk
    _conv_both(torch, ((5, 4, 8, 8), (4, 3, 3), 1, 1, 2, 2), np.float64)


@pytest.mark.parametrize("case", [((2, 2, 7, 6), (3, 3, 2), 1, 1, 2, 1),
                                  ((1, 4, 8, 8), (4, 2, 3), 2, (2, 1), 3, 2)])
def test_dilated_conv_gradcheck(kernel_mode, case):
    xs, (O, kh, kw), stride, pad, dil, groups = case
    rng = np.random.default_rng(5)
    x = tc.tensor(rng.standard_normal(xs), requires_grad=True)
    w = tc.tensor(rng.standard_normal((O, xs[1] // groups, kh, kw)), requires_grad=True)
    b = tc.tensor(rng.standard_normal(O), requires_grad=True)
    assert tc.gradcheck(lambda *t: F.conv2d(*t, stride, pad, dil, groups), [x, w, b])


SAME_CASES = [  # (x shape, (O, kh, kw), dilation, groups): odd totals pad one more at the bottom / right
    ((2, 3, 7, 7), (4, 3, 3), 1, 1),
    ((2, 3, 7, 6), (4, 2, 2), 1, 1),           # total 1: all of it at the bottom / right
    ((1, 4, 6, 9), (2, 4, 3), (1, 3), 2),      # total 3 rows, 6 columns
    ((2, 2, 8, 14), (2, 2, 5), 3, 1),          # total 3 and 12
    ((1, 2, 3, 3), (2, 1, 1), 2, 1),           # 1x1 kernel: nothing to pad
]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("case", SAME_CASES)
def test_padding_strings_match_torch(kernel_mode, torch, case, padding):
    xs, ks, dil, groups = case
    _conv_both(torch, (xs, ks, 1, None, dil, groups), np.float64, padding=padding)


def test_same_keeps_the_size_and_gradchecks(kernel_mode):
    rng = np.random.default_rng(6)
    x = tc.tensor(rng.standard_normal((2, 2, 5, 6)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((3, 2, 2, 3)), requires_grad=True)
    assert F.conv2d(x, w, padding="same", dilation=(2, 1)).shape == (2, 3, 5, 6)
    assert tc.gradcheck(lambda x, w: F.conv2d(x, w, padding="same", dilation=(3, 2)), [x, w])
    assert F.conv2d(x, w, padding="valid").shape == F.conv2d(x, w).shape


def test_conv2d_module_with_dilation_and_same_matches_torch(torch):
    for kw in [dict(padding="same", dilation=2), dict(padding="valid"),
               dict(padding=1, dilation=(2, 3), stride=2),
               dict(padding="same", dilation=(1, 2), groups=2, bias=False)]:
        ours, theirs = nn.Conv2d(4, 6, (3, 2), **kw), torch.nn.Conv2d(4, 6, (3, 2), **kw)
        assert repr(ours) == repr(theirs)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(7).standard_normal((2, 4, 9, 8)).astype(np.float32)
        np.testing.assert_allclose(ours(tc.tensor(x)).array, theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_unbatched_dilated_conv(torch):
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((3, 8, 8)), rng.standard_normal((2, 3, 3, 3))
    ours = F.conv2d(tc.tensor(x), tc.tensor(w), padding="same", dilation=2)
    theirs = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same", dilation=2)
    np.testing.assert_allclose(ours.array, theirs.numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- max_pool2d


def _max_pool_by_definition(x, kh, kw, sh, sw, ph, pw, dh, dw):
    N, C, H, W = x.shape
    OH, OW = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y, arg = np.empty((N, C, OH, OW)), np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, where = -np.inf, None
                    for i in range(kh):
                        for j in range(kw):
                            h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W and (where is None or x[n, c, h, w] > best):
                                best, where = x[n, c, h, w], h * W + w
                    y[n, c, oh, ow], arg[n, c, oh, ow] = best, where
    return y, arg


POOL_GEOMETRIES = [  # (x shape, kh, kw, sh, sw, ph, pw, dh, dw)
    ((2, 3, 9, 9), 3, 3, 2, 2, 0, 0, 2, 2),
    ((1, 2, 10, 9), 3, 2, 1, 2, 1, 1, 3, 2),
    ((2, 1, 8, 11), 2, 3, 3, 1, 1, 1, 3, 4),
    ((1, 2, 5, 5), 3, 3, 1, 1, 1, 1, 3, 3),       # dilated span 7 == padded input
    ((1, 1, 7, 7), 2, 2, 1, 1, 1, 1, 2, 2),       # windows that skip the padding row
]


@pytest.mark.parametrize("geom", POOL_GEOMETRIES)
def test_max_pool_reference_matches_definition(geom):
    shape, *args = geom
    x = np.random.default_rng(0).integers(-3, 3, shape).astype(np.float64)   # many ties
    y, arg = max_pool2d_forward_reference(x, *args)
    y_def, arg_def = _max_pool_by_definition(x, *args)
    np.testing.assert_array_equal(y, y_def)
    np.testing.assert_array_equal(arg, arg_def)


def test_all_minus_inf_dilated_window_points_at_its_first_tap_like_torch(torch):
    x = np.full((1, 1, 5, 5), -np.inf)
    _, arg = max_pool2d_forward_reference(x, 2, 2, 1, 1, 1, 1, 2, 2)
    _, arg_t = torch.nn.functional.max_pool2d(torch.tensor(x), 2, 1, 1, 2, return_indices=True)
    np.testing.assert_array_equal(arg, arg_t.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", POOL_GEOMETRIES)
def test_fast_max_pool_kernel_equals_reference(geom, dtype):
    shape, *args = geom
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 3, shape).astype(dtype)
    x.flat[::7] = -np.inf
    with tc.use_kernels("fast"):
        fwd = kernel("pooling", "max_pool2d_forward", x)
    if fwd is None:
        pytest.skip("no fast pooling kernel for this device")
    y, arg = fwd(x, *args)
    y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)


POOL_CASES = [  # (x shape, kernel_size, stride, padding, dilation, ceil_mode)
    ((2, 3, 9, 9), 3, 2, 0, 2, False),
    ((2, 3, 10, 9), 3, 2, 1, 2, True),
    ((1, 2, 11, 12), (3, 2), (1, 2), (1, 1), (3, 2), False),
    ((1, 2, 11, 12), (3, 2), (2, 3), (1, 1), (2, 3), True),
    ((2, 2, 8, 8), 2, 1, 1, 3, True),
    ((1, 1, 7, 7), 3, 3, 1, 1, True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOL_CASES)
def test_dilated_max_pool_matches_torch(kernel_mode, torch, case, dtype):
    shape, k, s, p, d, ceil = case
    rng = np.random.default_rng(2)
    xa = rng.integers(-4, 4, shape).astype(dtype)               # ties: the first maximum wins
    x = tc.tensor(xa, requires_grad=True)
    y, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(tc.tensor(gy))
    xt = torch.tensor(xa, requires_grad=True)
    yt, idxt = torch.nn.functional.max_pool2d(xt, k, s, p, d, ceil, return_indices=True)
    yt.backward(torch.tensor(gy))
    np.testing.assert_array_equal(y.array, yt.detach().numpy())
    np.testing.assert_array_equal(idx.array, idxt.numpy())
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", POOL_CASES[:4])
def test_dilated_max_pool_gradcheck(kernel_mode, case):
    shape, k, s, p, d, ceil = case
    x = tc.tensor(np.random.default_rng(3).permutation(np.prod(shape)).reshape(shape) * 0.1,
                  requires_grad=True)                      # distinct values: no ties to straddle
    assert tc.gradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil), [x])


def test_max_pool_module_with_dilation(torch):
    ours, theirs = nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, dilation=2,
                                                                                      ceil_mode=True)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(4).standard_normal((1, 2, 9, 10))
    np.testing.assert_array_equal(ours(tc.tensor(x)).array, theirs(torch.tensor(x)).numpy())


def test_dilated_window_of_only_padding_is_refused():
    """PyTorch returns -inf and an index outside the plane there; tinyconv says why."""
    x = tc.tensor(np.arange(3.0).reshape(1, 1, 1, 3))
    with pytest.raises(ValueError, match=r"max_pool2d: with kernel_size \(2, 2\), dilation \(2, 2\) and "
                                         r"padding \(1, 1\), the window of output row 0 holds only padding"):
        F.max_pool2d(x, 2, 1, 1, dilation=2)


def test_max_pool_backward_reference_unchanged_by_dilation():
    """Backward scatters by the arg-max alone: the same for any window geometry."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 9, 9))
    y, arg = max_pool2d_forward_reference(x, 3, 3, 1, 1, 1, 1, 3, 3)
    gy = rng.standard_normal(y.shape)
    gx = max_pool2d_backward_reference(gy, arg, x.shape)
    want = np.zeros(x.size)
    np.add.at(want, (np.arange(2).reshape(1, 2, 1, 1) * 81 + arg).ravel(), gy.ravel())
    np.testing.assert_array_equal(gx.ravel(), want)
