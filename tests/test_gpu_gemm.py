"""The GPU path's GEMMs, proven on the emulated CuPy (tests/fake_cupy) without a GPU.

The fake models cuBLAS from raw pointers (each operand rebuilt from its address and
leading dimension, the leading dimensions checked as cuBLAS checks them, TF32 rounding
under ``CUBLAS_COMPUTE_32F_FAST_TF32``) and logs what CuPy's own ``matmul`` would call and
copy.  So these tests show, for conv2d and linear on "CUDA" arrays:

* every GEMM is one of ``kernels/gemm.py``'s cuBLAS calls, never CuPy's matmul;
* with ``backends.cudnn.allow_tf32`` every conv GEMM (forward, grad input, grad weight) and
  with ``backends.cuda.matmul.allow_tf32`` every linear GEMM is TF32, else strict FP32;
  float64 is dgemm whatever the flags say;
* no operand is copied (no ``ascontiguousarray``, ``copy``, ``astype`` of a device array);
* the numbers: strict FP32 matches the CPU, TF32 is within TF32's rounding of it.

The im2col / col2im kernels run from their g++ builds (tests/test_cuda_sources.py).
What this cannot show: cuBLAS's speed, or that real CuPy 14 has these names (read from
its source: cupy_backends/cuda/libs/cublas.pyx, cupy/cuda/__init__.py).
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv.functional import conv as CV
from tinyconv.kernels import cuda_loader
from tinyconv.kernels.gemm import gemm

sys.path.insert(0, os.path.dirname(__file__))
import test_cuda_sources as T  # noqa: E402

FAKE = os.path.join(os.path.dirname(__file__), "fake_cupy", "cupy", "__init__.py")


@pytest.fixture(scope="module")
def fake_module(tmp_path_factory):
    """The fake CuPy, loaded once, its kernels' host builds made once."""
    T.need(T.GXX, "g++ is not installed")
    saved = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    spec = importlib.util.spec_from_file_location("cupy", FAKE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cupy"] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    mod._runner = T.HostRunner(T.build_host_libs(str(tmp_path_factory.mktemp("fake_cupy_kernels"))))
    return mod


@pytest.fixture
def cp(fake_module, monkeypatch):
    """``import cupy`` finds the fake for one test; its logs start empty."""
    for name in ("cupy", "cupy.cuda", "cupy.cuda.cublas"):
        monkeypatch.setitem(sys.modules, name, {"cupy": fake_module, "cupy.cuda": fake_module.cuda,
                                                "cupy.cuda.cublas": fake_module.cuda.cublas}[name])
    monkeypatch.setattr(cuda_loader, "_modules", {})          # no fake RawModule outlives the test
    fake_module.cuda.cublas.calls.clear()
    fake_module.copies.clear()
    with tinyconv.use_kernels("fast"):
        yield fake_module


def _calls(cp):
    return list(cp.cuda.cublas.calls)


def _op_step(cp, op, arrays, gy, **kw):
    """``op`` forward and its node's backward on "CUDA" arrays -> (y, grads...) on the host.

    The counters of copies and cuBLAS calls start after the inputs are made, and the node's
    backward is called directly: what they count is the op's own work, not the autograd
    engine's (which copies a gradient it hands to a leaf's ``.grad``).
    """
    ts = [tinyconv.tensor(cp.asarray(a), requires_grad=True) for a in arrays]
    gy = cp.asarray(gy)
    cp.cuda.cublas.calls.clear()
    cp.copies.clear()
    y = op(*ts, **kw)
    grads = y.grad_fn.backward(gy)
    return [np.asarray(y.array)] + [np.asarray(g) for g in grads]


def _conv_step(cp, x, w, b, gy, **kw):
    """conv2d forward and backward on "CUDA" arrays -> (y, gx, gw, gb) on the host."""
    return _op_step(cp, F.conv2d, (x, w, b), gy, **kw)


def _cpu_conv_step(x, w, b, gy, **kw):
    xt, wt, bt = (tinyconv.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, **kw)
    y.backward(tinyconv.tensor(gy))
    return [a.array for a in (y, xt.grad, wt.grad, bt.grad)]


# (N, C, H, W, O, kh, kw, conv2d keywords): groups, stride, padding, dilation, one-sample batches
CONV_CASES = [
    (3, 4, 9, 8, 6, 3, 3, dict(stride=1, padding=1, groups=2)),
    (2, 3, 11, 11, 4, 5, 3, dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2))),
    (1, 6, 7, 7, 9, 3, 3, dict(padding="same", dilation=2, groups=3)),     # N = 1: NCHW in place
    (4, 2, 6, 5, 3, 1, 1, dict()),                                          # 1x1: the columns are kept
]


