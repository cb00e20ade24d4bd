"""Winograd conv2d (issue 16 part 1): exactness in float64, float32 error within its stated model,
gradcheck, PyTorch parity, groups, odd sizes, the transform kernels, and the algorithm switch."""
import numpy as np
import pytest

import tinyconv as tc
import tinyconv.backends
import tinyconv.functional as F
from tinyconv.functional import conv_winograd as W
from tinyconv.kernels import winograd_numba

# (N, C, H, W, K, padding, groups)
ALEXNET = {"conv3": (1, 256, 13, 13, 384, 1, 1), "conv4": (1, 384, 13, 13, 384, 1, 2),
           "conv5": (1, 384, 13, 13, 256, 1, 2)}
ODD = [(1, 3, 5, 7, 4, 1, 1), (2, 4, 9, 6, 6, 0, 2), (3, 2, 3, 3, 2, 1, 1), (1, 6, 11, 4, 3, 2, 3),
       (2, 2, 4, 5, 2, 3, 1)]          # padding 3 > 2: gx is cropped from a wider correlation
TILES = [2, 4]


@pytest.fixture(params=["im2col", "winograd2x2", "winograd4x4"])
def algorithm(request):
    previous, tinyconv.backends.conv_algorithm = tinyconv.backends.conv_algorithm, request.param
    yield request.param
    tinyconv.backends.conv_algorithm = previous


@pytest.fixture
def winograd(request):
    """Set conv_algorithm for the test (default "winograd2x2"); restore it afterwards."""
    previous = tinyconv.backends.conv_algorithm

    def use(name):
        tinyconv.backends.conv_algorithm = name
    yield use
    tinyconv.backends.conv_algorithm = previous


