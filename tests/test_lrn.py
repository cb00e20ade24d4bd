"""Local response normalization: PyTorch parity, float64 gradcheck, the paper's formula, bad input."""
import numpy as np
import pytest

import tinyconv as tc
import tinyconv.functional as F
from tinyconv.backend import kernel
from tinyconv.functional.lrn import (ALEXNET_LRN, lrn_backward_reference, lrn_forward_reference,
                                     paper_alpha_to_pytorch)

def _lrn_by_definition(x, size, alpha, beta, k):
    """Straight from the definition, one channel at a time (independent of the reference)."""
    n, c = x.shape[:2]
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c - 1, ch + (size - 1) // 2)
        s = k + alpha / size * (x[:, lo:hi + 1] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / s ** beta
    return y


# --------------------------------------------------------------------------- hand-worked values


def test_even_size_window_reaches_back_one_more_channel():
    # size 2: window(c) = {c-1, c}.  x = 1, 2, 3 on three channels, alpha/size = 1, k = 1, beta = 1:
    # scale = 1 + 1^2 = 2,  1 + 1^2 + 2^2 = 6,  1 + 2^2 + 3^2 = 14
    x = tc.tensor(np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1))
    y = F.local_response_norm(x, size=2, alpha=2.0, beta=1.0, k=1.0)
    np.testing.assert_allclose(y.array.ravel(), [1 / 2, 2 / 6, 3 / 14], rtol=1e-15)


