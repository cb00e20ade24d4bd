"""The Numba CPU kernels (kernels/*_numba.py) against their NumPy references, the seam, threads.

Every kernel is called directly on raw arrays over a grid of shapes with the edges the
kernel contract allows (1x1 images, a kernel as large as the padded input, padding of
at least half the kernel, strides larger than the kernel, fewer channels than the LRN
window, batch 1), in float32 and float64.  Copies and compares must be exact; LRN's
running sums may differ from the reference's fresh sums only by float rounding.  Then
the functional ops are gradient-checked with ``use_kernels("fast")``.
"""
import itertools

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import backend
from tinyconv.functional.activation import (dropout_backward_reference, relu_backward_reference,
                                            relu_forward_reference)
from tinyconv.functional.conv import col2im_reference, im2col_reference
from tinyconv.functional.loss import (softmax_cross_entropy_backward_reference,
                                      softmax_cross_entropy_forward_reference)
from tinyconv.functional.lrn import lrn_backward_reference, lrn_forward_reference
from tinyconv.functional.pooling import max_pool2d_backward_reference, max_pool2d_forward_reference
from tinyconv.kernels import activation_numba, conv_numba, loss_numba, lrn_numba, optim_numba, pooling_numba
from tinyconv.optim.sgd import sgd_update_reference

DTYPES = (np.float32, np.float64)

# (x shape, (kh, kw), (sh, sw), (ph, pw))
CONV_CASES = [
    ((2, 3, 7, 6), (3, 2), (1, 2), (1, 0)),    # rectangular everything
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),    # 1x1 image, 1x1 kernel, batch 1
    ((1, 2, 1, 1), (3, 3), (1, 1), (1, 1)),    # 1x1 image, kernel equal to the padded input
    ((2, 2, 3, 3), (5, 5), (1, 1), (1, 1)),    # kernel equal to the padded input
    ((2, 2, 5, 5), (3, 3), (2, 2), (4, 3)),    # padding larger than the kernel
    ((1, 2, 9, 9), (2, 2), (4, 3), (0, 1)),    # strides larger than the kernel
    ((3, 4, 8, 5), (1, 3), (3, 1), (0, 2)),
    ((2, 3, 27, 27), (5, 5), (1, 1), (2, 2)),  # AlexNet conv2, smaller channels
    ((1, 3, 35, 35), (11, 11), (4, 4), (0, 0)),  # AlexNet conv1's kernel and stride
]

# pooling: padding at most half the kernel, as PyTorch allows
POOL_CASES = [
    ((2, 3, 7, 6), (3, 2), (2, 1), (1, 1)),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
    ((1, 2, 1, 1), (3, 3), (1, 1), (1, 1)),    # 1x1 image, kernel equal to the padded input
    ((2, 2, 2, 2), (4, 4), (1, 1), (1, 1)),    # kernel equal to the padded input
    ((2, 2, 5, 5), (3, 3), (2, 2), (1, 1)),    # padding = kernel // 2
    ((1, 2, 9, 9), (2, 2), (4, 3), (1, 0)),    # strides larger than the kernel
    ((2, 3, 55, 55), (3, 3), (2, 2), (0, 0)),  # AlexNet's overlapping 3/2 pool
    ((1, 2, 13, 13), (3, 3), (2, 2), (1, 1)),
    ((3, 1, 6, 11), (2, 5), (3, 2), (1, 2)),
]


