"""Property tests (hypothesis): random valid shapes and hyper-parameters, fast kernel == reference.

For conv (im2col, col2im and their batched-layout forms), max-pool (forward with arg-max,
backward), LRN (forward, backward), ReLU, dropout and softmax cross-entropy, hypothesis
draws a shape and the layer's hyper-parameters (dilation included) within what the kernel
contract allows, and the Numba kernel must give the reference's answer: exactly for copies,
compares and same-order sums, to float rounding for LRN and the softmax.  Every kernel also
gets non-finite inputs (a few NaN, +Inf, -Inf planted by :func:`plant_non_finite`): the
fast kernel must keep IEEE semantics, i.e. NaN and Inf in exactly the reference's places
(``assert_array_equal`` and ``assert_allclose`` both require equal NaN positions and
equal infinities).  Examples are few and small so the suite stays fast.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tinyconv.functional.activation import (dropout_backward_reference,  # noqa: E402
                                            relu_backward_reference, relu_forward_reference)
from tinyconv.functional.conv import col2im_reference, im2col_reference  # noqa: E402
from tinyconv.functional.loss import (softmax_cross_entropy_backward_reference,  # noqa: E402
                                      softmax_cross_entropy_forward_reference)
from tinyconv.functional.lrn import lrn_backward_reference, lrn_forward_reference  # noqa: E402
from tinyconv.functional.pooling import (max_pool2d_backward_reference,  # noqa: E402
                                         max_pool2d_forward_reference)
from tinyconv.kernels import activation_numba, conv_numba, loss_numba, lrn_numba, pooling_numba  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
dtypes = st.sampled_from([np.float32, np.float64])
NON_FINITE = (np.nan, np.inf, -np.inf)


def plant_non_finite(draw, a, rng):
    """Maybe (hypothesis decides) overwrite 1-3 random elements of ``a`` with NaN, +Inf or -Inf."""
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            a.reshape(-1)[rng.integers(0, a.size)] = draw(st.sampled_from(NON_FINITE))
    return a


@st.composite
def conv_problem(draw):
    """(x, kh, kw, sh, sw, ph, pw, dh, dw, groups) with at least one output pixel."""
    groups = draw(st.integers(1, 3))
    C = groups * draw(st.integers(1, 2))
    N = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 4)), draw(st.integers(0, 4))       # conv padding may exceed k/2
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))       # dilation: a span of d*(k-1) + 1
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 14))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 14))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = plant_non_finite(draw, rng.standard_normal((N, C, H, W)).astype(dtype), rng)
    g_seed = draw(st.integers(0, 2**16)) if draw(st.booleans()) else None     # non-finite gradients too
    return x, kh, kw, sh, sw, ph, pw, dh, dw, groups, g_seed


@SETTINGS
@given(conv_problem())
def test_conv_kernels_equal_reference(problem):
    x, kh, kw, sh, sw, ph, pw, dh, dw, G, g_seed = problem
    args = (kh, kw, sh, sw, ph, pw, dh, dw)
    ref = im2col_reference(x, *args)
    np.testing.assert_array_equal(conv_numba.im2col(x, *args), ref)
    g = np.random.default_rng(1).standard_normal(ref.shape).astype(x.dtype)
    if g_seed is not None:                               # col2im sums Inf and NaN: IEEE in any order
        g.reshape(-1)[np.random.default_rng(g_seed).integers(0, g.size, 2)] = (np.inf, -np.nan)
    np.testing.assert_array_equal(conv_numba.col2im(g, x.shape, *args), col2im_reference(g, x.shape, *args))
    N, CK, L = ref.shape
    K = CK // G
    batched = ref.reshape(N, G, K, L).transpose(1, 2, 0, 3).reshape(G, K, N * L)
    np.testing.assert_array_equal(conv_numba.im2col_batched(x, *args[:6], G, dh=dh, dw=dw), batched)
    gb = g.reshape(N, G, K, L).transpose(1, 2, 0, 3).reshape(G, K, N * L)
    np.testing.assert_array_equal(conv_numba.col2im_batched(gb, x.shape, *args[:6], dh=dh, dw=dw),
                                  col2im_reference(g, x.shape, *args))


@st.composite
def pool_problem(draw):
    """(x, kh, kw, sh, sw, ph, pw, dh, dw); padding at most half the kernel, as PyTorch requires,
    and (as max_pool2d requires) every dilated window with a tap inside the input."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 14))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 14))
    for size, k, s, p, d in ((H, kh, sh, ph, dh), (W, kw, sw, pw, dw)):
        for start in range(-p, size + p - d * (k - 1), s):
            assume(any(0 <= start + i * d < size for i in range(k)))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if draw(st.booleans()):
        x = rng.standard_normal((N, C, H, W))
    else:                                                            # small integers: many ties
        x = rng.integers(-2, 3, (N, C, H, W)).astype(np.float64)
    if draw(st.booleans()):
        x.reshape(-1)[rng.integers(0, x.size)] = draw(st.sampled_from([np.nan, -np.inf, np.inf]))
    return x.astype(dtype), kh, kw, sh, sw, ph, pw, dh, dw


