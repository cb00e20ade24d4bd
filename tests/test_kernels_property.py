"""Property tests (hypothesis): random valid shapes and hyper-parameters, fast kernel == reference.

For conv (im2col, col2im and their batched-layout forms), max-pool (forward with arg-max,
backward) and LRN (forward, backward), hypothesis draws a shape and the layer's
hyper-parameters (dilation included) within what the kernel contract allows, and the Numba kernel must give
the reference's answer: exactly for copies, compares and same-order sums, to float
rounding for LRN.  Examples are few and small so the suite stays fast.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tinyconv.functional.conv import col2im_reference, im2col_reference  # noqa: E402
from tinyconv.functional.lrn import lrn_backward_reference, lrn_forward_reference  # noqa: E402
from tinyconv.functional.pooling import (max_pool2d_backward_reference,  # noqa: E402
                                         max_pool2d_forward_reference)
from tinyconv.kernels import conv_numba, lrn_numba, pooling_numba  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
dtypes = st.sampled_from([np.float32, np.float64])


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
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((N, C, H, W)).astype(dtype)
    return x, kh, kw, sh, sw, ph, pw, dh, dw, groups


@SETTINGS
@given(conv_problem())
def test_conv_kernels_equal_reference(problem):
    x, kh, kw, sh, sw, ph, pw, dh, dw, G = problem
    args = (kh, kw, sh, sw, ph, pw, dh, dw)
    ref = im2col_reference(x, *args)
    np.testing.assert_array_equal(conv_numba.im2col(x, *args), ref)
    g = np.random.default_rng(1).standard_normal(ref.shape).astype(x.dtype)
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
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((N, C, H, W)) * 2
    return x.astype(dtype), size, alpha, beta, k


@SETTINGS
@given(lrn_problem())
def test_lrn_kernels_equal_reference(problem):
    x, size, alpha, beta, k = problem
    rtol, atol = (5e-6, 1e-6) if x.dtype == np.float32 else (1e-12, 1e-14)
    y, scale = lrn_numba.lrn_forward(x, size, alpha, beta, k)
    y_ref, scale_ref = lrn_forward_reference(x, size, alpha, beta, k)
    np.testing.assert_allclose(scale, scale_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol)
    gy = np.random.default_rng(3).standard_normal(x.shape).astype(x.dtype)
    np.testing.assert_allclose(lrn_numba.lrn_backward(gy, x, y_ref, scale_ref, size, alpha, beta),
                               lrn_backward_reference(gy, x, y_ref, scale_ref, size, alpha, beta),
                               rtol=10 * rtol, atol=10 * atol)
