"""linear, softmax, log_softmax, cross_entropy and nll_loss: gradcheck, PyTorch parity, bad input.

The losses' weight / ignore_index / smoothing / probability-target / N-d cases: test_losses.py."""
import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv.functional.loss import (softmax_cross_entropy_backward_reference,
                                      softmax_cross_entropy_forward_reference)

# float64 agrees with PyTorch to rounding; float32 to a few ulps of the accumulated sums
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


def leaf(a, requires_grad=True):
    return tinyconv.tensor(a, requires_grad=requires_grad)


def close(ours, theirs, dtype):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    ours = ours.array if isinstance(ours, tinyconv.Tensor) else ours
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])


# --------------------------------------------------------------------------- linear

LINEAR_SHAPES = [((4, 5), 3), ((2, 3, 7), 6), ((7,), 2), ((1, 1), 1), ((2, 2, 2, 4), 5)]


@pytest.mark.parametrize("x_shape,out_f", LINEAR_SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradcheck(kernel_mode, rng, x_shape, out_f, with_bias):
    x = leaf(rng.standard_normal(x_shape))
    w = leaf(rng.standard_normal((out_f, x_shape[-1])))
    b = leaf(rng.standard_normal(out_f))
    if with_bias:
        assert tinyconv.gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])
    else:
        assert tinyconv.gradcheck(lambda x, w: F.linear(x, w), [x, w])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape,out_f", LINEAR_SHAPES)
def test_linear_matches_torch(kernel_mode, torch, rng, dtype, x_shape, out_f):
    xa = rng.standard_normal(x_shape).astype(dtype)
    wa = rng.standard_normal((out_f, x_shape[-1])).astype(dtype)
    ba = rng.standard_normal(out_f).astype(dtype)
    ga = rng.standard_normal(x_shape[:-1] + (out_f,)).astype(dtype)
    x, w, b = leaf(xa), leaf(wa), leaf(ba)
    y = F.linear(x, w, b)
    y.backward(tinyconv.tensor(ga))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.tensor(ga))
    close(y, ty, dtype)
    close(x.grad, tx.grad, dtype)
    close(w.grad, tw.grad, dtype)
    close(b.grad, tb.grad, dtype)


def test_linear_only_requested_grads(rng):
    """A frozen weight gets no gradient; the input still does."""
    x = leaf(rng.standard_normal((3, 4)))
    w = leaf(rng.standard_normal((2, 4)), requires_grad=False)
    b = leaf(rng.standard_normal(2))
    F.linear(x, w, b).sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad.array, np.ones((3, 2)) @ w.array)
    np.testing.assert_allclose(b.grad.array, [3.0, 3.0])


def test_linear_bad_input(rng):
    x, w = leaf(rng.standard_normal((3, 4))), leaf(rng.standard_normal((2, 4)))
    with pytest.raises(ValueError, match=r"linear: input has 5 features.*expects 4"):
        F.linear(leaf(rng.standard_normal((3, 5))), w)
    with pytest.raises(ValueError, match=r"linear: expected weight to be 2-d"):
        F.linear(x, leaf(rng.standard_normal(4)))
    with pytest.raises(ValueError, match=r"linear: expected bias of shape \(2,\).*got \(3,\)"):
        F.linear(x, w, leaf(rng.standard_normal(3)))
    with pytest.raises(ValueError, match=r"linear: expected bias to be 1-d"):
        F.linear(x, w, leaf(rng.standard_normal((1, 2))))
    with pytest.raises(ValueError, match=r"linear: expected input of shape \(\.\.\., in_features\)"):
        F.linear(leaf(np.float64(1.0)), leaf(rng.standard_normal((2, 1))))
    with pytest.raises(TypeError, match=r"linear: expected one dtype, got input float32, weight float64"):
        F.linear(leaf(rng.standard_normal((3, 4)).astype(np.float32)), w)
    with pytest.raises(TypeError, match=r"linear: expected a floating point input, got int64"):
        F.linear(tinyconv.tensor(np.ones((3, 4), dtype=np.int64)), w)
    with pytest.raises(TypeError, match=r"linear: weight must be a Tensor, got ndarray"):
        F.linear(x, w.array)


