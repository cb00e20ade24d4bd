"""kernels/gemm.py's ``gemm_batched``: np.matmul's result for stacks, in one OpenBLAS call where it can.

Checked against np.matmul over generated stacks (leading shapes, transposed operands, both
float dtypes, sizes on both sides of the small-matrix cut-off), that the one-call path is
the one taken where it should be (and never below the cut-off, where NumPy's OpenBLAS
crashes), the fallbacks, and the Winograd convolution on it.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv as tc
import tinyconv.backends
import tinyconv.functional as F
from tinyconv.kernels import gemm as G


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls that went to OpenBLAS's batched GEMM (True) or were declined (False)."""
    seen = []
    real = G._call_batched

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]
    monkeypatch.setattr(G, "_call_batched", spy)
    return seen


def _batched_or_skip():
    G.gemm_batched(*(np.zeros((1, 1, 1)),) * 3)            # finds the library
    if not G._batched:
        pytest.skip("this NumPy's BLAS has no cblas_?gemm_batch_strided (not OpenBLAS >= 0.3.29): "
                    "gemm_batched is np.matmul here")


def _operand(rng, lead, rows, cols, dtype, transposed):
    """A (lead..., rows, cols) stack, stored transposed (columns contiguous) when asked."""
    if transposed:
        return np.ascontiguousarray(rng.standard_normal((*lead, cols, rows)).astype(dtype)).swapaxes(-1, -2)
    return rng.standard_normal((*lead, rows, cols)).astype(dtype)


def _tolerance(a, b):
    eps = np.finfo(a.dtype).eps
    return 8 * eps * a.shape[-1] * (np.abs(a) @ np.abs(b)).max()


@settings(max_examples=40, deadline=None)
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=3), M=st.sampled_from([1, 7, 64, 130]),
       N=st.sampled_from([1, 5, 96, 129]), K=st.sampled_from([1, 3, 100, 160]),
       dtype=st.sampled_from([np.float32, np.float64]), ta=st.booleans(), tb=st.booleans(),
       seed=st.integers(0, 2**16))
def test_equals_matmul_on_any_stack(lead, M, N, K, dtype, ta, tb, seed):
    rng = np.random.default_rng(seed)
    a, b = _operand(rng, lead, M, K, dtype, ta), _operand(rng, lead, K, N, dtype, tb)
    out = np.full((*lead, M, N), np.nan, dtype)
    assert G.gemm_batched(a, b, out) is out
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=0, atol=_tolerance(a, b))


def test_large_products_take_one_call_and_small_ones_matmul(calls):
    _batched_or_skip()
    rng = np.random.default_rng(0)
    for (M, N, K), taken in (((128, 256, 192), True), ((101, 100, 100), True), ((100, 100, 100), False),
                             ((4, 5, 6), False)):
        a, b = _operand(rng, (3, 2), M, K, np.float32, False), _operand(rng, (3, 2), K, N, np.float32, True)
        calls.clear()
        out = G.gemm_batched(a, b, np.empty((3, 2, M, N), np.float32))
        assert calls == [taken], (M, N, K)
        np.testing.assert_allclose(out, np.matmul(a, b), rtol=0, atol=_tolerance(a, b))


def test_small_products_never_reach_openblas(monkeypatch):
    # OpenBLAS's small-matrix batched path segfaults in NumPy's DYNAMIC_ARCH builds (<= 0.3.31)
    _batched_or_skip()

    def boom(*args):
        raise AssertionError("a product of <= 100^3 multiply-adds reached cblas_?gemm_batch_strided")
    boom.int_max = 2**62
    monkeypatch.setattr(G, "_batched", {np.dtype(np.float32): boom})
    a = np.ones((36, 100, 100), np.float32)
    out = G.gemm_batched(a, a, np.empty_like(a))
    assert (out == 100).all()


def test_layouts_it_cannot_take_fall_back_to_matmul(calls):
    _batched_or_skip()
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 3, 128, 128)).astype(np.float32)
    b = rng.standard_normal((4, 3, 128, 128)).astype(np.float32)
    cases = [base[:, ::2],                          # leading dimensions that do not flatten
             base[:, :, ::2, ::2],                  # neither rows nor columns contiguous
             base[::-1]]                            # negative batch stride
    for a in cases:
        bb = b[:, :a.shape[1], :a.shape[3], :a.shape[3]]
        out = np.empty((4, a.shape[1], a.shape[2], a.shape[3]), np.float32)
        calls.clear()
        G.gemm_batched(a, bb, out)
        assert True not in calls
        np.testing.assert_allclose(out, np.matmul(a, bb), rtol=0, atol=_tolerance(a, bb))
    a = base.reshape(12, 128, 128)
    out = np.empty((12, 128, 128), np.float32)
    G.gemm_batched(a, a, out)                       # the contiguous stack itself: one call
    assert calls[-1] is True
    calls.clear()
    want = np.matmul(a, a)
    G.gemm_batched(a, a, a)                         # out overlapping an operand: np.matmul buffers it
    assert calls == []
    np.testing.assert_array_equal(a, want)