def _data(case, dtype, seed=0):
    N, C, H, Wd, K, p, g = case
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, Wd)).astype(dtype)
    w = (r.standard_normal((K, C // g, 3, 3)) / np.sqrt(9 * C / g)).astype(dtype)
    b = r.standard_normal(K).astype(dtype)
    return x, w, b


def _run(x, w, b, p, g, gy=None):
    xt, wt, bt = (tc.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, padding=p, groups=g)
    if gy is None:
        return y.array
    y.backward(tc.tensor(gy))
    return y.array, xt.grad.array, wt.grad.array, bt.grad.array


def test_transform_matrices_compute_f23_by_hand():
    """The module docstring's four multiplies m1..m4 are B^T, G, A^T: y = A^T[(G g) * (B^T d)]."""
    BT, G, AT = W.transforms(2, np.float64)
    d, g = np.array([3.0, -1.0, 4.0, 2.0]), np.array([0.5, 2.0, -3.0])
    direct = np.array([d[0:3] @ g, d[1:4] @ g])
    assert np.allclose(AT @ ((G @ g) * (BT @ d)), direct, rtol=0, atol=1e-14)


@pytest.mark.parametrize("m", TILES)
def test_1d_transforms_equal_correlation_exactly(m):
    """On integers every F(m, 3) product is exact in float64 (F(4,3) has /24: scale by 24)."""
    BT, G, AT = W.transforms(m, np.float64)
    r = np.random.default_rng(1)
    d, g = r.integers(-9, 9, m + 2).astype(float), 24 * r.integers(-9, 9, 3).astype(float)
    direct = np.array([d[k:k + 3] @ g for k in range(m)])
    np.testing.assert_array_equal(AT @ ((G @ g) * (BT @ d)), direct)


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("case", ODD + [ALEXNET["conv4"][:1] + (8, 13, 13, 6, 1, 2)])
def test_float64_forward_and_backward_equal_im2col(kernel_mode, winograd, m, case):
    x, w, b = _data(case, np.float64)
    p, g = case[5], case[6]
    winograd("im2col")
    y0, *grads0 = _run(x, w, b, p, g, gy := np.random.default_rng(2).standard_normal(
        (case[0], case[4], case[2] + 2 * p - 2, case[3] + 2 * p - 2)))
    winograd(f"winograd{m}x{m}")
    y1, *grads1 = _run(x, w, b, p, g, gy)
    for got, want in zip([y1, *grads1], [y0, *grads0]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("case", ODD[:3])
def test_gradcheck(kernel_mode, winograd, m, case):
    winograd(f"winograd{m}x{m}")
    x, w, b = _data(case, np.float64)
    p, g = case[5], case[6]
    inputs = [tc.tensor(a, requires_grad=True) for a in (x, w, b)]
    assert tc.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=p, groups=g), inputs)


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("mode, name", [("fast", n) for n in ALEXNET] + [("fast", "odd"),
                                        ("reference", "conv4"), ("reference", "odd")])
def test_float32_error_within_the_model(winograd, m, mode, name):
    """|y32 - y64| <= error_bound (the stated gamma_n model), forward and both gradients.

    The float64 im2col result is the "exact" one; its own error (gamma_K in float64, 1e-13
    relative) is added to the bound.  Also: the error it bounds is real (nonzero), and the
    bound is under 10% of the result's scale (worst case; F(4,3)'s is about 2%, F(2,3)'s
    0.2%), so a wrong transform entry or index, an O(1) error, fails.
    The AlexNet shapes (C up to 384, so long GEMM chains) run with the fast kernels; the
    reference path runs the small shape and conv4 (groups=2).
    """
    case = ALEXNET[name] if name != "odd" else (2, 5, 7, 9, 6, 1, 1)
    p, g = case[5], case[6]
    x, w, b = _data(case, np.float32)
    gy = np.random.default_rng(3).standard_normal((case[0], case[4], case[2] + 2 * p - 2,
                                                   case[3] + 2 * p - 2)).astype(np.float32)
    winograd("im2col")
    exact = _run(*(a.astype(np.float64) for a in (x, w, b)), p, g, gy.astype(np.float64))
    winograd(f"winograd{m}x{m}")
    with tc.use_kernels(mode):
        got = _run(x, w, b, p, g, gy)
    by = W.error_bound(x, w, (p, p), g, m) + 1e-13 * np.abs(exact[0]).max()
    bx, bw = W.backward_error_bounds(x, w, gy, (p, p), g, m)
    for k, bound in ((0, by), (1, bx + 1e-13 * np.abs(exact[1]).max()),
                     (2, bw + 1e-13 * np.abs(exact[2]).max())):
        err = np.abs(got[k] - exact[k])
        assert np.all(err <= bound), (k, float((err / bound).max()))
        assert err.max() > 0
        assert bound.max() < 0.1 * np.abs(exact[k]).max()


@pytest.mark.parametrize("case", [(2, 4, 7, 9, 6, 1, 1), (1, 6, 13, 13, 4, 1, 2)])
def test_matches_torch(kernel_mode, torch, algorithm, case):
    x, w, b = _data(case, np.float32)
    p, g = case[5], case[6]
    gy = np.random.default_rng(4).standard_normal(
        (case[0], case[4], case[2] + 2 * p - 2, case[3] + 2 * p - 2)).astype(np.float32)
    got = _run(x, w, b, p, g, gy)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv2d(xt, wt, bt, padding=p, groups=g)
    y.backward(torch.tensor(gy))
    for a, t in zip(got, (y, xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_padding_same_and_no_bias(kernel_mode, torch, winograd):
    winograd("winograd4x4")
    x, w, _ = _data((2, 3, 6, 7, 4, 1, 1), np.float64)
    y = F.conv2d(tc.tensor(x), tc.tensor(w), padding="same")
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same")
    np.testing.assert_allclose(y.array, want.numpy(), rtol=1e-12, atol=1e-12)


def _kernels_against_references(BT, G, AT, m, geometry, dtype, tol):
    """Each Numba transform against its NumPy reference on random data (also into ``out``)."""
    r = np.random.default_rng(5)
    BT, G, AT = (t.astype(dtype) for t in (BT, G, AT))
    N, C, H, Wd, K, top, left = geometry
    a, k = BT.shape[0], G.shape[1]
    OH, OW = H + 2 * top - k + 1, Wd + 2 * left - k + 1
    th, tw = W.tiles(OH, OW, m)
    P = N * th * tw
    x, w, gy = (r.standard_normal(s).astype(dtype) for s in ((N, C, H, Wd), (K, C, k, k), (N, K, OH, OW)))
    V, M, b = (r.standard_normal(s).astype(dtype) for s in ((a * a, C, P), (a * a, K, P), (K,)))
    pairs = [("input_transform", (x, BT, m, top, left, th, tw)),
             ("input_adjoint", (V, BT, m, top, left, th, tw, x.shape)),
             ("filter_transform", (w, G)), ("filter_adjoint", (M[:, :, :C].copy(), G)),
             ("output_transform", (M, AT, m, N, OH, OW, b)), ("output_transform", (M, AT, m, N, OH, OW)),
             ("output_adjoint", (gy, AT, m))]
    for name, args in pairs:
        fast = getattr(winograd_numba, name)(*args)
        ref = getattr(W, name + "_reference")(*args)
        assert fast.dtype == dtype and fast.shape == ref.shape, name
        np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol * np.abs(ref).max(), err_msg=name)
        if name in ("input_transform", "filter_transform", "output_adjoint"):
            out = np.full(ref.shape, np.nan, dtype)             # the op's recycled / workspace arrays
            assert getattr(winograd_numba, name)(*args, out=out) is out
            np.testing.assert_allclose(out, fast, rtol=0, atol=0, err_msg=name)
            assert getattr(W, name + "_reference")(*args, out=out) is out


# (N, C, H, W, K, top, left): edge tiles in both directions, N = 1, 1x1 images, padding 0..2
GEOMETRIES = [(2, 3, 7, 5, 4, 1, 1), (1, 2, 13, 13, 3, 1, 1), (3, 1, 4, 9, 2, 0, 0), (1, 1, 1, 1, 1, 1, 1),
              (2, 2, 6, 3, 5, 2, 2), (1, 4, 5, 8, 2, 0, 2)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("m", TILES)
def test_fast_kernels_equal_reference(m, geometry, dtype, tol):
    """The hand-written F(2x2,3x3) / F(4x4,3x3) row functions in the kernels, against the references."""
    BT, G, AT = W.transforms(m, np.float64)
    for L in (BT, BT.T, G, G.T, AT, AT.T):      # these matrices take the hand-written path
        assert winograd_numba.row_function(L.astype(dtype)) is not winograd_numba._rows
    _kernels_against_references(BT, G, AT, m, geometry, dtype, tol)


@pytest.mark.parametrize("m, k", [(3, 3), (2, 5), (1, 2)])
@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_generic_kernels_take_any_matrices(m, k, geometry):
    """Any (B^T, G, A^T) of a tile a = m + k - 1 runs the generic ``_rows`` path, kernel = reference."""
    r = np.random.default_rng(7)
    a = m + k - 1
    BT, G, AT = r.standard_normal((a, a)), r.standard_normal((a, k)), r.standard_normal((m, a))
    BT[0, 1] = G[1, 0] = AT[0, 0] = 0                # zero entries are skipped
    assert winograd_numba.row_function(BT) is winograd_numba._rows
    N, C, H, Wd, K, top, left = geometry
    geometry = (N, C, max(H, k), max(Wd, k), K, top, left)
    _kernels_against_references(BT, G, AT, m, geometry, np.float64, 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_functions_equal_the_generic_one(dtype):
    """Each hand-written row function computes L @ rows exactly as ``_rows`` reads it from L."""
    r = np.random.default_rng(8)
    for L, fn in winograd_numba.SPECIALISED:
        L = L.astype(dtype)
        p, q = L.shape
        n, ss, ds = 13, 17, 19                         # rows n long, src rows ss apart, dst rows ds apart
        src = r.standard_normal(3 + q * ss).astype(dtype)
        want = L @ np.stack([src[3 + u * ss:3 + u * ss + n] for u in range(q)])
        for f in (fn, winograd_numba._rows):
            dst = np.zeros(5 + p * ds, dtype)
            f(L, src, 3, ss, dst, 5, ds, n)
            got = np.stack([dst[5 + i * ds:5 + i * ds + n] for i in range(p)])
            np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                       atol=1e-5 if dtype == np.float32 else 1e-13)


def test_auto_and_im2col_choices():
    x, w = np.zeros((1, 64, 8, 8), np.float32), tc.zeros(64, 64, 3, 3)
    assert W.choose("im2col", x, w, (1, 1), (1, 1), 1) is None
    assert W.choose("winograd", x, w, (1, 1), (1, 1), 1) == 4
    assert W.choose("winograd2x2", x, w, (1, 1), (1, 1), 1) == 2
    assert W.choose("auto", x, w, (1, 1), (1, 1), 1) is None      # the measured rule: AUTO_MIN_CHANNELS
    for stride, dilation, k in (((2, 2), (1, 1), 3), ((1, 1), (2, 2), 3), ((1, 1), (1, 1), 5)):
        assert W.choose("winograd", x, tc.zeros(64, 64, k, k), stride, dilation, 1) is None
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        W.choose("fft", x, w, (1, 1), (1, 1), 1)


def test_float16_uses_im2col():
    x = np.zeros((1, 64, 8, 8), np.float16)
    assert W.choose("winograd", x, tc.zeros(64, 64, 3, 3), (1, 1), (1, 1), 1) is None


def test_cuda_like_arrays_never_use_winograd():
    class NotNumpy:
        shape, dtype = (1, 64, 8, 8), np.dtype(np.float32)
    assert W.choose("winograd", NotNumpy(), tc.zeros(64, 64, 3, 3), (1, 1), (1, 1), 1) is None


def test_bad_algorithm_name_fails_in_conv2d(winograd):
    winograd("fastest")
    with pytest.raises(ValueError, match="tinyconv.backends.conv_algorithm"):
        F.conv2d(tc.zeros(1, 2, 5, 5), tc.zeros(2, 2, 3, 3))


hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
st = hypothesis.strategies


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(N=st.integers(1, 2), Cg=st.integers(1, 3), Kg=st.integers(1, 3), g=st.integers(1, 2),
                  H=st.integers(1, 9), Wd=st.integers(1, 9), p=st.integers(0, 3), m=st.sampled_from(TILES))
def test_any_shape_matches_im2col_in_float64(N, Cg, Kg, g, H, Wd, p, m):
    hypothesis.assume(H + 2 * p >= 3 and Wd + 2 * p >= 3)
    case = (N, Cg * g, H, Wd, Kg * g, p, g)
    x, w, b = _data(case, np.float64)
    gy = np.random.default_rng(6).standard_normal((N, Kg * g, H + 2 * p - 2, Wd + 2 * p - 2))
    previous = tinyconv.backends.conv_algorithm
    try:
        tinyconv.backends.conv_algorithm = "im2col"
        want = _run(x, w, b, p, g, gy)
        tinyconv.backends.conv_algorithm = f"winograd{m}x{m}"
        got = _run(x, w, b, p, g, gy)
    finally:
        tinyconv.backends.conv_algorithm = previous
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-9)