# --------------------------------------------------------------------------- softmax, log_softmax

SOFTMAX_CASES = [((5,), -1), ((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1), ((2, 3, 2, 2), -3), ((), 0)]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
def test_softmax_gradcheck(rng, name, shape, dim):
    x = leaf(rng.standard_normal(shape))
    assert tinyconv.gradcheck(lambda x: getattr(F, name)(x, dim), [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
def test_softmax_matches_torch(torch, rng, dtype, name, shape, dim):
    xa = (3 * rng.standard_normal(shape)).astype(dtype)
    ga = rng.standard_normal(shape).astype(dtype)
    x = leaf(xa)
    y = getattr(F, name)(x, dim)
    y.backward(tinyconv.tensor(ga))
    tx = torch.tensor(xa, requires_grad=True)
    ty = getattr(torch.nn.functional, name)(tx, dim)
    ty.backward(torch.tensor(ga))
    close(y, ty, dtype)
    close(x.grad, tx.grad, dtype)


def test_softmax_is_stable_for_huge_logits():
    """exp(1000) overflows; the max-shifted form must not."""
    x = leaf(np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]]))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        p = F.softmax(x, dim=1)
        logp = F.log_softmax(x, dim=1)
    np.testing.assert_allclose(p.array, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(logp.array, [[-np.log(2), -np.log(2), -2000 - np.log(2)],
                                           [-2e4, -1e4, 0.0]])


def test_softmax_bad_input(rng):
    x = leaf(rng.standard_normal((2, 3)))
    with pytest.raises(IndexError, match=r"softmax: Dimension out of range \(expected to be in range "
                                         r"of \[-2, 1\], but got 2\)"):
        F.softmax(x, 2)
    with pytest.raises(IndexError, match=r"log_softmax: Dimension out of range .* but got -3"):
        F.log_softmax(x, -3)
    with pytest.raises(TypeError, match=r"softmax: dim must be an int"):
        F.softmax(x, 1.0)
    with pytest.raises(TypeError, match=r"log_softmax: expected a floating point input, got int64"):
        F.log_softmax(tinyconv.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=r"softmax: input must be a Tensor"):
        F.softmax(x.array)


# --------------------------------------------------------------------------- cross_entropy, nll_loss

LOSS_SHAPES = [(1, 1), (4, 3), (6, 10), (3, 2)]
REDUCTIONS = ["mean", "sum", "none"]


def targets(rng, n, k):
    return rng.integers(0, k, size=n)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n,k", LOSS_SHAPES)
def test_cross_entropy_gradcheck(kernel_mode, rng, reduction, n, k):
    x = leaf(3 * rng.standard_normal((n, k)))
    t = targets(rng, n, k)
    assert tinyconv.gradcheck(lambda x: F.cross_entropy(x, t, reduction=reduction), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n,k", LOSS_SHAPES)
def test_nll_loss_gradcheck(rng, reduction, n, k):
    x = leaf(rng.standard_normal((n, k)))
    t = targets(rng, n, k)
    assert tinyconv.gradcheck(lambda x: F.nll_loss(x, t, reduction=reduction), [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n,k", LOSS_SHAPES)
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_loss_matches_torch(kernel_mode, torch, rng, dtype, reduction, n, k, name):
    xa = (3 * rng.standard_normal((n, k))).astype(dtype)
    ta = targets(rng, n, k)
    ga = rng.standard_normal(n if reduction == "none" else ()).astype(dtype)
    x = leaf(xa)
    loss = getattr(F, name)(x, tinyconv.tensor(ta), reduction=reduction)
    loss.backward(tinyconv.tensor(ga))
    tx = torch.tensor(xa, requires_grad=True)
    tloss = getattr(torch.nn.functional, name)(tx, torch.tensor(ta), reduction=reduction)
    tloss.backward(torch.tensor(ga))
    close(loss, tloss, dtype)
    close(x.grad, tx.grad, dtype)


def test_cross_entropy_equals_nll_of_log_softmax(kernel_mode, rng):
    x = leaf(rng.standard_normal((5, 4)))
    t = [3, 0, 1, 1, 2]
    a = F.cross_entropy(x, t)
    a.backward()
    ga = x.grad.array.copy()
    x.grad = None
    b = F.nll_loss(F.log_softmax(x, dim=1), t)
    b.backward()
    np.testing.assert_allclose(a.array, b.array, rtol=1e-14)
    np.testing.assert_allclose(ga, x.grad.array, rtol=1e-12, atol=1e-15)


def test_cross_entropy_backward_is_p_minus_onehot_over_n(kernel_mode, rng):
    x = leaf(rng.standard_normal((4, 3)))
    t = np.array([0, 2, 1, 2])
    F.cross_entropy(x, t).backward()
    p = np.exp(x.array) / np.exp(x.array).sum(1, keepdims=True)
    np.testing.assert_allclose(x.grad.array, (p - np.eye(3)[t]) / 4, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_kernel_contract_reference(rng, dtype):
    """The reference pair the fast kernels must reproduce: per-sample loss, probs, glogits."""
    logits = (5 * rng.standard_normal((6, 4))).astype(dtype)
    target = rng.integers(0, 4, size=6).astype(np.int64)
    loss, probs = softmax_cross_entropy_forward_reference(logits, target)
    assert loss.dtype == probs.dtype == dtype and loss.shape == (6,) and probs.shape == (6, 4)
    l64 = logits.astype(np.float64)
    lse = np.log(np.exp(l64).sum(1))
    np.testing.assert_allclose(loss, lse - l64[np.arange(6), target], **TOL[dtype])
    np.testing.assert_allclose(probs, np.exp(l64 - lse[:, None]), **TOL[dtype])
    gloss = rng.standard_normal(6).astype(dtype)
    g = softmax_cross_entropy_backward_reference(gloss, probs, target)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, gloss[:, None] * (probs - np.eye(4)[target]), **TOL[dtype])


def test_loss_kernels_match_reference(rng):
    """A fast loss kernel, where one exists, agrees with the reference pair."""
    fwd = tinyconv.backend.kernel("loss", "softmax_cross_entropy_forward", np.zeros(1))
    bwd = tinyconv.backend.kernel("loss", "softmax_cross_entropy_backward", np.zeros(1))
    if fwd is None and bwd is None:
        pytest.skip("no fast CPU loss kernel is written; the reference serves both modes")
    for dtype in (np.float64, np.float32):
        logits = (5 * rng.standard_normal((33, 17))).astype(dtype)
        target = rng.integers(0, 17, size=33).astype(np.int64)
        gloss = rng.standard_normal(33).astype(dtype)
        loss_r, probs_r = softmax_cross_entropy_forward_reference(logits, target)
        if fwd is not None:
            loss, probs = fwd(logits, target)
            np.testing.assert_allclose(loss, loss_r, **TOL[dtype])
            np.testing.assert_allclose(probs, probs_r, **TOL[dtype])
        if bwd is not None:
            np.testing.assert_allclose(bwd(gloss, probs_r, target),
                                       softmax_cross_entropy_backward_reference(gloss, probs_r, target),
                                       **TOL[dtype])


@pytest.mark.parametrize("target", [[1, 0, 2], np.array([1, 0, 2], dtype=np.int32),
                                    np.array([1, 0, 2]), "tensor"])
def test_cross_entropy_target_forms(rng, target):
    x = leaf(rng.standard_normal((3, 3)))
    if isinstance(target, str):
        target = tinyconv.tensor([1, 0, 2])
    want = -np.log(np.exp(x.array[[0, 1, 2], [1, 0, 2]]) / np.exp(x.array).sum(1)).mean()
    np.testing.assert_allclose(F.cross_entropy(x, target).item(), want, rtol=1e-12)


def test_cross_entropy_stable_for_huge_logits():
    x = leaf(np.array([[1e4, 0.0], [0.0, 1e4]]))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = F.cross_entropy(x, [1, 1], reduction="none")
    np.testing.assert_allclose(loss.array, [1e4, 0.0])


def test_cross_entropy_empty_batch_mean_is_nan():
    x = leaf(np.zeros((0, 3)))
    assert np.isnan(F.cross_entropy(x, np.zeros(0, dtype=np.int64)).item())
    assert F.cross_entropy(x, np.zeros(0, dtype=np.int64), reduction="sum").item() == 0.0


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_loss_bad_input(rng, name):
    loss = getattr(F, name)
    x = leaf(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=rf"{name}: target 4 is out of range for 4 classes"):
        loss(x, [0, 4, 1])
    with pytest.raises(ValueError, match=rf"{name}: target -1 is out of range"):
        loss(x, [0, -1, 1])
    with pytest.raises(TypeError, match=rf"{name}: expected integer class indices.*got dtype float64"):
        loss(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match=rf"{name}: expected integer class indices.*got dtype float32"):
        loss(x, tinyconv.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match=rf"{name}: expected integer class indices.*got dtype bool"):
        loss(x, np.array([True, False, True]))
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(3,\).*got \(2,\)"):
        loss(x, [0, 1])
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(3,\).*got \(3, 1\)"):
        loss(x, np.zeros((3, 1), dtype=np.int64))
    # an unbatched (C,) input takes a 0-d target; an (N, C, d1) input an (N, d1) one
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(\) for input of shape \(4,\)"):
        loss(leaf(rng.standard_normal(4)), [1])
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(2, 4\).*got \(2,\)"):
        loss(leaf(rng.standard_normal((2, 3, 4))), [1, 2])
    with pytest.raises(ValueError, match=rf"{name}: expected input to be at least 1-d.*got shape \(\)"):
        loss(leaf(np.float64(2.0)), 0)
    with pytest.raises(TypeError, match=rf"{name}: expected a floating point input, got int64"):
        loss(tinyconv.tensor(np.ones((3, 4), dtype=np.int64)), [0, 1, 2])
    with pytest.raises(ValueError, match=rf"{name}: reduction must be one of"):
        loss(x, [0, 1, 2], reduction="avg")
    with pytest.raises(TypeError, match=rf"{name}: target must be an integer Tensor, array or list"):
        loss(x, 2)


def test_non_contiguous_inputs(kernel_mode, torch, rng):
    """Transposed logits, a strided target and a strided bias give the same results as PyTorch."""
    xa = rng.standard_normal((5, 6))
    ta = rng.integers(0, 5, size=12)[::2]            # strided target (6,)
    x = leaf(xa)
    loss = F.cross_entropy(x.T, ta)                  # (6, 5) logits, a non-contiguous view
    loss.backward()
    tx = torch.tensor(xa, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tx.T, torch.tensor(ta))
    tloss.backward()
    close(loss, tloss, np.float64)
    close(x.grad, tx.grad, np.float64)
    ba = rng.standard_normal(8)
    w = leaf(rng.standard_normal((4, 6)))
    y = F.linear(leaf(xa), w, leaf(ba)[::2])         # bias (4,) with stride 2
    ty = torch.nn.functional.linear(torch.tensor(xa), torch.tensor(w.array), torch.tensor(ba)[::2])
    close(y, ty, np.float64)


def test_cross_entropy_empty_batch_backward():
    x = leaf(np.zeros((0, 3)))
    with np.errstate(all="raise"):
        F.cross_entropy(x, np.zeros(0, dtype=np.int64), reduction="sum").backward()
    assert x.grad.shape == (0, 3)
