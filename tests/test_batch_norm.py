"""batch_norm: gradcheck in training and eval, PyTorch parity (output, grads, running stats), bad input."""
import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
SHAPES = [(4, 3), (5, 2, 3), (2, 3, 4, 5), (3, 1, 2, 2), (2, 2)]


def leaf(a, requires_grad=True):
    return tinyconv.tensor(a, requires_grad=requires_grad)


def stats(rng, c, dtype=np.float64):
    return (rng.standard_normal(c).astype(dtype), (0.5 + rng.random(c)).astype(dtype))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_batch_norm_gradcheck(rng, shape, training, affine):
    c = shape[1]
    x = leaf(rng.standard_normal(shape))
    w = leaf(rng.standard_normal(c)) if affine in ("both", "weight") else None
    b = leaf(rng.standard_normal(c)) if affine in ("both", "bias") else None
    rm, rv = stats(rng, c)
    params = [p for p in (w, b) if p is not None]

    def f(x, *ps):
        it = iter(ps)
        return F.batch_norm(x, rm, rv, next(it) if w is not None else None,
                            next(it) if b is not None else None, training=training)

    assert tinyconv.gradcheck(f, [x, *params])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(torch, rng, dtype, shape, training, affine):
    c = shape[1]
    xa = (2 + 3 * rng.standard_normal(shape)).astype(dtype)
    ga = rng.standard_normal(shape).astype(dtype)
    wa, ba = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = stats(rng, c, dtype)
    momentum, eps = 0.3, 1e-3

    x = leaf(xa)
    w, b = (leaf(wa), leaf(ba)) if affine else (None, None)
    our_rm, our_rv = rm.copy(), rv.copy()
    y = F.batch_norm(x, our_rm, our_rv, w, b, training=training, momentum=momentum, eps=eps)
    y.backward(tinyconv.tensor(ga))

    tx = torch.tensor(xa, requires_grad=True)
    tw, tb = (torch.tensor(wa, requires_grad=True), torch.tensor(ba, requires_grad=True)) if affine \
        else (None, None)
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    ty = torch.nn.functional.batch_norm(tx, t_rm, t_rv, tw, tb, training=training,
                                        momentum=momentum, eps=eps)
    ty.backward(torch.tensor(ga))

    def close(ours, theirs):
        theirs = theirs.detach().numpy()
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])

    close(y.array, ty)
    close(x.grad.array, tx.grad)
    if affine:
        close(w.grad.array, tw.grad)
        close(b.grad.array, tb.grad)
    close(our_rm, t_rm)
    close(our_rv, t_rv)
    if not training:                         # eval leaves the running stats alone
        np.testing.assert_array_equal(our_rm, rm)
        np.testing.assert_array_equal(our_rv, rv)


def test_running_stats_update_formula(rng):
    """running = (1 - m) running + m batch_stat, with the unbiased variance (M = 2*3*2 = 12)."""
    xa = rng.standard_normal((2, 3, 2, 1))
    rm, rv = np.zeros(3), np.ones(3)
    F.batch_norm(leaf(xa), rm, rv, training=True, momentum=0.25)
    mean = xa.mean(axis=(0, 2, 3))
    var_unbiased = xa.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(rm, 0.25 * mean, rtol=1e-14)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * var_unbiased, rtol=1e-14)


def test_running_stats_as_tensors_updated_in_place(rng):
    """A module's buffers are grad-free Tensors: their .data (the same array) is updated."""
    xa = rng.standard_normal((8, 4))
    rm, rv = tinyconv.zeros(4, dtype=np.float64), tinyconv.ones(4, dtype=np.float64)
    rm_data = rm.array
    with tinyconv.no_grad():                 # updates happen with or without a graph
        F.batch_norm(leaf(xa, False), rm, rv, training=True, momentum=1.0)
    assert rm.array is rm_data
    np.testing.assert_allclose(rm.array, xa.mean(0), rtol=1e-14)
    np.testing.assert_allclose(rv.array, xa.var(0, ddof=1), rtol=1e-14)
    y = F.batch_norm(leaf(xa, False), rm, rv, training=False, eps=0.0)
    np.testing.assert_allclose(y.array, (xa - xa.mean(0)) / np.sqrt(xa.var(0, ddof=1)), rtol=1e-12)


def test_training_without_running_stats(torch, rng):
    xa = rng.standard_normal((6, 3, 2))
    y = F.batch_norm(leaf(xa), None, None, training=True)
    ty = torch.nn.functional.batch_norm(torch.tensor(xa), None, None, training=True)
    np.testing.assert_allclose(y.array, ty.numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_normalizes(rng):
    """Training output without affine has zero mean and (biased) unit variance per channel."""
    xa = 5 + 3 * rng.standard_normal((4, 3, 5, 5))
    y = F.batch_norm(leaf(xa), None, None, training=True, eps=0.0).array
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-12)


def test_batch_norm_bad_input(rng):
    x = leaf(rng.standard_normal((4, 3, 2, 2)))
    rm, rv = stats(rng, 3)
    with pytest.raises(ValueError, match=r"batch_norm: expected input of shape \(N, C\).*got shape \(3,\)"):
        F.batch_norm(leaf(rng.standard_normal(3)), rm, rv)
    with pytest.raises(ValueError, match=r"batch_norm: expected running_mean of shape \(3,\).*got \(4,\)"):
        F.batch_norm(x, np.zeros(4), rv)
    with pytest.raises(ValueError, match=r"batch_norm: expected running_var of shape \(3,\)"):
        F.batch_norm(x, rm, np.ones((3, 1)))
    with pytest.raises(TypeError, match=r"batch_norm: expected running_mean of dtype float64.*float32"):
        F.batch_norm(x, rm.astype(np.float32), rv)
    with pytest.raises(TypeError, match=r"batch_norm: running_var must be a Tensor or an array"):
        F.batch_norm(x, rm, [1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match=r"batch_norm: running_mean is a buffer and must not require grad"):
        F.batch_norm(x, leaf(rm), rv)
    with pytest.raises(ValueError, match=r"batch_norm: expected weight of shape \(3,\).*got \(2,\)"):
        F.batch_norm(x, rm, rv, weight=leaf(rng.standard_normal(2)))
    with pytest.raises(ValueError, match=r"batch_norm: expected bias of shape \(3,\)"):
        F.batch_norm(x, rm, rv, bias=leaf(rng.standard_normal((1, 3))))
    with pytest.raises(TypeError, match=r"batch_norm: expected one dtype, got input float64, weight float32"):
        F.batch_norm(x, rm, rv, weight=leaf(rng.standard_normal(3).astype(np.float32)))
    with pytest.raises(TypeError, match=r"batch_norm: expected a floating point input, got int64"):
        F.batch_norm(tinyconv.tensor(np.ones((2, 3), dtype=np.int64)), rm, rv)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean and running_var must be given"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when "
                                         r"training, got input of shape \(1, 3\)"):
        F.batch_norm(leaf(rng.standard_normal((1, 3))), rm, rv, training=True)
    with pytest.raises(TypeError, match=r"batch_norm: weight must be a Tensor"):
        F.batch_norm(x, rm, rv, weight=np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: eps must be a number >= 0"):
        F.batch_norm(x, rm, rv, eps=-1.0)
    # a single sample per channel is fine in eval mode, as in PyTorch
    F.batch_norm(leaf(rng.standard_normal((1, 3))), rm, rv, training=False)
