"""ReLU, tanh, sigmoid and dropout: PyTorch parity, float64 gradcheck, dropout statistics, bad input."""
import warnings

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.functional as F
from tinyconv.backend import kernel
from tinyconv.functional.activation import (dropout_backward_reference, dropout_forward_reference,
                                            relu_backward_reference, relu_forward_reference)

def _away_from_kink(shape, seed):
    """Normal draws pushed at least 0.1 away from 0, so central differences never straddle it."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return x + np.where(x >= 0, 0.1, -0.1)


# --------------------------------------------------------------------------- relu, tanh, sigmoid


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_forward_and_backward(kernel_mode, name, dtype, torch):
    rng = np.random.default_rng(0)
    x_np = (rng.standard_normal((3, 4, 5, 6)) * 4).astype(dtype)
    x_np.flat[:3] = 0                                    # the ReLU kink: gradient 0, as PyTorch
    gy_np = rng.standard_normal(x_np.shape).astype(dtype)
    x = tc.tensor(x_np, requires_grad=True)
    y = getattr(F, name)(x)
    y.backward(tc.tensor(gy_np))
    torch_fn = {"relu": torch.nn.functional.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[name]
    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch_fn(xt)
    yt.backward(torch.tensor(gy_np))
    # float32: NumPy's and PyTorch's tanh may differ by an ulp of y (6e-8 near 1), which
    # 1 - y^2 turns into an absolute error of about 2 * 6e-8 * |gy| in the gradient
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)
    assert y.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(y.array, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy(), **tol)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_gradcheck(kernel_mode, name):
    x = tc.tensor(_away_from_kink((2, 3, 4), seed=1) * 2, requires_grad=True)
    assert tc.gradcheck(getattr(F, name), [x])


def test_relu_values_and_gradient_by_hand(kernel_mode):
    x = tc.tensor([[-2.0, -0.0, 0.0, 0.5, 3.0]], requires_grad=True)
    y = F.relu(x)
    y.backward(tc.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    assert y.tolist() == [[0.0, 0.0, 0.0, 0.5, 3.0]]
    assert x.grad.tolist() == [[0.0, 0.0, 0.0, 4.0, 5.0]]


def test_relu_keeps_nan(kernel_mode):
    y = F.relu(tc.tensor([np.nan, -1.0, 1.0]))
    assert np.isnan(y.array[0]) and y.array[1:].tolist() == [0.0, 1.0]


def test_sigmoid_saturates_without_overflow():
    x = tc.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # an overflow in exp would raise here
        y = F.sigmoid(x)
        y.sum().backward()
    assert y.array[0] == 0.0 and y.array[2] == 0.5 and y.array[4] == 1.0
    assert np.isfinite(x.grad.array).all() and x.grad.array[2] == 0.25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_relu_kernel_matches_reference(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 7, 5)).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    with tc.use_kernels("fast"):
        fwd, bwd = kernel("activation", "relu_forward", x), kernel("activation", "relu_backward", x)
    if fwd is None or bwd is None:
        pytest.skip("no fast CPU ReLU kernel")
    y = fwd(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, relu_forward_reference(x))
    np.testing.assert_array_equal(bwd(gy, y), relu_backward_reference(gy, y))


# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_statistics_and_scale(kernel_mode, p, dtype):
    n = 200_000
    tc.manual_seed(0)
    y = F.dropout(tc.ones(8, n // 8, dtype=dtype), p=p)
    assert y.shape == (8, n // 8) and y.dtype == dtype
    kept = y.array != 0
    # keep rate 1-p within 5 standard deviations of a Binomial(n, 1-p) proportion
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    # every kept unit is scaled by exactly 1/(1-p), in the input's dtype
    np.testing.assert_array_equal(y.array[kept], np.full(kept.sum(), 1 / (1 - p), dtype=dtype))
    # so the expected activation is unchanged
    assert abs(y.array.mean() - 1) < 5 * np.sqrt(p / ((1 - p) * n))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_scale_matches_torch(kernel_mode, p, torch):
    x_np = np.random.default_rng(3).standard_normal(50_000).astype(np.float32)
    ours = F.dropout(tc.tensor(x_np), p=p).array
    theirs = torch.nn.functional.dropout(torch.tensor(x_np), p=p).numpy()
    # different RNGs, same semantics: each output is 0 or x/(1-p), bit for bit as PyTorch scales
    for out in (ours, theirs):
        kept = out != 0
        np.testing.assert_allclose(out[kept], x_np[kept] / np.float32(1 - p), rtol=1e-6)
    np.testing.assert_allclose(ours[ours != 0], (x_np * np.float32(1 / (1 - p)))[ours != 0], rtol=1e-7)
    assert abs((ours != 0).mean() - (theirs != 0).mean()) < 0.02


def test_dropout_backward_reuses_the_mask(kernel_mode):
    p = 0.3
    x_np = np.random.default_rng(4).uniform(0.5, 1.5, (4, 64, 5, 5))       # never 0
    x = tc.tensor(x_np, requires_grad=True)
    y = F.dropout(x, p)
    gy = np.random.default_rng(5).standard_normal(x.shape)
    y.backward(tc.tensor(gy))
    mask = y.array != 0                                 # the mask the forward used
    assert 0 < mask.mean() < 1
    np.testing.assert_allclose(x.grad.array, gy * mask / (1 - p), rtol=1e-15)
    np.testing.assert_allclose(y.array, x_np * mask / (1 - p), rtol=1e-15)


def test_dropout_is_reproducible_under_manual_seed(kernel_mode):
    x = tc.randn(16, 256)
    tc.manual_seed(42)
    a, b = F.dropout(x, 0.5).array, F.dropout(x, 0.5).array
    tc.manual_seed(42)
    a2, b2 = F.dropout(x, 0.5).array, F.dropout(x, 0.5).array
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)
    assert not np.array_equal(a != 0, b != 0)          # successive calls draw new masks


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_gradcheck_with_fixed_seed(kernel_mode, p):
    def fn(t):
        tc.manual_seed(7)                              # the same mask on every evaluation
        return F.dropout(t, p)

    x = tc.tensor(np.random.default_rng(6).standard_normal((3, 4, 5)), requires_grad=True)
    assert tc.gradcheck(fn, [x])


def test_dropout_identity_cases():
    x = tc.randn(3, 4, requires_grad=True)
    assert F.dropout(x, p=0.0) is x
    assert F.dropout(x, p=0.7, training=False) is x
    assert F.dropout(x, p=1.0, training=False) is x


def test_dropout_p_one_gives_zeros_and_zero_gradient(kernel_mode):
    x = tc.randn(3, 4, requires_grad=True)
    y = F.dropout(x, p=1.0)
    assert y.dtype == x.dtype and not y.array.any()
    y.backward(tc.ones(3, 4))
    assert x.grad.shape == (3, 4) and not x.grad.array.any()


def test_dropout_without_grad_builds_no_graph(kernel_mode):
    x = tc.randn(5, 5, requires_grad=True)
    with tc.no_grad():
        y = F.dropout(x, 0.5)
    assert not y.requires_grad and y.is_leaf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_dropout_kernel_keeps_the_contract(dtype):
    x = np.random.default_rng(8).uniform(1, 2, (6, 1000)).astype(dtype)
    gy = np.random.default_rng(9).standard_normal(x.shape).astype(dtype)
    with tc.use_kernels("fast"):
        fwd, bwd = kernel("activation", "dropout_forward", x), kernel("activation", "dropout_backward", x)
    if fwd is None or bwd is None:
        pytest.skip("no fast CPU dropout kernel")
    for f, b in ((fwd, bwd), (dropout_forward_reference, dropout_backward_reference)):
        y, mask = f(x, 0.4, 1, 0)
        kept = y != 0
        assert y.dtype == dtype and 0.3 < kept.mean() < 0.9
        np.testing.assert_allclose(y, np.where(kept, x / (1 - 0.4), 0), rtol=1e-6)
        np.testing.assert_allclose(b(gy, mask, 0.4), np.where(kept, gy / (1 - 0.4), 0), rtol=1e-6)
        np.testing.assert_array_equal(f(x, 0.4, 1, 0)[0], y)            # a pure function of (seed, offset)
        assert 0.4 < (f(x, 0.4, 1, x.size)[0] != 0).mean() < 0.8          # the next offset: a fresh mask
        assert not np.array_equal(f(x, 0.4, 1, x.size)[0] != 0, kept)
        assert not np.array_equal(f(x, 0.4, 2, 0)[0] != 0, kept)          # another seed: another mask


def test_reference_dropout_mask_depends_on_seed_and_offset_only():
    x64 = np.ones((5, 200))
    _, m64 = dropout_forward_reference(x64, 0.3, 123, 456)
    _, m32 = dropout_forward_reference(x64.astype(np.float32), 0.3, 123, 456)
    np.testing.assert_array_equal(m64, m32)                               # whatever the dtype
    want = np.random.default_rng([123, 456]).random(x64.shape) >= 0.3
    np.testing.assert_array_equal(m64, want)


def test_dropout_op_hands_seed_and_offset_to_the_implementation(monkeypatch):
    """DropoutFn draws (seed, offset) once per call from tinyconv.random and passes them in."""
    import tinyconv.functional.activation as A
    seen = []
    real = A.dropout_forward_reference

    def spy(x, p, seed, offset):
        seen.append((seed, offset))
        return real(x, p, seed, offset)
    monkeypatch.setattr(A, "dropout_forward_reference", spy)
    x = tc.ones(4, 25, dtype=tc.float64)
    tc.manual_seed(5)
    want = [tc.random.philox_seed_offset(100), tc.random.philox_seed_offset(100)]
    with tc.use_kernels("reference"):
        tc.manual_seed(5)
        F.dropout(x, 0.5)
        F.dropout(x, 0.5)
    assert seen == want and want[0] != want[1]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_dropout_rejects_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match="dropout: dropout probability has to be between 0 and 1, but got"):
        F.dropout(tc.ones(2, 2), p)


@pytest.mark.parametrize("p", ["0.5", None, True])
def test_dropout_rejects_non_number_p(p):
    with pytest.raises(TypeError, match="dropout: p must be a real number"):
        F.dropout(tc.ones(2, 2), p)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "dropout"])
def test_rejects_non_float_and_non_tensor_input(name):
    fn = getattr(F, name)
    with pytest.raises(TypeError, match=f"{name}: expected a floating point input, got int64"):
        fn(tc.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=f"{name}: input must be a Tensor, got ndarray"):
        fn(np.ones(3))


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("kmode", ["reference", "fast"])
def test_cuda(kmode, cupy):
    rng = np.random.default_rng(10)
    x_np = rng.standard_normal((4, 8, 16, 16)).astype(np.float32) + 0.01
    gy_np = rng.standard_normal(x_np.shape).astype(np.float32)
    with tc.use_kernels(kmode):
        for name in ("relu", "tanh", "sigmoid"):
            x, xg = tc.tensor(x_np, requires_grad=True), tc.tensor(x_np, requires_grad=True, device="cuda")
            getattr(F, name)(x).backward(tc.tensor(gy_np))
            yg = getattr(F, name)(xg)
            yg.backward(tc.tensor(gy_np, device="cuda"))
            np.testing.assert_allclose(cupy.asnumpy(yg.array), getattr(F, name)(x).array,
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(cupy.asnumpy(xg.grad.array), x.grad.array, rtol=1e-5, atol=1e-6)
        xg = tc.tensor(np.abs(x_np) + 0.5, requires_grad=True, device="cuda")
        tc.manual_seed(3)
        yg = F.dropout(xg, 0.3)
        yg.backward(tc.tensor(gy_np, device="cuda"))
        y, g, x0 = cupy.asnumpy(yg.array), cupy.asnumpy(xg.grad.array), np.abs(x_np) + 0.5
        kept = y != 0
        assert abs(kept.mean() - 0.7) < 0.02
        np.testing.assert_allclose(y, np.where(kept, x0 / 0.7, 0), rtol=1e-6)
        np.testing.assert_allclose(g, np.where(kept, gy_np / 0.7, 0), rtol=1e-6)
        tc.manual_seed(3)
        np.testing.assert_array_equal(cupy.asnumpy(F.dropout(xg, 0.3).array), y)