def test_mixed_dtypes_broadcasting_and_empty_stacks_are_matmul(calls):
    a32, a64 = np.ones((2, 128, 128), np.float32), np.ones((2, 128, 128))
    out = G.gemm_batched(a32, a64, np.empty((2, 128, 128), np.float32))     # NumPy casts
    assert (out == 128).all()
    out = G.gemm_batched(np.ones((1, 128, 128), np.float32), a32, np.empty((2, 128, 128), np.float32))
    assert (out == 128).all()                       # broadcast leading dims: np.matmul does it
    empty = G.gemm_batched(np.ones((0, 3, 4)), np.ones((0, 4, 5)), np.empty((0, 3, 5)))
    assert empty.shape == (0, 3, 5)
    zero_k = G.gemm_batched(np.ones((2, 128, 0)), np.ones((2, 0, 128)), np.full((2, 128, 128), 7.0))
    assert (zero_k == 0).all()
    assert calls == []                              # none of these went to OpenBLAS's batched GEMM


def test_without_the_batched_function_it_is_matmul(monkeypatch, calls):
    monkeypatch.setattr(G, "_batched", {})
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((6, 128, 192)), rng.standard_normal((6, 192, 256))
    out = G.gemm_batched(a, b, np.empty((6, 128, 256)))
    assert calls == []
    np.testing.assert_array_equal(out, np.matmul(a, b))


def test_a_function_that_computes_wrongly_is_not_trusted():
    def zeros(order, ta, tb, M, N, K, alpha, pa, lda, sa, pb, ldb, sb, beta, pc, ldc, sc, count):
        np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * (count * sc)).from_address(pc))[:] = 0
    zeros.int_max = 2**31 - 1
    assert G._self_check(zeros, np.dtype(np.float32)) is False
    _batched_or_skip()
    assert all(G._self_check(f, dt) for dt, f in G._batched.items())


def test_integer_width_follows_the_openblas_build():
    _batched_or_skip()
    from threadpoolctl import threadpool_info
    info = [p for p in threadpool_info() if p.get("internal_api") == "openblas"]
    f = next(iter(G._batched.values()))
    ilp64 = any("64" in p.get("prefix", "") or "64_" in p["filepath"] for p in info)
    assert f.int_max == (2**63 - 1 if ilp64 else 2**31 - 1)


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_conv_on_the_batched_path_equals_im2col(m, calls):
    # a layer large enough for one call per GEMM (M*N*K > 100^3 per position and group)
    _batched_or_skip()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 256, 16, 16))
    w = rng.standard_normal((256, 128, 3, 3)) / 34
    gy = rng.standard_normal((8, 256, 16, 16))
    results = {}
    previous = tinyconv.backends.conv_algorithm
    try:
        for algo in ("im2col", f"winograd{m}x{m}"):
            tinyconv.backends.conv_algorithm = algo
            xt, wt = tc.tensor(x, requires_grad=True), tc.tensor(w, requires_grad=True)
            calls.clear()
            y = F.conv2d(xt, wt, padding=1, groups=2)
            y.backward(tc.tensor(gy))
            results[algo] = (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), list(calls))
    finally:
        tinyconv.backends.conv_algorithm = previous
    *got, used = results[f"winograd{m}x{m}"]
    assert used == [True, True, True]               # M, gV and gU: one call each
    for g, want in zip(got, results["im2col"][:3]):
        np.testing.assert_allclose(g, want, rtol=0, atol=1e-10 * np.abs(want).max())


def test_finding_the_library_changes_nothing_in_the_process():
    # a fresh interpreter: the library scan must not import threadpoolctl (whose import sets
    # KMP_DUPLICATE_LIB_OK in the environment) nor change the environment otherwise
    import json
    import subprocess
    import sys
    code = ("import json, os, sys; import numpy as np; env = dict(os.environ)\n"
            "import tinyconv.kernels.gemm as G\n"
            "a = np.ones((2, 128, 128)); G.gemm_batched(a, a, np.empty_like(a))\n"
            "print(json.dumps({'threadpoolctl': 'threadpoolctl' in sys.modules,"
            " 'found': sorted(map(str, G._batched)),"
            " 'env': sorted(set(os.environ.items()) ^ set(env.items()))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["env"] == []
    if not got["found"]:
        pytest.skip("this NumPy's BLAS has no batched GEMM")
    assert got["found"] == ["float32", "float64"]
    assert got["threadpoolctl"] is False