def test_paper_formula_with_paper_alpha_times_size():
    # Krizhevsky et al. 2012: b_c = a_c / (k + alpha * sum_{j=c-n/2}^{c+n/2} a_j^2)^beta,
    # k=2, n=5, alpha=1e-4 (on the plain sum), beta=0.75; large activations make alpha matter
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 9, 3, 3)) * 30
    c = a.shape[1]
    paper = np.empty_like(a)
    for ch in range(c):
        lo, hi = max(0, ch - 5 // 2), min(c - 1, ch + 5 // 2)
        paper[:, ch] = a[:, ch] / (2 + 1e-4 * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** 0.75
    assert paper_alpha_to_pytorch(1e-4, 5) == pytest.approx(5e-4)
    assert ALEXNET_LRN == {"size": 5, "alpha": pytest.approx(5e-4), "beta": 0.75, "k": 2.0}
    y = F.local_response_norm(tc.tensor(a), **ALEXNET_LRN)
    np.testing.assert_allclose(y.array, paper, rtol=1e-13)
    # and PyTorch's alpha is not the paper's: using 1e-4 unchanged gives a different layer
    y_wrong = F.local_response_norm(tc.tensor(a), size=5, alpha=1e-4, beta=0.75, k=2.0)
    assert not np.allclose(y_wrong.array, paper, rtol=1e-3)


# --------------------------------------------------------------------------- PyTorch parity


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("channels", [1, 3, 5, 8])   # below, at and above the window
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_forward_and_backward(kernel_mode, size, channels, dtype, torch):
    rng = np.random.default_rng(size * 10 + channels)
    x_np = (rng.standard_normal((2, channels, 5, 4)) * 3).astype(dtype)
    gy_np = rng.standard_normal(x_np.shape).astype(dtype)
    params = dict(alpha=0.3, beta=0.75, k=1.5)

    x = tc.tensor(x_np, requires_grad=True)
    y = F.local_response_norm(x, size, **params)
    y.backward(tc.tensor(gy_np))

    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch.nn.functional.local_response_norm(xt, size, **params)
    yt.backward(torch.tensor(gy_np))

    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert y.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(y.array, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(y.array, _lrn_by_definition(x_np, size, **params), **tol)


@pytest.mark.parametrize("shape", [(2, 6, 7), (1, 4, 2, 3, 2)])
def test_matches_torch_on_3d_and_5d_input(kernel_mode, shape, torch):
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal(shape) * 2
    gy_np = rng.standard_normal(shape)
    x = tc.tensor(x_np, requires_grad=True)
    y = F.local_response_norm(x, 3, alpha=0.5, beta=0.6, k=1.0)
    y.backward(tc.tensor(gy_np))
    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch.nn.functional.local_response_norm(xt, 3, alpha=0.5, beta=0.6, k=1.0)
    yt.backward(torch.tensor(gy_np))
    assert y.shape == shape and x.grad.shape == shape
    np.testing.assert_allclose(y.array, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_alexnet_sized_layer_float32_matches_torch(kernel_mode, torch):
    x_np = np.random.default_rng(2).standard_normal((2, 96, 13, 13)).astype(np.float32) * 10
    y = F.local_response_norm(tc.tensor(x_np), **ALEXNET_LRN)
    yt = torch.nn.functional.local_response_norm(torch.tensor(x_np), **ALEXNET_LRN)
    np.testing.assert_allclose(y.array, yt.numpy(), rtol=1e-5, atol=1e-6)


def test_non_contiguous_input(kernel_mode):
    x_np = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    xt = tc.tensor(x_np).permute(0, 1, 3, 2)       # a transposed view
    y = F.local_response_norm(xt, 3, alpha=0.5)
    ref = _lrn_by_definition(np.ascontiguousarray(x_np.transpose(0, 1, 3, 2)), 3, 0.5, 0.75, 1.0)
    np.testing.assert_allclose(y.array, ref, rtol=1e-12)


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("channels", [2, 4, 7])
def test_gradcheck(kernel_mode, size, channels):
    x = tc.tensor(np.random.default_rng(size + 7 * channels).standard_normal((2, channels, 3, 2)) * 2,
                  requires_grad=True)
    assert tc.gradcheck(lambda t: F.local_response_norm(t, size, alpha=0.7, beta=0.75, k=1.3), [x])


@pytest.mark.parametrize("alpha,beta,k", [(1e-4 * 5, 0.75, 2.0), (2.0, 0.5, 1.0), (0.9, 1.6, 0.5)])
def test_gradcheck_hyperparameters(kernel_mode, alpha, beta, k):
    x = tc.tensor(np.random.default_rng(4).standard_normal((1, 6, 2, 3)) * 3, requires_grad=True)
    assert tc.gradcheck(lambda t: F.local_response_norm(t, 4, alpha=alpha, beta=beta, k=k), [x])


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    # the check must be able to fail on this op: drop the cross-channel term of the backward
    from tinyconv.functional import lrn

    def broken(gy, x, y, scale, size, alpha, beta):
        return gy * scale ** -beta

    monkeypatch.setattr(lrn, "lrn_backward_reference", broken)
    x = tc.tensor(np.random.default_rng(5).standard_normal((1, 3, 2, 2)), requires_grad=True)
    with tc.use_kernels("reference"), pytest.raises(tc.GradcheckError):
        tc.gradcheck(lambda t: F.local_response_norm(t, 3, alpha=2.0), [x])


# --------------------------------------------------------------------------- fast kernel vs reference


@pytest.mark.parametrize("size", [1, 2, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_kernel_matches_reference(size, dtype):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((2, 7, 5, 3)) * 4).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    with tc.use_kernels("fast"):
        fwd, bwd = kernel("lrn", "lrn_forward", x), kernel("lrn", "lrn_backward", x)
    if fwd is None or bwd is None:
        pytest.skip("no fast CPU LRN kernel")
    y_ref, s_ref = lrn_forward_reference(x, size, 0.5, 0.75, 2.0)
    y, s = fwd(x, size, 0.5, 0.75, 2.0)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert y.dtype == dtype and s.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(s, s_ref, **tol)
    np.testing.assert_allclose(bwd(gy, x, y_ref, s_ref, size, 0.5, 0.75),
                               lrn_backward_reference(gy, x, y_ref, s_ref, size, 0.5, 0.75), **tol)


# --------------------------------------------------------------------------- bad input


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"local_response_norm: expected input of 3 or more.*\(4, 5\)"):
        F.local_response_norm(tc.zeros(4, 5), 3)


@pytest.mark.parametrize("size", [0, -2])
def test_rejects_size_below_one(size):
    with pytest.raises(ValueError, match="local_response_norm: size must be >= 1"):
        F.local_response_norm(tc.zeros(1, 3, 2, 2), size)


@pytest.mark.parametrize("size", [2.0, "3", True])
def test_rejects_non_int_size(size):
    with pytest.raises(TypeError, match="local_response_norm: size must be an int"):
        F.local_response_norm(tc.zeros(1, 3, 2, 2), size)


def test_rejects_non_float_input():
    with pytest.raises(TypeError, match="local_response_norm: expected a floating point input, got int64"):
        F.local_response_norm(tc.tensor(np.ones((1, 3, 2, 2), dtype=np.int64)), 3)


def test_rejects_non_tensor_and_bad_hyperparameter():
    with pytest.raises(TypeError, match="local_response_norm: input must be a Tensor"):
        F.local_response_norm(np.zeros((1, 3, 2, 2)), 3)
    with pytest.raises(TypeError, match="local_response_norm: beta must be a real number"):
        F.local_response_norm(tc.zeros(1, 3, 2, 2), 3, beta="0.75")


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("kmode", ["reference", "fast"])
def test_cuda_matches_cpu(kmode, cupy):
    rng = np.random.default_rng(8)
    x_np = rng.standard_normal((2, 9, 6, 5)).astype(np.float32) * 3
    gy_np = rng.standard_normal(x_np.shape).astype(np.float32)
    with tc.use_kernels("reference"):
        x = tc.tensor(x_np, requires_grad=True)
        y = F.local_response_norm(x, **ALEXNET_LRN)
        y.backward(tc.tensor(gy_np))
    with tc.use_kernels(kmode):
        xg = tc.tensor(x_np, requires_grad=True, device="cuda")
        yg = F.local_response_norm(xg, **ALEXNET_LRN)
        yg.backward(tc.tensor(gy_np, device="cuda"))
    np.testing.assert_allclose(cupy.asnumpy(yg.array), y.array, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(xg.grad.array), x.grad.array, rtol=1e-4, atol=1e-6)
