"""Pooling: max (arg-max routing, ties, overlap), avg, adaptive avg: gradcheck, PyTorch parity, bad input."""
import re

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.functional as F
from tinyconv.backend import kernel
from tinyconv.functional.pooling import (adaptive_pool_matrix, max_pool2d_backward_reference,
                                         max_pool2d_forward_reference)


def _distinct(shape, seed):
    """Values at least 0.1 apart (a shuffled ramp): finite differences never swap a window's max."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1 - 1.0


# --------------------------------------------------------------------------- max pool: reference


def _max_pool_by_definition(x, kh, kw, sh, sw, ph, pw):
    """Window by window: the first largest real pixel in scan order and its flat index h*W + w."""
    N, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.empty((N, C, OH, OW), x.dtype)
    arg = np.empty((N, C, OH, OW), np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, where = -np.inf, None
                    for i in range(kh):
                        for j in range(kw):
                            h, w = oh * sh - ph + i, ow * sw - pw + j
                            if 0 <= h < H and 0 <= w < W and (where is None or x[n, c, h, w] > best):
                                best, where = x[n, c, h, w], h * W + w
                    y[n, c, oh, ow], arg[n, c, oh, ow] = best, where
    return y, arg


MAX_GEOMETRIES = [  # (x shape, kh, kw, sh, sw, ph, pw)
    ((2, 3, 7, 7), 3, 3, 2, 2, 0, 0),      # AlexNet's overlapping 3/2
    ((1, 2, 6, 8), 2, 2, 2, 2, 0, 0),      # non-overlapping 2/2
    ((1, 2, 5, 6), 3, 2, 1, 2, 1, 1),      # padded, non-square
    ((2, 1, 1, 1), 1, 1, 1, 1, 0, 0),      # 1x1 image
    ((1, 1, 2, 3), 3, 3, 2, 2, 1, 1),      # kernel == padded input in h
]


@pytest.mark.parametrize("geom", MAX_GEOMETRIES)
def test_max_pool_reference_matches_definition(geom):
    shape, *args = geom
    x = np.random.default_rng(0).integers(-3, 3, shape).astype(np.float64)   # many ties
    y, arg = max_pool2d_forward_reference(x, *args)
    y_def, arg_def = _max_pool_by_definition(x, *args)
    np.testing.assert_array_equal(y, y_def)
    np.testing.assert_array_equal(arg, arg_def)
    assert arg.dtype == np.int64


def test_all_minus_inf_window_points_at_its_first_real_pixel():
    x = np.full((1, 1, 3, 3), -np.inf)
    y, arg = max_pool2d_forward_reference(x, 2, 2, 1, 1, 1, 1)
    assert np.all(y == -np.inf)
    # window (oh, ow) starts at input pixel (max(oh - 1, 0), max(ow - 1, 0))
    np.testing.assert_array_equal(arg[0, 0], [[0, 0, 1, 2], [0, 0, 1, 2], [3, 3, 4, 5], [6, 6, 7, 8]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", MAX_GEOMETRIES)
def test_fast_max_pool_kernels_equal_reference(geom, dtype):
    shape, *args = geom
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 3, shape).astype(dtype)
    with tc.use_kernels("fast"):
        fwd, bwd = kernel("pooling", "max_pool2d_forward", x), kernel("pooling", "max_pool2d_backward", x)
    if fwd is None or bwd is None:
        pytest.skip("no fast pooling kernel for this device")
    y, arg = fwd(x, *args)
    y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(bwd(gy, arg, shape), max_pool2d_backward_reference(gy, arg_ref, shape),
                               rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_overlapping_windows_add_their_gradients():
    # 3/2 windows over a 1x5 row (as a 1-row image, kernel 1x3): windows [0..2] and [2..4] share pixel 2
    x = tc.tensor(np.array([[[[0.0, 1.0, 9.0, 2.0, 3.0]]]]), requires_grad=True)
    y = F.max_pool2d(x, (1, 3), (1, 2))
    np.testing.assert_array_equal(y.array.ravel(), [9.0, 9.0])
    y.backward(tc.tensor(np.array([[[[10.0, 1.0]]]])))
    np.testing.assert_array_equal(x.grad.array.ravel(), [0, 0, 11.0, 0, 0])


def test_ties_go_to_the_first_pixel():
    x = tc.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.array.ravel().tolist() == [0] and idx.dtype == np.int64 and not idx.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.array.ravel(), [1.0, 0, 0, 0])


# --------------------------------------------------------------------------- gradcheck

MAX_GRAD_CASES = [  # (x shape, kernel_size, stride, padding, ceil_mode)
    ((2, 2, 7, 7), 3, 2, 0, False),
    ((1, 2, 6, 4), 2, 2, 0, False),
    ((1, 1, 5, 7), (3, 2), (1, 2), (1, 1), False),
    ((1, 2, 1, 1), 1, 1, 0, False),
    ((1, 1, 6, 6), 3, 2, 1, True),           # ceil_mode: a window past the bottom/right edge
    ((1, 1, 5, 8), (2, 3), 2, 0, True),
]


@pytest.mark.parametrize("case", MAX_GRAD_CASES)
def test_max_pool_gradcheck(kernel_mode, case):
    shape, k, s, p, ceil = case
    x = tc.tensor(_distinct(shape, 2), requires_grad=True)
    assert tc.gradcheck(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil), [x])


AVG_GRAD_CASES = [  # (x shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ((2, 2, 7, 7), 3, 2, 0, False, True, None),
    ((1, 2, 6, 4), 2, None, 0, False, True, None),
    ((1, 1, 5, 7), (3, 2), (1, 2), (1, 1), False, True, None),
    ((1, 1, 5, 7), 3, 2, 1, False, False, None),
    ((1, 1, 6, 6), 3, 2, 1, True, True, None),
    ((1, 1, 6, 5), 3, 2, 1, True, False, None),
    ((1, 2, 4, 4), 2, 1, 1, False, True, 3),
    ((1, 2, 1, 1), 1, 1, 0, False, True, None),
]


@pytest.mark.parametrize("case", AVG_GRAD_CASES)
def test_avg_pool_gradcheck(case):
    shape, k, s, p, ceil, include_pad, divisor = case
    x = tc.tensor(np.random.default_rng(3).standard_normal(shape), requires_grad=True)
    assert tc.gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil, include_pad, divisor), [x])


ADAPTIVE_CASES = [  # (x shape, output_size)
    ((1, 2, 5, 7), (3, 2)),      # overlapping bins
    ((2, 1, 6, 6), 3),           # exact 2x2 bins
    ((1, 2, 1, 1), 6),           # 1x1 -> 6x6: one pixel copied to every bin
    ((1, 1, 4, 3), (6, 5)),      # upsampling both ways
    ((1, 1, 13, 13), 6),         # AlexNet's conv5 map at 224 with a (13, 13) feature map
    ((1, 1, 4, 5), (None, 2)),   # None keeps the input height
]


@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_avg_pool_gradcheck(case):
    shape, out = case
    x = tc.tensor(np.random.default_rng(4).standard_normal(shape), requires_grad=True)
    assert tc.gradcheck(lambda t: F.adaptive_avg_pool2d(t, out), [x])


def test_adaptive_pool_matrix_bins():
    # size 5 -> 3 bins: [0, 2), [1, 4), [3, 5) (start floor(i*5/3), end ceil((i+1)*5/3))
    P = adaptive_pool_matrix(5, 3, np, np.float64)
    np.testing.assert_allclose(P, [[.5, .5, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, .5, .5]])


# --------------------------------------------------------------------------- PyTorch parity


def _run_both(torch, ours, theirs, x_np, seed=5):
    """Forward and backward with the same upstream gradient; returns (ours y, x grad), (theirs ...)."""
    x = tc.tensor(x_np, requires_grad=True)
    y = ours(x)
    y = y[0] if isinstance(y, tuple) else y
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(x_np.dtype)
    y.backward(tc.tensor(gy))
    xt = torch.tensor(x_np, requires_grad=True)
    yt = theirs(xt)
    yt = yt[0] if isinstance(yt, tuple) else yt
    yt.backward(torch.tensor(gy))
    assert y.shape == tuple(yt.shape) and y.dtype == x_np.dtype and x.grad.dtype == x_np.dtype
    return (y.array, x.grad.array), (yt.detach().numpy(), xt.grad.numpy())


def _assert_close(ours, theirs, dtype):
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(np.abs(b).max(initial=0), 1e-30))


MAX_TORCH_CASES = [  # (x shape, kernel_size, stride, padding, ceil_mode)
    ((2, 96, 55, 55), 3, 2, 0, False),      # AlexNet pool1
    ((2, 256, 13, 13), 3, 2, 0, False),     # AlexNet pool5
    ((2, 64, 55, 55), 3, 2, 0, True),       # ceil_mode (Caffe's AlexNet/GoogLeNet convention)
    ((3, 4, 9, 10), (3, 2), (2, 1), (1, 1), False),
    ((2, 3, 8, 8), 2, None, 0, False),
    ((2, 3, 7, 9), 2, 2, 1, True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", MAX_TORCH_CASES)
def test_max_pool_matches_torch(kernel_mode, torch, case, dtype):
    shape, k, s, p, ceil = case
    x_np = np.random.default_rng(6).standard_normal(shape).astype(dtype)
    ours, theirs = _run_both(torch, lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil),
                             lambda t: torch.nn.functional.max_pool2d(t, k, s, p, ceil_mode=ceil), x_np)
    _assert_close(ours, theirs, dtype)
    _, idx = F.max_pool2d(tc.tensor(x_np), k, s, p, ceil_mode=ceil, return_indices=True)
    _, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x_np), k, s, p, ceil_mode=ceil,
                                              return_indices=True)
    np.testing.assert_array_equal(idx.array, idx_t.numpy())


def test_max_pool_ties_match_torch(kernel_mode, torch):
    x_np = np.random.default_rng(7).integers(-2, 2, (2, 3, 9, 9)).astype(np.float64)
    _, idx = F.max_pool2d(tc.tensor(x_np), 3, 2, 1, return_indices=True)
    _, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x_np), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx.array, idx_t.numpy())


AVG_TORCH_CASES = [  # (x shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ((2, 96, 27, 27), 3, 2, 0, False, True, None),
    ((3, 4, 9, 10), (3, 2), (2, 1), (1, 1), False, True, None),
    ((3, 4, 9, 10), 3, 2, 1, False, False, None),
    ((2, 3, 10, 11), 3, 2, 1, True, True, None),
    ((2, 3, 10, 11), 3, 2, 1, True, False, None),
    ((2, 3, 8, 8), 2, None, 1, False, True, 7),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", AVG_TORCH_CASES)
def test_avg_pool_matches_torch(torch, case, dtype):
    shape, *args = case
    x_np = np.random.default_rng(8).standard_normal(shape).astype(dtype)
    ours, theirs = _run_both(torch, lambda t: F.avg_pool2d(t, *args),
                             lambda t: torch.nn.functional.avg_pool2d(t, *args), x_np)
    _assert_close(ours, theirs, dtype)


ADAPTIVE_TORCH_CASES = [  # (x shape, output_size)
    ((2, 256, 6, 6), (6, 6)),      # torchvision AlexNet at 224x224: the identity
    ((2, 256, 13, 13), (6, 6)),    # overlapping bins
    ((2, 256, 1, 1), (6, 6)),      # upsampling 1x1 -> 6x6 (small inputs)
    ((2, 8, 5, 7), (6, 6)),        # up in one dim, down in... both (5 < 6, 7 > 6)
    ((3, 4, 11, 9), (4, 2)),
    ((1, 2, 8, 9), (None, 3)),
    ((1, 2, 8, 9), 1),             # global average pooling
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ADAPTIVE_TORCH_CASES)
def test_adaptive_avg_pool_matches_torch(torch, case, dtype):
    shape, out = case
    x_np = np.random.default_rng(9).standard_normal(shape).astype(dtype)
    ours, theirs = _run_both(torch, lambda t: F.adaptive_avg_pool2d(t, out),
                             lambda t: torch.nn.functional.adaptive_avg_pool2d(t, out), x_np)
    _assert_close(ours, theirs, dtype)


def test_adaptive_matches_torchvision_alexnet_module(torch):
    x_np = np.random.default_rng(10).standard_normal((2, 5, 3, 4)).astype(np.float32)
    expected = torch.nn.AdaptiveAvgPool2d((6, 6))(torch.tensor(x_np)).numpy()
    np.testing.assert_allclose(F.adaptive_avg_pool2d(tc.tensor(x_np), (6, 6)).array, expected, rtol=1e-6)


@pytest.mark.parametrize("name, args", [
    ("max_pool2d", (3, 2, 1)), ("avg_pool2d", (3, 2, 1, True, False)), ("adaptive_avg_pool2d", ((4, 6),))])
def test_unbatched_input_matches_torch(kernel_mode, torch, name, args):
    x_np = _distinct((3, 7, 8), 12)
    ours, theirs = _run_both(torch, lambda t: getattr(F, name)(t, *args),
                             lambda t: getattr(torch.nn.functional, name)(t, *args), x_np)
    assert ours[0].ndim == 3
    _assert_close(ours, theirs, np.float64)


def test_unbatched_max_pool_indices():
    y, idx = F.max_pool2d(tc.tensor(_distinct((2, 4, 4), 13)), 2, return_indices=True)
    assert y.shape == idx.shape == (2, 2, 2) and idx.dtype == np.int64


def test_non_contiguous_input(kernel_mode):
    base = _distinct((2, 6, 6, 3), 11)
    x_view = tc.tensor(base).permute(0, 3, 1, 2)
    x = tc.tensor(np.ascontiguousarray(base.transpose(0, 3, 1, 2)))
    for fn in (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 2),
               lambda t: F.adaptive_avg_pool2d(t, 4)):
        np.testing.assert_allclose(fn(x_view).array, fn(x).array, rtol=1e-14)


# --------------------------------------------------------------------------- bad input

POOLS = {
    "max_pool2d": lambda x, *a, **k: F.max_pool2d(x, *a, **k),
    "avg_pool2d": lambda x, *a, **k: F.avg_pool2d(x, *a, **k),
}


def _x(shape=(1, 2, 6, 6), dtype=np.float32):
    return tc.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("op", POOLS)
@pytest.mark.parametrize("shape", [(6, 6), (1, 1, 2, 6, 6)])
def test_wrong_rank(op, shape):
    match = rf"{op}: expected input to be 4-d .*got shape " + re.escape(str(shape))
    with pytest.raises(ValueError, match=match):
        POOLS[op](_x(shape), 2)


@pytest.mark.parametrize("op", POOLS)
def test_padding_more_than_half_the_kernel(op):
    with pytest.raises(ValueError, match=rf"{op}: padding should be at most half of kernel_size, got "
                                         r"padding=2 with kernel_size=3"):
        POOLS[op](_x(), 3, 1, 2)
    POOLS[op](_x(), 3, 1, 1)                  # exactly half (rounded down): allowed


@pytest.mark.parametrize("op", POOLS)
@pytest.mark.parametrize("stride", [0, (1, -1)])
def test_non_positive_stride(op, stride):
    with pytest.raises(ValueError, match=rf"{op}: stride must be >= 1"):
        POOLS[op](_x(), 2, stride)


@pytest.mark.parametrize("op", POOLS)
def test_negative_padding(op):
    with pytest.raises(ValueError, match=rf"{op}: padding must be >= 0"):
        POOLS[op](_x(), 2, 2, -1)


@pytest.mark.parametrize("op", POOLS)
def test_bad_kernel_size(op):
    with pytest.raises(ValueError, match=rf"{op}: kernel_size must be >= 1, got 0"):
        POOLS[op](_x(), 0)
    with pytest.raises(TypeError, match=rf"{op}: kernel_size must be an int or a pair of ints, got 2.0"):
        POOLS[op](_x(), 2.0)


@pytest.mark.parametrize("op", POOLS)
def test_kernel_larger_than_padded_input(op):
    with pytest.raises(ValueError, match=rf"{op}: kernel_size \(5, 5\) is larger than the padded input "
                                         r"\(4, 4\)"):
        POOLS[op](_x((1, 2, 2, 2)), 5, 1, 1)


@pytest.mark.parametrize("op", POOLS)
def test_integer_input(op):
    with pytest.raises(TypeError, match=rf"{op}: expected a floating point input, got int64"):
        POOLS[op](tc.tensor(np.zeros((1, 1, 4, 4), np.int64)), 2)


def test_max_pool_flags():
    with pytest.raises(ValueError, match=r"max_pool2d: dilation must be >= 1, got 0"):
        F.max_pool2d(_x(), 2, dilation=0)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size \(3, 3\) \(dilated by \(3, 3\): "
                                         r"\(7, 7\)\) is larger than the padded input"):
        F.max_pool2d(_x(), 3, dilation=3)
    with pytest.raises(TypeError, match=r"max_pool2d: ceil_mode must be a bool, got 'yes'"):
        F.max_pool2d(_x(), 2, ceil_mode="yes")


def test_avg_pool_divisor_override():
    with pytest.raises(ValueError, match=r"avg_pool2d: divisor_override must be None or a positive int, "
                                         r"got 0"):
        F.avg_pool2d(_x(), 2, divisor_override=0)


def test_adaptive_bad_input():
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected input to be 4-d"):
        F.adaptive_avg_pool2d(_x((6, 6)), 2)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1, got \(0, 3\)"):
        F.adaptive_avg_pool2d(_x(), (0, 3))
    with pytest.raises(TypeError, match=r"adaptive_avg_pool2d: output_size must be an int or a pair"):
        F.adaptive_avg_pool2d(_x(), (1, 2, 3))
    with pytest.raises(TypeError, match=r"adaptive_avg_pool2d: output_size must be an int or a pair"):
        F.adaptive_avg_pool2d(_x(), 2.5)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a non-empty plane"):
        F.adaptive_avg_pool2d(_x((1, 2, 0, 3)), 2)


def test_positional_arguments_follow_pytorch():
    # max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    y, idx = F.max_pool2d(_x((1, 1, 5, 5)), 2, 2, 0, 1, True, True)
    assert y.shape == idx.shape == (1, 1, 3, 3)
    # avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    assert F.avg_pool2d(_x((1, 1, 5, 5)), 2, 2, 0, True, False, None).shape == (1, 1, 3, 3)


def test_nan_wins_like_torch(kernel_mode, torch):
    # PyTorch (CPU) replaces the running max on `val > max || isnan(val)`: a NaN wins, the last one
    x_np = np.array([[[[1.0, np.nan, 3.0, np.nan, 2.0]]]])
    y, idx = F.max_pool2d(tc.tensor(x_np), (1, 5), return_indices=True)
    y_t, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x_np), (1, 5), return_indices=True)
    assert np.isnan(y.array).all() and np.isnan(y_t.numpy()).all()
    np.testing.assert_array_equal(idx.array, idx_t.numpy())