def _data(case, dtype, rng):
    N, C, H, W, O, kh, kw, kwargs = case
    G = kwargs.get("groups", 1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((O, C // G, kh, kw)) * 0.5).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    y_shape = F.conv2d(tinyconv.tensor(x), tinyconv.tensor(w), **kwargs).shape
    gy = rng.standard_normal(y_shape).astype(dtype)
    return x, w, b, gy, kwargs


@pytest.mark.parametrize("allow", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gemms_follow_cudnn_allow_tf32_and_copy_nothing(cp, case, allow, rng, monkeypatch):
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", allow)
    monkeypatch.setattr(tinyconv.backends.cuda.matmul, "allow_tf32", not allow)   # must not matter
    x, w, b, gy, kwargs = _data(case, np.float32, rng)
    got = _conv_step(cp, x, w, b, gy, **kwargs)
    calls = _calls(cp)
    G = kwargs.get("groups", 1)
    assert [c["fn"] for c in calls] == ["gemmEx"] * (3 * G), calls      # G forward, G for gW, G for gx
    assert all(c["tf32"] is allow for c in calls)
    assert sum(cp.copies.values()) == 0, dict(cp.copies)
    want = _cpu_conv_step(x, w, b, gy, **kwargs)
    for g, r in zip(got, want):
        if allow:       # inputs rounded to 10 mantissa bits: error ~ 2^-11 relative per product
            np.testing.assert_allclose(g, r, rtol=1e-2, atol=1e-2 * np.abs(r).max())
        else:
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * np.abs(r).max())
    if allow:           # TF32 really was applied (the fake rounds; a strict product would not differ)
        assert np.abs(got[0] - want[0]).max() > 1e-5 * np.abs(want[0]).max()


def test_conv_float64_is_dgemm_whatever_the_flags(cp, rng, monkeypatch):
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(tinyconv.backends.cuda.matmul, "allow_tf32", True)
    x, w, b, gy, kwargs = _data(CONV_CASES[0], np.float64, rng)
    got = _conv_step(cp, x, w, b, gy, **kwargs)
    calls = _calls(cp)
    assert [c["fn"] for c in calls] == ["dgemm"] * 6 and not any(c["tf32"] for c in calls)
    assert sum(cp.copies.values()) == 0
    for g, r in zip(got, _cpu_conv_step(x, w, b, gy, **kwargs)):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_conv_uses_the_batched_kernels(cp, rng):
    """im2col_batched / col2im_batched on CUDA: the kernels write and read the GEMM layout."""
    x, w, b, gy, kwargs = _data(CONV_CASES[0], np.float32, rng)
    runner = cp._runner
    n = len(runner.calls)
    _conv_step(cp, x, w, b, gy, **kwargs)
    launched = [expr for _, expr, _, _ in runner.calls[n:]]
    # forward unrolls x; backward unrolls it again (9x the bytes of x: recomputed) and folds gcols
    assert launched == ["im2col_kernel<float>", "im2col_kernel<float>", "col2im_kernel<float>"]


@pytest.mark.parametrize("case,kept", [(CONV_CASES[0], False), (CONV_CASES[3], True)])
def test_columns_kept_or_recomputed_by_bytes(cp, case, kept, rng):
    """3x3 stride 1: columns 9x the bytes of x > 4x, so x is kept; 1x1: columns = x, kept."""
    x, w, b, gy, kwargs = _data(case, np.float32, rng)
    xt, wt = (tinyconv.tensor(cp.asarray(a), requires_grad=True) for a in (x, w))
    y = F.conv2d(xt, wt, **kwargs)
    saved_x, _, saved_cols = y.grad_fn.saved_tensors
    assert (saved_cols is not None) is kept and (saved_x is not None) is (not kept)
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    ratio = C * kh * kw * y.shape[2] * y.shape[3] / (C * H * W)          # cols bytes / x bytes
    assert (ratio <= CV.RECOMPUTE_COLS_RATIO) is kept


@pytest.mark.parametrize("allow", [True, False])
def test_linear_gemms_follow_matmul_allow_tf32_and_copy_nothing(cp, allow, rng, monkeypatch):
    monkeypatch.setattr(tinyconv.backends.cuda.matmul, "allow_tf32", allow)
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", not allow)         # must not matter
    x, w = rng.standard_normal((2, 5, 12)).astype(np.float32), rng.standard_normal((7, 12)).astype(np.float32)
    b, gy = rng.standard_normal(7).astype(np.float32), rng.standard_normal((2, 5, 7)).astype(np.float32)

    got = _op_step(cp, F.linear, (x, w, b), gy)
    calls = _calls(cp)
    assert [c["fn"] for c in calls] == ["gemmEx"] * 3 and all(c["tf32"] is allow for c in calls)
    assert sum(cp.copies.values()) == 0, dict(cp.copies)
    xt, wt, bt = (tinyconv.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.linear(xt, wt, bt)
    y.backward(tinyconv.tensor(gy))
    tol = 1e-2 if allow else 1e-5
    for g, r in zip(got, [y.array, xt.grad.array, wt.grad.array, bt.grad.array]):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * np.abs(r).max())


# ---------------------------------------------------------------------------- matmul / @ / mm


def _cpu_matmul_step(a, b, gy):
    at, bt = (tinyconv.tensor(v, requires_grad=True) for v in (a, b))
    y = at @ bt
    y.backward(tinyconv.tensor(gy))
    return [y.array, at.grad.array, bt.grad.array]


@pytest.mark.parametrize("allow", [True, False])
@pytest.mark.parametrize("op", ["@", "mm", "matmul of a transpose"])
def test_matmul_2d_float32_follows_matmul_allow_tf32_not_cupy_tf32(cp, op, allow, rng, monkeypatch):
    """A 2-d float32 product on CUDA (forward and both gradients) is kernels/gemm.py's cuBLAS
    call in TF32 exactly when ``backends.cuda.matmul.allow_tf32``, as PyTorch; CuPy's own
    switch (``CUPY_TF32``, set here to say the opposite) and cudnn's flag do not matter."""
    monkeypatch.setattr(tinyconv.backends.cuda.matmul, "allow_tf32", allow)
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", not allow)
    monkeypatch.setenv("CUPY_TF32", "0" if allow else "1")
    a = rng.standard_normal((5, 12)).astype(np.float32)
    b = rng.standard_normal((12, 7)).astype(np.float32)
    gy = rng.standard_normal((5, 7)).astype(np.float32)
    fn = {"@": lambda x, y: x @ y, "mm": tinyconv.mm,
          "matmul of a transpose": lambda x, y: tinyconv.matmul(x, y.t().contiguous().t())}[op]
    got = _op_step(cp, fn, (a, b), gy)
    calls = _calls(cp)
    assert [c["fn"] for c in calls] == ["gemmEx"] * 3 and all(c["tf32"] is allow for c in calls), calls
    assert cp.copies.get("matmul", 0) == 0 and cp.copies.get("ascontiguousarray", 0) == 0, dict(cp.copies)
    want = _cpu_matmul_step(a, b, gy)
    tol = 1e-2 if allow else 1e-5
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * np.abs(r).max())
    if allow:           # TF32 really was applied
        assert np.abs(got[0] - want[0]).max() > 1e-5 * np.abs(want[0]).max()


def test_matmul_float64_and_batched_stay_cupys(cp, rng, monkeypatch):
    """float64 has no TF32, and a batched product is CuPy's stacked matmul (strict FP32)."""
    monkeypatch.setattr(tinyconv.backends.cuda.matmul, "allow_tf32", True)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    y = tinyconv.tensor(cp.asarray(a)) @ tinyconv.tensor(cp.asarray(b))
    assert [c["fn"] for c in _calls(cp)] == ["matmul:gemmEx"] and not _calls(cp)[0]["tf32"]
    np.testing.assert_allclose(np.asarray(y.array), a @ b, rtol=1e-13)
    cp.cuda.cublas.calls.clear()
    a3 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    tinyconv.tensor(cp.asarray(a3)) @ tinyconv.tensor(cp.asarray(b.astype(np.float32)))
    assert [c["fn"] for c in _calls(cp)] == ["matmul:gemmStridedBatchedEx"]


# ---------------------------------------------------------------------------- the helper and the fake


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_maps_row_major_to_cublas(cp, ta, tb, dtype, rng):
    """Every flag combination, operands stored C- or F-ordered, out a block of a larger array."""
    M, N, K = 5, 3, 7
    for order_a in "CF":
        for order_b in "CF":
            a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
            b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
            big = cp.asarray(np.full((M + 2, N + 4), 7, dtype))
            out = big[1:M + 1, 2:N + 2]                          # rows N + 4 apart
            ga, gb = (cp.asarray(np.asarray(v, order=o)) for v, o in ((a, order_a), (b, order_b)))
            gemm(ga, gb, out, trans_a=ta, trans_b=tb)
            want = (a.T if ta else a) @ (b.T if tb else b)
            np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5 if dtype == np.float32 else 1e-13)
            rest = np.asarray(big).copy()
            rest[1:M + 1, 2:N + 2] = 7
            assert (rest == 7).all()                             # nothing outside out was written
            gemm(ga, gb, out, trans_a=ta, trans_b=tb, accumulate=True)
            np.testing.assert_allclose(np.asarray(out), 2 * want, rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert sum(cp.copies.values()) == 0


def test_gemm_refuses_what_it_would_have_to_copy(cp):
    a = cp.asarray(np.ones((6, 8), np.float32))[::2, ::2]           # neither rows nor columns contiguous
    with pytest.raises(ValueError, match="neither contiguous rows nor contiguous columns"):
        gemm(a, cp.asarray(np.ones((4, 2), np.float32)), cp.empty((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"gemm: op\(a\) \(3, 4\) @ op\(b\) \(3, 2\)"):
        gemm(cp.ones((3, 4), np.float32), cp.ones((3, 2), np.float32), cp.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="one dtype"):
        gemm(cp.ones((3, 4), np.float32), cp.ones((4, 2)), cp.empty((3, 2), np.float32))
    with pytest.raises(ValueError, match="needs contiguous rows"):
        gemm(cp.ones((3, 4), np.float32), cp.ones((4, 2), np.float32), cp.empty((2, 3), np.float32).T)


def test_fake_cublas_has_teeth(cp):
    """The fake rejects a leading dimension cuBLAS would, and its TF32 path really rounds."""
    cublas = cp.cuda.cublas
    a = np.ones((4, 4), np.float32)
    one = np.ones((), np.float32)
    with pytest.raises(cublas.CUBLASError, match="INVALID_VALUE"):
        cublas.gemmEx(1, 0, 0, 4, 4, 4, one.ctypes.data, a.ctypes.data, 0, 3, a.ctypes.data, 0, 4,
                      one.ctypes.data, a.ctypes.data, 0, 4, cublas.CUBLAS_COMPUTE_32F, -1)
    x = np.float32(1 + 2**-12)                                      # not representable in TF32
    assert cp._tf32(np.array([x]))[0] == 1.0 and cp._tf32(np.array([1 + 2**-10], np.float32))[0] != 1.0


def test_fake_matmul_shows_what_cupy_matmul_would_do(cp, monkeypatch):
    """The model the tests above rely on: CuPy's stacked matmul copies a transposed operand and
    is strict FP32 even under CUPY_TF32=1; its 2-d matmul follows CUPY_TF32."""
    monkeypatch.setenv("CUPY_TF32", "1")
    a, b = cp.ones((2, 3, 4), np.float32), cp.ones((2, 5, 4), np.float32)
    cp.matmul(a, b.transpose(0, 2, 1))
    assert cp.copies["matmul"] == 1 and cp.cuda.cublas.calls[-1] == dict(
        fn="matmul:gemmStridedBatchedEx", tf32=False, dtype=np.float32)
    cp.ones((3, 4), np.float32) @ cp.ones((5, 4), np.float32).T
    assert cp.copies["matmul"] == 1 and cp.cuda.cublas.calls[-1]["tf32"] is True


def test_tf32_flags_default_as_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    assert tinyconv.backends.cudnn.allow_tf32 is torch.backends.cudnn.allow_tf32 is True
    assert tinyconv.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32 is False


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_on_numpy_is_matmul(ta, tb, rng):
    """The CPU path: NumPy's matmul on the transposed views (TF32 means nothing there)."""
    a = rng.standard_normal((7, 5) if ta else (5, 7))
    b = rng.standard_normal((3, 7) if tb else (7, 3))
    out = np.empty((5, 3))
    want = (a.T if ta else a) @ (b.T if tb else b)
    np.testing.assert_array_equal(gemm(a, b, out, trans_a=ta, trans_b=tb, tf32=True), want)
    np.testing.assert_array_equal(gemm(a, b, out, trans_a=ta, trans_b=tb, accumulate=True), 2 * want)


# ---------------------------------------------------------------------------- Winograd on CUDA

# (N, C, H, W, O, kh, kw, conv2d keywords): 3x3 and 5x5 stride 1, at least CUDA_AUTO_MIN_CHANNELS
WINOGRAD_CASES = [
    (2, 32, 6, 7, 32, 3, 3, dict(padding=1)),
    (1, 64, 7, 7, 64, 5, 5, dict(padding=2, groups=2)),
]


def _winograd_step(cp, case, dtype, rng):
    """(got, float64 im2col on the CPU, the node's class name, the a*a*G of the case)."""
    x, w, b, gy, kwargs = _data(case, dtype, rng)
    node = F.conv2d(tinyconv.tensor(cp.asarray(x)), tinyconv.tensor(cp.asarray(w), requires_grad=True),
                    **kwargs).grad_fn
    got = _conv_step(cp, x, w, b, gy, **kwargs)
    with _cpu_im2col():
        want = _cpu_conv_step(*(a.astype(np.float64) for a in (x, w, b, gy)), **kwargs)
    a = case[5] + 4 - 1                                      # F(4x4, r x r): a = 4 + r - 1
    return got, want, type(node).__name__, a * a * kwargs.get("groups", 1)


class _cpu_im2col:
    """The CPU reference conv as im2col, whatever ``backends.conv_algorithm`` says."""

    def __enter__(self):
        self.saved, tinyconv.backends.conv_algorithm = tinyconv.backends.conv_algorithm, "im2col"

    def __exit__(self, *exc):
        tinyconv.backends.conv_algorithm = self.saved


def _close_to(got, want, rtol):
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * np.abs(r).max())


@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_conv_strict_fp32_auto_is_winograd_on_strided_batched_cublas(cp, case, rng, monkeypatch):
    """Strict FP32 (cudnn.allow_tf32 False) and "auto": Winograd F(4x4), its a*a*G products one
    gemmStridedBatchedEx per pass (forward, gV, gU) in strict FP32, nothing copied."""
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", False)
    got, want, node, batch = _winograd_step(cp, case, np.float32, rng)
    assert node == "WinogradConv2dFn"
    calls = _calls(cp)
    assert [c["fn"] for c in calls] == ["gemmStridedBatchedEx"] * 3, calls
    assert all(c["batch"] == batch and c["tf32"] is False and c["dtype"] == np.float32 for c in calls)
    assert sum(cp.copies.values()) == 0, dict(cp.copies)
    _close_to(got, want, 1e-4)           # F(4x4): ~1e-5 of the largest value; a wrong index errs by O(1)


def test_conv_tf32_auto_and_forced_winograd(cp, rng, monkeypatch):
    """TF32 allowed: "auto" keeps 3x3 on im2col + TF32 cuBLAS, takes Winograd for 5x5
    (CUDA_AUTO_TF32_KERNELS), and Winograd, forced or not, stays strict FP32."""
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", True)
    got, want, node, _ = _winograd_step(cp, WINOGRAD_CASES[0], np.float32, rng)
    assert node == "Conv2dFn" and {c["fn"] for c in _calls(cp)} == {"gemmEx"}
    assert all(c["tf32"] for c in _calls(cp))
    got, want, node, batch = _winograd_step(cp, WINOGRAD_CASES[1], np.float32, rng)       # 5x5
    calls = _calls(cp)
    assert node == "WinogradConv2dFn" and [c["fn"] for c in calls] == ["gemmStridedBatchedEx"] * 3
    assert all(c["tf32"] is False and c["batch"] == batch for c in calls)
    _close_to(got, want, 1e-4)
    monkeypatch.setattr(tinyconv.backends.cuda, "conv_algorithm", "winograd2x2")
    got, want, node, _ = _winograd_step(cp, WINOGRAD_CASES[0], np.float32, rng)
    calls = _calls(cp)
    assert node == "WinogradConv2dFn" and [c["fn"] for c in calls] == ["gemmStridedBatchedEx"] * 3
    assert all(c["tf32"] is False and c["batch"] == 16 for c in calls)          # F(2x2, 3x3): a = 4
    _close_to(got, want, 1e-5)


def test_conv_winograd_float64_on_cuda(cp, rng, monkeypatch):
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", True)        # no TF32 for doubles
    got, want, node, _ = _winograd_step(cp, WINOGRAD_CASES[1], np.float64, rng)
    assert node == "WinogradConv2dFn"
    assert all(c["dtype"] == np.float64 and not c["tf32"] for c in _calls(cp))
    _close_to(got, want, 1e-11)


def test_conv_winograd_step_reads_nothing_back(cp, rng, monkeypatch):
    """A Winograd forward and backward makes no device-to-host read, no synchronisation and no
    host-to-device copy (the transform matrices are compiled into the kernels)."""
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", False)
    x, w, b, gy, kwargs = _data(WINOGRAD_CASES[0], np.float32, rng)
    ts = [tinyconv.tensor(cp.asarray(a), requires_grad=True) for a in (x, w, b)]
    gy = cp.asarray(gy)
    cp.counts.clear()
    y = F.conv2d(*ts, **kwargs)
    y.grad_fn.backward(gy)
    assert type(y.grad_fn).__name__ == "WinogradConv2dFn"
    assert not {k: v for k, v in cp.counts.items() if k in ("d2h", "sync", "h2d_pageable", "h2d_pinned")}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_batched_maps_stacks_to_cublas(cp, ta, tb, dtype, rng):
    """Stacks (3, 2, ., .) with transposed matrices and padded rows: one strided-batched call, as matmul."""
    from tinyconv.kernels.gemm import gemm_batched
    M, N, K = 5, 3, 7
    a = rng.standard_normal((3, 2) + ((K, M) if ta else (M, K))).astype(dtype)
    b = rng.standard_normal((3, 2) + ((N, K) if tb else (K, N))).astype(dtype)
    ga = cp.asarray(a).swapaxes(-1, -2) if ta else cp.asarray(a)
    gb = cp.asarray(b).swapaxes(-1, -2) if tb else cp.asarray(b)
    big = cp.asarray(np.full((3, 2, M, N + 2), 7, dtype))
    out = big[..., 1:N + 1]                                             # rows N + 2 apart
    gemm_batched(ga, gb, out)
    want = np.matmul(np.asarray(ga), np.asarray(gb))
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert (np.asarray(big)[..., 0] == 7).all() and (np.asarray(big)[..., -1] == 7).all()
    calls = _calls(cp)
    assert len(calls) == 1 and calls[0]["fn"] == "gemmStridedBatchedEx" and calls[0]["batch"] == 6
    assert calls[0]["tf32"] is False and sum(cp.copies.values()) == 0


def test_gemm_batched_on_cuda_refuses_what_it_would_have_to_copy(cp):
    from tinyconv.kernels.gemm import gemm_batched
    f = np.float32
    ok_b, ok_out = cp.ones((3, 2, 4, 5), f), cp.empty((3, 2, 3, 5), f)
    split = cp.ones((3, 4, 3, 4), f)[:, :2]                  # leading dims that do not flatten to one stride
    with pytest.raises(ValueError, match="not a stack of matrices with contiguous rows or columns at one"):
        gemm_batched(split, ok_b, ok_out)
    with pytest.raises(ValueError, match="stacks of one leading shape"):
        gemm_batched(cp.ones((2, 2, 3, 4), f), ok_b, ok_out)
    with pytest.raises(ValueError, match=r"a \(3, 2, 3, 5\) @ b \(3, 2, 4, 5\)"):
        gemm_batched(cp.ones((3, 2, 3, 5), f), ok_b, ok_out)
    with pytest.raises(TypeError, match="one dtype"):
        gemm_batched(cp.ones((3, 2, 3, 4)), ok_b, ok_out)
    with pytest.raises(ValueError, match="needs contiguous rows"):
        gemm_batched(cp.ones((3, 2, 3, 4), f), ok_b, cp.empty((3, 2, 5, 3), f).swapaxes(-1, -2))
    both = cp.ones((3, 2, 4, 4), f)
    with pytest.raises(ValueError, match="out overlaps an operand"):
        gemm_batched(both, cp.ones((3, 2, 4, 4), f), both)
    assert _calls(cp) == []
    out = cp.full((2, 3, 5), 7, f)
    gemm_batched(cp.ones((2, 3, 0), f), cp.ones((2, 0, 5), f), out)     # K = 0: zeros, no call
    assert (np.asarray(out) == 0).all() and _calls(cp) == []