def _data(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- the seam


@pytest.mark.parametrize("family, name, mod", [
    ("conv", "im2col", conv_numba), ("conv", "col2im", conv_numba),
    ("pooling", "max_pool2d_forward", pooling_numba), ("pooling", "max_pool2d_backward", pooling_numba),
    ("lrn", "lrn_forward", lrn_numba), ("lrn", "lrn_backward", lrn_numba),
    ("activation", "relu_forward", activation_numba), ("activation", "relu_backward", activation_numba),
    ("activation", "dropout_forward", activation_numba),
    ("activation", "dropout_backward", activation_numba),
    ("loss", "softmax_cross_entropy_forward", loss_numba),
    ("loss", "softmax_cross_entropy_backward", loss_numba),
    ("optim", "sgd_update", optim_numba)])
def test_seam_finds_each_kernel_and_reference_mode_hides_it(family, name, mod):
    x = np.zeros((1, 1, 1, 1), np.float32)
    with tinyconv.use_kernels("fast"):
        assert backend.kernel(family, name, x) is getattr(mod, name)
    with tinyconv.use_kernels("reference"):
        assert backend.kernel(family, name, x) is None


# --------------------------------------------------------------------------- conv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, k, s, p", CONV_CASES)
def test_im2col_col2im_equal_reference(shape, k, s, p, dtype):
    x = _data(shape, dtype)
    args = (*k, *s, *p)
    cols = conv_numba.im2col(x, *args)
    ref = im2col_reference(x, *args)
    assert cols.dtype == dtype and cols.shape == ref.shape and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, ref)
    g = _data(ref.shape, dtype, seed=1)
    gx = conv_numba.col2im(g, shape, *args)
    assert gx.dtype == dtype and gx.shape == shape
    # same taps added in the same order per pixel: equal, not merely close
    np.testing.assert_array_equal(gx, col2im_reference(g, shape, *args))


@pytest.mark.parametrize("stride, dilation", [((1, 4), (1, 1)), ((4, 4), (2, 3)), ((2, 3), (3, 2))])
def test_strided_dilated_im2col_equals_reference(stride, dilation):
    """The phase split (column stride > 1) with dilated taps reaching different phases."""
    x = _data((2, 3, 19, 22), np.float32)
    args = (3, 4, *stride, 2, 3, *dilation)
    np.testing.assert_array_equal(conv_numba.im2col(x, *args), im2col_reference(x, *args))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, k, s, p, groups", [
    ((2, 4, 7, 6), (3, 2), (1, 2), (1, 0), 2), ((3, 6, 5, 5), (3, 3), (2, 2), (4, 1), 3),
    ((1, 2, 1, 1), (1, 1), (1, 1), (0, 0), 1), ((2, 4, 13, 13), (3, 3), (1, 1), (1, 1), 2),
    ((2, 3, 23, 21), (5, 4), (4, 3), (2, 1), 1)])   # column stride > 1: the phase-split im2col
def test_batched_layout_kernels_equal_reference(shape, k, s, p, groups, dtype):
    N = shape[0]
    x = _data(shape, dtype)
    args = (*k, *s, *p)
    ref = im2col_reference(x, *args)
    K, L = ref.shape[1] // groups, ref.shape[2]
    want = ref.reshape(N, groups, K, L).transpose(1, 2, 0, 3).reshape(groups, K, N * L)
    np.testing.assert_array_equal(conv_numba.im2col_batched(x, *args, groups), want)
    g = _data(want.shape, dtype, seed=2)
    g_nchw = g.reshape(groups, K, N, L).transpose(2, 0, 1, 3).reshape(N, groups * K, L)
    np.testing.assert_array_equal(conv_numba.col2im_batched(g, shape, *args),
                                  col2im_reference(g_nchw, shape, *args))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_batched_layout_kernels_write_into_out(dtype):
    x = _data((2, 4, 5, 5), dtype)
    args = (3, 3, 1, 1, 1, 1)
    want = conv_numba.im2col_batched(x, *args, 2)
    out = np.full(want.shape, np.nan, dtype=dtype)
    assert conv_numba.im2col_batched(x, *args, 2, out=out) is out
    np.testing.assert_array_equal(out, want)
    gx = np.full(x.shape, np.nan, dtype=dtype)
    assert conv_numba.col2im_batched(want, x.shape, *args, out=gx) is gx
    np.testing.assert_array_equal(gx, conv_numba.col2im_batched(want, x.shape, *args))


