"""Winograd conv2d (issue 16 part 1): exactness in float64, float32 error within its stated model,
gradcheck, PyTorch parity, groups, odd sizes, the transform kernels, and the algorithm switch;
every test runs each variant F(m x m, r x r), m = 2, 4 and r = 3, 5."""
from fractions import Fraction

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
ALEXNET5 = {"conv2": (1, 96, 27, 27, 256, 2, 2)}       # 5x5
ODD = [(1, 3, 5, 7, 4, 1, 1), (2, 4, 9, 6, 6, 0, 2), (3, 2, 3, 3, 2, 1, 1), (1, 6, 11, 4, 3, 2, 3),
       (2, 2, 4, 5, 2, 3, 1)]          # padding 3 > 2: gx is cropped from a wider correlation
VARIANTS = [(m, r) for r in W.KERNELS for m in W.TILES]      # (m, r) of F(m x m, r x r)


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


def _data(case, dtype, seed=0, k=3):
    N, C, H, Wd, K, p, g = case
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, Wd)).astype(dtype)
    w = (r.standard_normal((K, C // g, k, k)) / np.sqrt(k * k * C / g)).astype(dtype)
    b = r.standard_normal(K).astype(dtype)
    return x, w, b


def _gy(case, k, seed, dtype=np.float64):
    N, C, H, Wd, K, p, g = case
    gy = np.random.default_rng(seed).standard_normal((N, K, H + 2 * p - k + 1, Wd + 2 * p - k + 1))
    return gy.astype(dtype)


def _run(x, w, b, p, g, gy=None):
    xt, wt, bt = (tc.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, padding=p, groups=g)
    if gy is None:
        return y.array
    y.backward(tc.tensor(gy))
    return y.array, xt.grad.array, wt.grad.array, bt.grad.array


def test_transform_matrices_compute_f23_by_hand():
    """The module docstring's four multiplies m1..m4 are B^T, G, A^T: y = A^T[(G g) * (B^T d)]."""
    BT, G, AT = W.transforms(2, 3, np.float64)
    d, g = np.array([3.0, -1.0, 4.0, 2.0]), np.array([0.5, 2.0, -3.0])
    direct = np.array([d[0:3] @ g, d[1:4] @ g])
    assert np.allclose(AT @ ((G @ g) * (BT @ d)), direct, rtol=0, atol=1e-14)


@pytest.mark.parametrize("m", W.TILES)
def test_1d_transforms_equal_correlation_exactly(m):
    """On integers every F(m, 3) product is exact in float64 (F(4,3) has /24: scale by 24)."""
    BT, G, AT = W.transforms(m, 3, np.float64)
    r = np.random.default_rng(1)
    d, g = r.integers(-9, 9, m + 2).astype(float), 24 * r.integers(-9, 9, 3).astype(float)
    direct = np.array([d[k:k + 3] @ g for k in range(m)])
    np.testing.assert_array_equal(AT @ ((G @ g) * (BT @ d)), direct)


@pytest.mark.parametrize("m, r, points", [(m, r, p) for (m, r), p in W.POINTS.items()]
                         + [(2, 3, (0, 1, -1)), (4, 3, (0, 1, -1, 2, -2)), (3, 4, (0, 1, -1, 2, 3)),
                            (1, 1, ()), (6, 3, (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)))])
def test_toom_cook_is_exact_correlation(m, r, points):
    """toom_cook's matrices compute the r-tap correlation exactly, in rational arithmetic."""
    BT, G, AT = W.toom_cook(m, r, points)
    a = m + r - 1
    rng = np.random.default_rng(m * 10 + r)
    for _ in range(5):
        d, g = ([Fraction(int(v)) for v in rng.integers(-9, 10, n)] for n in (a, r))
        Gg = [sum(G[k][j] * g[j] for j in range(r)) for k in range(a)]
        Bd = [sum(BT[k][u] * d[u] for u in range(a)) for k in range(a)]
        got = [sum(AT[i][k] * Gg[k] * Bd[k] for k in range(a)) for i in range(m)]
        assert got == [sum(d[i + j] * g[j] for j in range(r)) for i in range(m)]
    assert all(c.denominator == 1 for row in BT for c in row)        # B^T: integers


def test_toom_cook_gives_the_written_out_3x3_matrices():
    """Lavin & Gray's F(2,3) and F(4,3) tables are toom_cook's up to signs: for each point k,
    B^T's row k times s_k, G's row k times t_k and A^T's column k times s_k t_k (s, t = +-1)."""
    for m, points in ((2, (0, 1, -1)), (4, (0, 1, -1, 2, -2))):
        BT, G, AT = (np.array(t, dtype=np.float64) for t in W.toom_cook(m, 3, points))
        BTw, Gw, ATw = W.transforms(m, 3, np.float64)
        s = np.where(np.all(BTw == BT, axis=1), 1.0, -1.0)
        t = np.where(np.all(np.isclose(Gw, G, rtol=1e-15, atol=0), axis=1), 1.0, -1.0)
        np.testing.assert_array_equal(BTw, s[:, None] * BT)
        np.testing.assert_allclose(Gw, t[:, None] * G, rtol=1e-15, atol=0)
        np.testing.assert_array_equal(ATw, AT * (s * t)[None, :])


def test_toom_cook_rejects_wrong_points():
    with pytest.raises(ValueError, match="needs 5 distinct finite points"):
        W.toom_cook(2, 5, (0, 1, -1, 2))
    with pytest.raises(ValueError, match="needs 5 distinct finite points"):
        W.toom_cook(2, 5, (0, 1, -1, 2, 2))


def _fits(case, k):
    """The case with H, W raised so that the padded input holds a k x k kernel."""
    N, C, H, Wd, K, p, g = case
    return (N, C, max(H, k - 2 * p), max(Wd, k - 2 * p), K, p, g)


@pytest.mark.parametrize("m, k", VARIANTS)
@pytest.mark.parametrize("case", ODD + [(1, 8, 13, 13, 6, 1, 2), (2, 4, 27, 27, 4, 2, 2)])
def test_float64_forward_and_backward_equal_im2col(kernel_mode, winograd, m, k, case):
    case = _fits(case, k)
    x, w, b = _data(case, np.float64, k=k)
    p, g = case[5], case[6]
    winograd("im2col")
    y0, *grads0 = _run(x, w, b, p, g, gy := _gy(case, k, 2))
    winograd(f"winograd{m}x{m}")
    y1, *grads1 = _run(x, w, b, p, g, gy)
    for got, want in zip([y1, *grads1], [y0, *grads0]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m, k", VARIANTS)
@pytest.mark.parametrize("case", ODD[:3])
def test_gradcheck(kernel_mode, winograd, m, k, case):
    winograd(f"winograd{m}x{m}")
    case = _fits(case, k)
    x, w, b = _data(case, np.float64, k=k)
    p, g = case[5], case[6]
    inputs = [tc.tensor(a, requires_grad=True) for a in (x, w, b)]
    assert tc.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=p, groups=g), inputs)


@pytest.mark.parametrize("m, k, mode, name",
                         [(m, 3, "fast", n) for m in W.TILES for n in ALEXNET]
                         + [(m, 5, "fast", "conv2") for m in W.TILES]
                         + [(m, k, mode, n) for m, k in VARIANTS for mode, n in
                            (("fast", "odd"), ("reference", "odd"),
                             ("reference", "conv4" if k == 3 else "conv2"))])
def test_float32_error_within_the_model(winograd, m, k, mode, name):
    """|y32 - y64| <= error_bound (the stated gamma_n model), forward and both gradients.

    The float64 im2col result is the "exact" one; its own error (gamma_K in float64, 1e-13
    relative) is added to the bound.  Also: the error it bounds is real (nonzero), and the
    bound is under 10% of the result's scale (worst case; F(4,3)'s is about 2%, F(2,3)'s
    0.2%), so a wrong transform entry or index, an O(1) error, fails.
    The AlexNet shapes (C up to 384, so long GEMM chains) run with the fast kernels; the
    reference path runs the small shape and conv4 or conv2 (groups=2).
    """
    case = {**ALEXNET, **ALEXNET5}[name] if name != "odd" else (2, 5, 7, 9, 6, 1, 1)
    p, g = case[5], case[6]
    x, w, b = _data(case, np.float32, k=k)
    gy = _gy(case, k, 3, np.float32)
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


@pytest.mark.parametrize("k", W.KERNELS)
@pytest.mark.parametrize("case", [(2, 4, 7, 9, 6, 1, 1), (1, 6, 13, 13, 4, 1, 2), (2, 6, 11, 10, 4, 2, 2)])
def test_matches_torch(kernel_mode, torch, algorithm, case, k):
    """Same results as torch's conv2d: in float32 to 1e-4, except Winograd's 5x5 variants,
    whose float32 error (about 1e-5 of the result's scale, more than 1e-4 on the largest
    gw entries) is bounded by test_float32_error_within_the_model: those compare in float64."""
    dtype, tol = (np.float64, 1e-10) if k == 5 and algorithm != "im2col" else (np.float32, 1e-4)
    x, w, b = _data(case, dtype, k=k)
    p, g = case[5], case[6]
    gy = _gy(case, k, 4, dtype)
    got = _run(x, w, b, p, g, gy)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv2d(xt, wt, bt, padding=p, groups=g)
    y.backward(torch.tensor(gy))
    for a, t in zip(got, (y, xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("k", W.KERNELS)
def test_padding_same_and_no_bias(kernel_mode, torch, winograd, k):
    winograd("winograd4x4")
    x, w, _ = _data((2, 3, 6, 7, 4, 1, 1), np.float64, k=k)
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
@pytest.mark.parametrize("m, k", VARIANTS)
def test_fast_kernels_equal_reference(m, k, geometry, dtype, tol):
    """The kernels of each variant against the references: F(2x2, 5x5)'s G and A^T by the
    generic ``_rows``, every other matrix by its hand-written row function."""
    BT, G, AT = W.transforms(m, k, np.float64)
    for L, role in zip((BT, BT.T, G, G.T, AT, AT.T), winograd_numba.ROLES):   # F(2, 5)'s B^T is F(4, 3)'s
        hand_written = winograd_numba.row_code(L.astype(dtype), role) != 0
        assert hand_written == (k == 3 or m == 4 or L.shape == (6, 6))
        other = {"BT": "B", "B": "BT"}.get(role)        # B^T and B share a shape: each only in its role
        assert other is None or winograd_numba.row_code(L.astype(dtype), other) == 0
    N, C, H, Wd, K, top, left = geometry
    geometry = (N, C, max(H, k - 2 * top), max(Wd, k - 2 * left), K, top, left)
    _kernels_against_references(BT, G, AT, m, geometry, dtype, tol)


@pytest.mark.parametrize("m, k", [(3, 3), (2, 5), (1, 2)])
@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_generic_kernels_take_any_matrices(m, k, geometry):
    """Any (B^T, G, A^T) of a tile a = m + k - 1 runs the generic ``_rows`` path, kernel = reference."""
    r = np.random.default_rng(7)
    a = m + k - 1
    BT, G, AT = r.standard_normal((a, a)), r.standard_normal((a, k)), r.standard_normal((m, a))
    BT[0, 1] = G[1, 0] = AT[0, 0] = 0                # zero entries are skipped
    assert all(winograd_numba.row_code(BT, role) == 0 for role in winograd_numba.ROLES)
    N, C, H, Wd, K, top, left = geometry
    geometry = (N, C, max(H, k), max(Wd, k), K, top, left)
    _kernels_against_references(BT, G, AT, m, geometry, np.float64, 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_functions_equal_the_generic_one(dtype):
    """Each hand-written row function computes L @ rows exactly as ``_rows`` reads it from L, and
    its role's dispatcher runs it by its row_code (code 0: ``_rows``)."""
    r = np.random.default_rng(8)
    for role, known in winograd_numba.SPECIALISED.items():
        dispatch = winograd_numba.DISPATCH[role]
        for code, (L, fn) in enumerate(known, 1):
            L = L.astype(dtype)
            assert winograd_numba.row_code(L, role) == code
            p, q = L.shape
            n, ss, ds = 13, 17, 19                     # rows n long, src rows ss apart, dst rows ds apart
            src = r.standard_normal(3 + q * ss).astype(dtype)
            want = L @ np.stack([src[3 + u * ss:3 + u * ss + n] for u in range(q)])
            for f in (fn, winograd_numba._rows, lambda *a, code=code, d=dispatch: d(code, *a),
                      lambda *a, d=dispatch: d(0, *a)):
                dst = np.zeros(5 + p * ds, dtype)
                f(L, src, 3, ss, dst, 5, ds, n)
                got = np.stack([dst[5 + i * ds:5 + i * ds + n] for i in range(p)])
                np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                           atol=1e-5 if dtype == np.float32 else 1e-13)


def test_explicit_choices():
    x, w = np.zeros((1, 64, 8, 8), np.float32), tc.zeros(64, 64, 3, 3)
    assert W.choose("im2col", x, w, (1, 1), (1, 1), 1) is None
    for k in W.KERNELS:
        w = tc.zeros(64, 64, k, k)
        assert W.choose("winograd", x, w, (1, 1), (1, 1), 1) == 4
        assert W.choose("winograd4x4", x, w, (1, 1), (1, 1), 1) == 4
        assert W.choose("winograd2x2", x, w, (1, 1), (1, 1), 1) == 2
    not_winograd = (((2, 2), (1, 1), (3, 3)), ((1, 1), (2, 2), (3, 3)), ((1, 1), (1, 1), (7, 7)),
                    ((1, 1), (1, 1), (1, 1)), ((1, 1), (1, 1), (3, 5)), ((2, 1), (1, 1), (5, 5)))
    for stride, dilation, shape in not_winograd:
        assert W.choose("winograd", x, tc.zeros(64, 64, *shape), stride, dilation, 1) is None
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        W.choose("fft", x, w, (1, 1), (1, 1), 1)


# (N, C, K, H, groups, k, expected m): the paper's layers at its batch 128 and at batch 1 and
# 4, and each row of AUTO_RULE at and just below its corner
AUTO_CASES = [(128, 96, 256, 27, 2, 5, 4), (128, 256, 384, 13, 1, 3, 4), (128, 384, 256, 13, 2, 3, 4),
              (1, 256, 384, 13, 1, 3, None), (1, 96, 256, 27, 2, 5, None), (4, 256, 384, 13, 1, 3, 4),
              (4, 384, 256, 13, 2, 3, None), (4, 96, 256, 27, 2, 5, 4), (16, 96, 256, 27, 2, 5, 4),
              (12, 16, 16, 32, 1, 3, 4), (11, 16, 16, 32, 1, 3, None), (12, 15, 64, 32, 1, 3, None),
              (3, 128, 128, 32, 1, 3, 4), (2, 128, 128, 32, 1, 3, None), (3, 127, 127, 32, 1, 3, None),
              (3, 16, 16, 32, 1, 5, 4), (3, 15, 64, 32, 1, 5, None), (2, 16, 16, 32, 1, 5, None),
              (1, 64, 64, 32, 1, 5, 4), (1, 63, 64, 32, 1, 5, None), (1, 64, 64, 28, 1, 5, None),
              (4, 256, 256, 16, 1, 3, 4), (3, 256, 256, 16, 1, 3, None), (4, 512, 510, 16, 2, 3, None),
              (64, 1, 24, 28, 1, 5, None), (64, 24, 48, 13, 2, 3, None)]        # small28's conv1, conv2


@pytest.mark.parametrize("N, C, K, H, g, k, want", AUTO_CASES)
def test_auto_follows_the_measured_table(N, C, K, H, g, k, want):
    x, w = np.zeros((N, C, H, H), np.float32), tc.zeros(K, C // g, k, k)
    assert W.choose("auto", x, w, (1, 1), (1, 1), g) == want
    assert W.choose("auto", x.astype(np.float16), w, (1, 1), (1, 1), g) is None


def test_auto_is_what_conv2d_runs(winograd, monkeypatch):
    """conv2d under "auto" runs Winograd exactly where choose() says so (and F(4x4) then)."""
    seen = []
    real = W.winograd_conv2d
    monkeypatch.setattr(W, "winograd_conv2d", lambda *a: seen.append(a[-1]) or real(*a))
    winograd("auto")
    for x_shape, w_shape, g, want in (((4, 256, 13, 13), (384, 256, 3, 3), 1, [4]),
                                      ((1, 256, 13, 13), (384, 256, 3, 3), 1, []),
                                      ((16, 96, 27, 27), (256, 48, 5, 5), 2, [4]),
                                      ((4, 96, 27, 27), (256, 48, 5, 5), 2, [4]),
                                      ((1, 96, 27, 27), (256, 48, 5, 5), 2, [])):
        seen.clear()
        F.conv2d(tc.zeros(*x_shape), tc.zeros(*w_shape), padding=w_shape[2] // 2, groups=g)
        assert seen == want


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
                  H=st.integers(1, 9), Wd=st.integers(1, 9), p=st.integers(0, 3), m=st.sampled_from(W.TILES),
                  k=st.sampled_from(W.KERNELS))
def test_any_shape_matches_im2col_in_float64(N, Cg, Kg, g, H, Wd, p, m, k):
    hypothesis.assume(H + 2 * p >= k and Wd + 2 * p >= k)
    case = (N, Cg * g, H, Wd, Kg * g, p, g)
    x, w, b = _data(case, np.float64, k=k)
    gy = _gy(case, k, 6)
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