@SETTINGS
@given(pool_problem())
def test_max_pool_kernels_equal_reference(problem):
    x, *args = problem
    y, arg = pooling_numba.max_pool2d_forward(x, *args)
    y_ref, arg_ref = max_pool2d_forward_reference(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    gy = np.random.default_rng(2).standard_normal(y.shape).astype(x.dtype)
    np.testing.assert_array_equal(pooling_numba.max_pool2d_backward(gy, arg, x.shape),
                                  max_pool2d_backward_reference(gy, arg_ref, x.shape))


@st.composite
def lrn_problem(draw):
    """(x, size, alpha, beta, k): any channel count, window sizes up to beyond it."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 9))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    size = draw(st.integers(1, 11))
    alpha = draw(st.floats(1e-5, 2.0))
    beta = draw(st.sampled_from([0.75, 0.5, 1.0]) | st.floats(0.05, 2.0))
    k = draw(st.floats(0.1, 3.0))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = plant_non_finite(draw, (rng.standard_normal((N, C, H, W)) * 2).astype(dtype), rng)
    gy = plant_non_finite(draw, rng.standard_normal((N, C, H, W)).astype(dtype), rng)
    return x, gy, size, alpha, beta, k


@SETTINGS
@given(lrn_problem())
def test_lrn_kernels_equal_reference(problem):
    x, gy, size, alpha, beta, k = problem
    rtol, atol = (5e-6, 1e-6) if x.dtype == np.float32 else (1e-12, 1e-14)
    y, scale = lrn_numba.lrn_forward(x, size, alpha, beta, k)
    with np.errstate(invalid="ignore"):                  # Inf * 0 in the reference: NaN, as in PyTorch
        y_ref, scale_ref = lrn_forward_reference(x, size, alpha, beta, k)
        g_ref = lrn_backward_reference(gy, x, y_ref, scale_ref, size, alpha, beta)
    np.testing.assert_allclose(scale, scale_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(lrn_numba.lrn_backward(gy, x, y_ref, scale_ref, size, alpha, beta), g_ref,
                               rtol=10 * rtol, atol=10 * atol)


def test_lrn_one_inf_stays_in_its_window():
    """The running sum once turned one Inf into NaN in every later channel (inf - inf)."""
    x = np.ones((1, 9, 1, 1), dtype=np.float32)
    x[0, 2] = np.inf
    y, scale = lrn_numba.lrn_forward(x, 3, 1e-2, 0.75, 2.0)
    with np.errstate(invalid="ignore"):
        y_ref, _ = lrn_forward_reference(x, 3, 1e-2, 0.75, 2.0)
    assert np.isnan(y_ref.ravel()).tolist() == [False, False, True] + [False] * 6
    np.testing.assert_array_equal(y, y_ref)          # 0 beside the Inf, NaN on it, exact elsewhere


@st.composite
def elementwise_problem(draw):
    """(x, gy) of one random shape, both with maybe-planted NaN/Inf."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::5] = 0.0                                       # exact zeros: the ReLU kink
    gy = rng.standard_normal(shape).astype(dtype)
    return plant_non_finite(draw, x, rng), plant_non_finite(draw, gy, rng)


@SETTINGS
@given(elementwise_problem())
def test_relu_kernels_equal_reference(problem):
    x, gy = problem
    y = activation_numba.relu_forward(x)
    np.testing.assert_array_equal(y, relu_forward_reference(x))
    np.testing.assert_array_equal(activation_numba.relu_backward(gy, y), relu_backward_reference(gy, y))


@SETTINGS
@given(elementwise_problem(), st.floats(0.05, 0.95), st.integers(0, 2**40))
def test_dropout_kernels_equal_reference_formula(problem, p, seed):
    """The two paths draw different masks; with the kernel's mask both compute x * mask / (1 - p),
    so a dropped Inf is NaN (Inf * 0) on both, as in PyTorch."""
    x, gy = problem
    with np.errstate(invalid="ignore"):
        y, mask = activation_numba.dropout_forward(x, p, seed, 7)
        np.testing.assert_array_equal(y, dropout_backward_reference(x, mask, p))
        np.testing.assert_array_equal(activation_numba.dropout_backward(gy, mask, p),
                                      dropout_backward_reference(gy, mask, p))


@st.composite
def softmax_problem(draw):
    """(logits (N, K), target, gloss) with maybe-planted NaN/Inf in the logits and the gradient."""
    N, K = draw(st.integers(1, 5)), draw(st.integers(1, 7))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    logits = plant_non_finite(draw, (rng.standard_normal((N, K)) * 3).astype(dtype), rng)
    gloss = plant_non_finite(draw, rng.standard_normal(N).astype(dtype), rng)
    return logits, rng.integers(0, K, N), gloss


@SETTINGS
@given(softmax_problem())
def test_softmax_cross_entropy_kernels_equal_reference(problem):
    logits, target, gloss = problem
    rtol, atol = (2e-6, 1e-7) if logits.dtype == np.float32 else (1e-13, 1e-15)
    with np.errstate(invalid="ignore"):
        loss, probs = loss_numba.softmax_cross_entropy_forward(logits, target)
        loss_ref, probs_ref = softmax_cross_entropy_forward_reference(logits, target)
        g_ref = softmax_cross_entropy_backward_reference(gloss, probs_ref, target)
        g = loss_numba.softmax_cross_entropy_backward(gloss, probs_ref, target)
    np.testing.assert_allclose(loss, loss_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(probs, probs_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=atol)