def test_batched_layout_kernels_reject_a_wrong_out():
    x = _data((2, 4, 5, 5), np.float32)
    want = r"im2col_batched: expected a C-contiguous out of shape \(2, 18, 50\)"
    with pytest.raises(ValueError, match=want):
        conv_numba.im2col_batched(x, 3, 3, 1, 1, 1, 1, 2, out=np.empty((2, 18, 49), np.float32))
    with pytest.raises(ValueError, match="col2im_batched: .* dtype float32, got .* dtype float64"):
        conv_numba.col2im_batched(np.zeros((2, 18, 50), np.float32), x.shape, 3, 3, 1, 1, 1, 1,
                                  out=np.empty(x.shape))


def test_col2im_rejects_cols_of_the_wrong_shape():
    with pytest.raises(ValueError, match="col2im: expected cols of shape"):
        conv_numba.col2im(np.zeros((1, 9, 5)), (1, 1, 4, 4), 3, 3, 1, 1, 0, 0)


# --------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, k, s, p", POOL_CASES)
def test_max_pool_equals_reference(shape, k, s, p, dtype):
    args = (*k, *s, *p)
    for x in (_data(shape, dtype),
              np.random.default_rng(3).integers(-2, 3, shape).astype(dtype)):   # many ties
        y, arg = pooling_numba.max_pool2d_forward(x, *args)
        y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
        assert y.dtype == dtype and arg.dtype == np.int64
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(arg, arg_ref)
        gy = _data(y.shape, dtype, seed=4)
        gx = pooling_numba.max_pool2d_backward(gy, arg, shape)
        # overlapping windows add in output scan order on both paths
        np.testing.assert_array_equal(gx, max_pool2d_backward_reference(gy, arg_ref, shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_and_minus_inf_windows_as_reference(dtype):
    x = _data((2, 2, 7, 7), dtype)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[1, 1, 4, 4] = np.nan
    x[0, 1] = -np.inf                                            # every window all -inf
    x[1, 0, :3, :3] = -np.inf
    for args in ((3, 3, 2, 2, 1, 1), (2, 2, 1, 1, 0, 0), (3, 3, 3, 3, 1, 0)):
        y, arg = pooling_numba.max_pool2d_forward(x, *args)
        y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
        np.testing.assert_array_equal(y, y_ref)                  # NaN == NaN here
        np.testing.assert_array_equal(arg, arg_ref)


# the phase split of the max-pool forward: stride 1 (a copy), 2 (both phases in one pass,
# AlexNet's) and 3 (the general loop), with padding, dilation and planes of odd widths
PHASE_CASES = [((2, 3, 9, 11), (3, 3), (1, 1), (1, 1), (1, 1)),
               ((2, 3, 10, 13), (3, 3), (2, 2), (1, 1), (1, 1)),
               ((1, 2, 11, 10), (3, 2), (2, 2), (1, 0), (2, 3)),
               ((2, 2, 14, 17), (3, 4), (3, 3), (1, 2), (1, 1)),
               ((1, 3, 12, 12), (2, 3), (3, 2), (1, 1), (2, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, k, s, p, d", PHASE_CASES)
def test_max_pool_phase_split_strides_equal_reference(shape, k, s, p, d, dtype):
    args = (*k, *s, *p, *d)
    x = np.random.default_rng(5).integers(-2, 3, shape).astype(dtype)    # many ties
    x[0, 0, 1, 2] = x[-1, -1, 3, 3] = np.nan
    y, arg = pooling_numba.max_pool2d_forward(x, *args)
    y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)


def test_max_pool_forward_with_int64_indices_inside_equals_reference():
    """The kernel keeps arg-max indices in int32 for planes under 2**31 pixels and in int64
    beyond; the int64 variant is called directly here (no such plane fits in a test)."""
    x = np.random.default_rng(6).integers(-2, 3, (2, 3, 13, 12)).astype(np.float32)
    args = (3, 3, 2, 2, 1, 1, 1, 1)
    y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
    y, arg = np.empty_like(y_ref), np.empty_like(arg_ref)
    pooling_numba._max_pool_fwd(x, y, arg, *args, np.empty(0, np.int64))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)


# --------------------------------------------------------------------------- LRN

LRN_PARAMS = [(5, 1e-4 * 5, 0.75, 2.0), (3, 0.1, 0.75, 1.0), (4, 0.3, 0.6, 1.5),   # even size, pow path
              (1, 0.2, 0.5, 1.0), (2, 0.05, 1.0, 0.5), (7, 1.0, 0.75, 0.1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (1, 1, 1, 1), (1, 2, 1, 1), (3, 3, 4, 4),
                                   (2, 16, 23, 25), (1, 5, 33, 40)])
@pytest.mark.parametrize("size, alpha, beta, k", LRN_PARAMS)
def test_lrn_equals_reference(shape, size, alpha, beta, k, dtype):
    x = _data(shape, dtype) * 3
    y, scale = lrn_numba.lrn_forward(x, size, alpha, beta, k)
    y_ref, scale_ref = lrn_forward_reference(x, size, alpha, beta, k)
    assert y.dtype == scale.dtype == dtype
    rtol, atol = (2e-6, 1e-6) if dtype == np.float32 else (1e-13, 1e-14)
    np.testing.assert_allclose(scale, scale_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol)
    gy = _data(shape, dtype, seed=5)
    gx = lrn_numba.lrn_backward(gy, x, y_ref, scale_ref, size, alpha, beta)
    gx_ref = lrn_backward_reference(gy, x, y_ref, scale_ref, size, alpha, beta)
    assert gx.dtype == dtype
    np.testing.assert_allclose(gx, gx_ref, rtol=10 * rtol, atol=10 * atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.75, 0.6, 1.3])
def test_lrn_uneven_pixel_runs_equal_reference(beta, dtype):
    """33 x 31 = 1023 pixels split into two runs of the kernels' tasks, and 13 channels
    with a window wider than the edge channels' neighbourhood (size 7): the fast beta = 0.75
    path and the general power alike."""
    x = _data((2, 13, 33, 31), dtype) * 3
    args = (7, 0.4, beta, 0.5)
    y, scale = lrn_numba.lrn_forward(x, *args)
    y_ref, scale_ref = lrn_forward_reference(x, *args)
    rtol, atol = (2e-6, 1e-6) if dtype == np.float32 else (1e-13, 1e-14)
    np.testing.assert_allclose(scale, scale_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol)
    gy = _data(x.shape, dtype, seed=2)
    np.testing.assert_allclose(lrn_numba.lrn_backward(gy, x, y_ref, scale_ref, 7, 0.4, beta),
                               lrn_backward_reference(gy, x, y_ref, scale_ref, 7, 0.4, beta),
                               rtol=10 * rtol, atol=10 * atol)


def test_lrn_zero_scale_gives_the_reference_inf_and_nan():
    """k = 0 over an all-zero window: scale 0, scale^-beta = Inf (NumPy's 1/0, no
    ZeroDivisionError), y = 0 * Inf = NaN, as in the reference."""
    x = np.zeros((1, 4, 2, 2), np.float32)
    x[0, 3] = 1.0
    y, scale = lrn_numba.lrn_forward(x, 3, 1.0, 0.75, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_ref, scale_ref = lrn_forward_reference(x, 3, 1.0, 0.75, 0.0)
        gy = np.ones_like(x)
        g_ref = lrn_backward_reference(gy, x, y_ref, scale_ref, 3, 1.0, 0.75)
    assert np.isnan(y_ref[0, :2]).all() and not np.isnan(y_ref[0, 2:]).any()
    np.testing.assert_array_equal(scale, scale_ref)
    np.testing.assert_allclose(y, y_ref, rtol=2e-6)                 # NaN where the reference has NaN
    np.testing.assert_allclose(lrn_numba.lrn_backward(gy, x, y_ref, scale_ref, 3, 1.0, 0.75), g_ref,
                               rtol=2e-5)


def test_lrn_running_sum_does_not_cancel_small_channels():
    """A large channel leaving the window must not wipe out the small ones: the running sums are
    float64, so a square 1e10 times the others leaves them intact to ~1e-6 (a float32 running sum
    would lose them entirely), even with k = 0, where nothing masks the error."""
    x = np.full((1, 12, 1, 1), 1e-3, np.float32)
    x[0, 0] = 1e2
    _, scale = lrn_numba.lrn_forward(x, 3, 1.0, 0.75, 0.0)
    _, scale_ref = lrn_forward_reference(x.astype(np.float64), 3, 1.0, 0.75, 0.0)
    np.testing.assert_allclose(scale[0, 5:], scale_ref[0, 5:], rtol=1e-5)


# --------------------------------------------------------------------------- ReLU, dropout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 1, 1, 1), (2, 7, 5, 3), (16, 4096)])
def test_relu_equals_reference(shape, dtype):
    x = _data(shape, dtype)
    x.reshape(-1)[::7] = 0
    x.reshape(-1)[:1] = np.nan
    y = activation_numba.relu_forward(x)
    np.testing.assert_array_equal(y, relu_forward_reference(x))
    gy = _data(shape, dtype, seed=1)
    np.testing.assert_array_equal(activation_numba.relu_backward(gy, y), relu_backward_reference(gy, y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_kernel_mask_scale_and_rate(p, dtype):
    x = _data((40, 2500), dtype)
    y, mask = activation_numba.dropout_forward(x, p, 7, 3)
    assert mask.dtype == np.bool_ and mask.shape == x.shape and y.dtype == dtype
    np.testing.assert_array_equal(y, x * mask * dtype(1 / (1 - p)))
    n = mask.size                       # keep rate 1 - p within 5 standard deviations
    assert abs(mask.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    gy = _data(x.shape, dtype, seed=1)
    np.testing.assert_array_equal(activation_numba.dropout_backward(gy, mask, p),
                                  dropout_backward_reference(gy, mask, p))


def test_dropout_kernel_reproducible_independent_of_threads_and_fresh_per_call():
    x = np.ones((64, 999), np.float32)
    masks = []
    for threads in (1, 2, 1):
        tinyconv.set_num_threads(min(threads, _max_threads()))
        masks.append(activation_numba.dropout_forward(x, 0.5, 11, 0)[1])
    tinyconv.set_num_threads(_max_threads())
    assert all(np.array_equal(masks[0], m) for m in masks[1:])       # a pure function of (seed, offset)
    a = activation_numba.dropout_forward(x, 0.5, 11, 0)[1]
    b = activation_numba.dropout_forward(x, 0.5, 11, x.size)[1]      # the op's next offset
    c = activation_numba.dropout_forward(x, 0.5, 12, 0)[1]           # another seed
    np.testing.assert_array_equal(a, masks[0])
    assert 0.45 < (a == b).mean() < 0.55 and 0.45 < (a == c).mean() < 0.55
    # the counter is offset + i: a call at offset k continues the stream of a call at offset 0
    tail = activation_numba.dropout_forward(np.ones(1000, np.float32), 0.5, 11, 5)[1]
    np.testing.assert_array_equal(tail, a.reshape(-1)[5:1005])
    # neighbouring elements are not correlated (the counter hash mixes every bit)
    assert abs(np.corrcoef(a.reshape(-1)[:-1], a.reshape(-1)[1:])[0, 1]) < 0.02


def test_dropout_op_fast_path_follows_manual_seed():
    x = tinyconv.tensor(np.ones((8, 300), np.float32))
    with tinyconv.use_kernels("fast"):
        tinyconv.manual_seed(5)
        a = F.dropout(x, 0.3).array
        b = F.dropout(x, 0.3).array
        tinyconv.manual_seed(5)
        c = F.dropout(x, 0.3).array
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.7)}


def _max_threads():
    import numba
    return numba.config.NUMBA_NUM_THREADS


# --------------------------------------------------------------------------- softmax cross-entropy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (16, 1000), (5, 3), (0, 4)])
def test_softmax_cross_entropy_equals_reference(shape, dtype):
    rng = np.random.default_rng(0)
    logits = (4 * rng.standard_normal(shape)).astype(dtype)
    if shape[0]:
        logits[0, 0] = 1e4 if dtype == np.float64 else 80.0        # huge logit: no overflow
    target = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    loss, probs = loss_numba.softmax_cross_entropy_forward(logits, target)
    loss_r, probs_r = softmax_cross_entropy_forward_reference(logits, target)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    assert loss.dtype == probs.dtype == dtype
    np.testing.assert_allclose(loss, loss_r, **tol)
    np.testing.assert_allclose(probs, probs_r, **tol)
    gloss = rng.standard_normal(shape[0]).astype(dtype)
    np.testing.assert_allclose(loss_numba.softmax_cross_entropy_backward(gloss, probs_r, target),
                               softmax_cross_entropy_backward_reference(gloss, probs_r, target), **tol)


# --------------------------------------------------------------------------- SGD


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_update_equals_reference(dtype):
    rng = np.random.default_rng(0)
    for momentum, dampening, wd, nesterov in itertools.product((0.0, 0.9), (0.0, 0.1), (0.0, 5e-4),
                                                               (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        p_ref = rng.standard_normal((6, 5)).astype(dtype)
        p = p_ref.copy()
        buf_ref = np.empty_like(p) if momentum else None
        buf = np.empty_like(p) if momentum else None
        for step in range(3):
            g = rng.standard_normal(p.shape).astype(dtype)
            g_before = g.copy()
            sgd_update_reference(p_ref, g, buf_ref, 0.05, momentum, dampening, wd, nesterov, step == 0)
            optim_numba.sgd_update(p, g, buf, 0.05, momentum, dampening, wd, nesterov, step == 0)
            np.testing.assert_array_equal(g, g_before)               # never writes the gradient
            np.testing.assert_allclose(p, p_ref, rtol=4 * np.finfo(dtype).eps, atol=0)
            if momentum:
                np.testing.assert_allclose(buf, buf_ref, rtol=4 * np.finfo(dtype).eps, atol=0)


# --------------------------------------------------------------------------- gradcheck, fast path


def _t(a):
    return tinyconv.tensor(a, requires_grad=True)


@pytest.fixture
def fast():
    with tinyconv.use_kernels("fast"):
        yield


@pytest.mark.parametrize("stride, padding, groups", [(1, 1, 1), (2, 0, 2), (3, 2, 1)])
def test_gradcheck_conv2d_fast(fast, stride, padding, groups):
    x = _t(_data((2, 4, 6, 5), np.float64))
    w = _t(_data((4, 4 // groups, 3, 2), np.float64, seed=1))
    b = _t(_data((4,), np.float64, seed=2))
    assert tinyconv.gradcheck(
        lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups), [x, w, b])


@pytest.mark.parametrize("k, s, p", [(3, 2, 0), (2, 1, 1), (3, 3, 1)])
def test_gradcheck_max_pool_fast(fast, k, s, p):
    rng = np.random.default_rng(0)
    x = _t(rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) * 0.1)   # distinct: no ties
    assert tinyconv.gradcheck(lambda x: F.max_pool2d(x, k, s, p), [x])


@pytest.mark.parametrize("size, beta", [(5, 0.75), (4, 0.6), (2, 1.0)])
def test_gradcheck_lrn_fast(fast, size, beta):
    x = _t(_data((2, 6, 4, 3), np.float64))
    assert tinyconv.gradcheck(lambda x: F.local_response_norm(x, size, alpha=0.3, beta=beta, k=1.5), [x])


def test_gradcheck_relu_and_dropout_fast(fast):
    x = _data((3, 40), np.float64)
    x[np.abs(x) < 0.05] = 0.5                                      # away from the kink
    assert tinyconv.gradcheck(F.relu, [_t(x)])

    def drop(x):
        tinyconv.manual_seed(9)                                    # one mask for every evaluation
        return F.dropout(x, 0.4)
    assert tinyconv.gradcheck(drop, [_t(x)])


# --------------------------------------------------------------------------- threads, compile stats


def test_set_num_threads_sets_numba_and_blas():
    n_max = _max_threads()
    tinyconv.set_num_threads(1)
    try:
        got = tinyconv.get_num_threads()
        assert got["numba"] == 1
        assert got["blas"] in (1, None)
    finally:
        tinyconv.set_num_threads(n_max)
    assert tinyconv.get_num_threads()["numba"] == n_max


@pytest.mark.parametrize("bad, err", [(0, ValueError), (10**6, ValueError), (1.5, TypeError),
                                      (True, TypeError)])
def test_set_num_threads_rejects_bad_counts(bad, err):
    with pytest.raises(err, match="set_num_threads"):
        tinyconv.set_num_threads(bad)


def test_warmup_reports_compile_apart_from_run_and_compile_stats():
    report = tinyconv.warmup(("float32",))
    per = report["float32"]
    assert {"conv.im2col", "pooling.max_pool2d_forward", "lrn.lrn_backward", "optim.sgd_update",
            "activation.dropout_forward"} <= set(per)
    for v in per.values():
        assert v["first_s"] >= 0 and v["run_s"] >= 0
    assert report["total_s"] > 0
    stats = tinyconv.compile_stats()
    assert stats["lrn._lrn_fwd"]["signatures"] >= 1
    for v in stats.values():   # each compiled signature came from the disk cache or a fresh compile
        assert v["cache_hits"] + v["cache_misses"] >= v["signatures"] or v["signatures"] == 0


def test_every_kernel_loads_from_the_disk_cache_in_the_next_process():
    """Was: the Winograd kernels took their row function as a jitted-function argument, which
    Numba types by its address in memory; no later process matched the disk cache, so each
    one compiled them again (some 30 s before its first Winograd conv2d) and added one more
    cache file.  Two fresh processes warm every kernel up; the second must compile nothing."""
    import json
    import subprocess
    import sys
    code = "import json, tinyconv; tinyconv.warmup(('float32',)); print(json.dumps(tinyconv.compile_stats()))"
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True, timeout=900).stdout.splitlines()[-1]) for _ in range(2)]
    warmed = {k for k, v in runs[1].items() if v["signatures"]}
    assert {"winograd._input_transform", "winograd._output_adjoint", "winograd._filter_sandwich",
            "conv._im2col", "lrn._lrn_bwd", "optim._sgd"} <= warmed
    assert {k: v for k, v in runs[1].items() if v["cache_misses"]} == {}


def test_import_tinyconv_does_not_import_numba():
    import subprocess
    import sys
    code = "import sys, tinyconv; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- float16


def test_float16_goes_through_the_float32_kernels():
    """Numba has no float16 arithmetic: float16 calls run in float32 and round back once."""
    h = np.float16
    x = _data((2, 3, 9, 8), h)
    args = (3, 3, 2, 1, 1, 1)
    cols = conv_numba.im2col(x, *args)
    assert cols.dtype == h
    np.testing.assert_array_equal(cols, im2col_reference(x, *args))
    g = _data(cols.shape, h, seed=1)
    np.testing.assert_allclose(conv_numba.col2im(g, x.shape, *args).astype(np.float32),
                               col2im_reference(g, x.shape, *args).astype(np.float32), rtol=2e-3, atol=2e-3)
    y, arg = pooling_numba.max_pool2d_forward(x, *args)
    y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
    assert y.dtype == h and arg.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    y, scale = lrn_numba.lrn_forward(x, 5, 0.1, 0.75, 1.0)
    y_ref, _ = lrn_forward_reference(x, 5, 0.1, 0.75, 1.0)
    assert y.dtype == scale.dtype == h
    np.testing.assert_allclose(y.astype(np.float32), y_ref.astype(np.float32), rtol=2e-3, atol=1e-3)
    np.testing.assert_array_equal(activation_numba.relu_forward(x), relu_forward_reference(x))
    yd, mask = activation_numba.dropout_forward(x, 0.5, 0, 0)
    assert yd.dtype == h and mask.dtype == np.bool_
    p, buf = x.copy(), np.empty_like(x)
    p_ref, buf_ref = x.copy(), np.empty_like(x)
    optim_numba.sgd_update(p, x, buf, 0.1, 0.9, 0.0, 0.0, False, True)
    sgd_update_reference(p_ref, x, buf_ref, 0.1, 0.9, 0.0, 0.0, False, True)
    assert p.dtype == h
    np.testing.assert_allclose(p.astype(np.float32), p_ref.astype(np.float32), rtol=2e-3, atol=2e-3)
