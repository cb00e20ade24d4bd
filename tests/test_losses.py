"""The losses and layers PyTorch scripts use: cross_entropy / nll_loss with weight, ignore_index,
label_smoothing, probability targets and (N, C, d1, ...) inputs; mse, l1, binary cross-entropy
(with logits); leaky_relu, dropout2d; and their Modules.  Each against PyTorch (forward and
backward), a float64 gradcheck, and bad input."""
import warnings

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.functional as F
import tinyconv.nn as nn
from tinyconv.functional import loss as L

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}
REDUCTIONS = ["mean", "sum", "none"]


def leaf(a, requires_grad=True):
    return tc.tensor(a, requires_grad=requires_grad)


def close(ours, theirs, dtype):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = ours.array if isinstance(ours, tc.Tensor) else ours
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])


def both(torch, fn_ours, fn_theirs, arrays, grad_of, ga=None, dtype=np.float64, **kw):
    """Run one loss in tinyconv and PyTorch on the same arrays; compare the loss and the gradients
    of the inputs named in ``grad_of``."""
    ours = {k: (leaf(v, k in grad_of) if v is not None and v.dtype.kind == "f" else
                None if v is None else tc.tensor(v)) for k, v in arrays.items()}
    theirs = {k: (None if v is None else torch.tensor(v, requires_grad=k in grad_of))
              for k, v in arrays.items()}
    lo = fn_ours(**ours, **kw)
    lt = fn_theirs(**theirs, **kw)
    close(lo, lt, dtype)
    g = np.asarray(ga if ga is not None else np.ones(lt.shape), dtype=dtype)
    lo.backward(tc.tensor(g))
    lt.backward(torch.tensor(g))
    for k in grad_of:
        close(ours[k].grad, theirs[k].grad, dtype)
    return lo


# --------------------------------------------------------------------------- cross_entropy, nll_loss

# (input shape, number of classes at dim 1)
CE_SHAPES = [(5, 4), (3, 4, 2), (2, 3, 3, 2), (1, 1), (4,)]


def class_targets(rng, shape, ignore=None):
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    c = shape[0] if len(shape) == 1 else shape[1]
    t = rng.integers(0, c, tshape)
    if ignore is not None and t.size > 1:
        t.flat[::3] = ignore
    return t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("weighted,ignore,smoothing", [(False, None, 0.0), (True, None, 0.0),
                                                        (False, 1, 0.0), (True, 0, 0.0),
                                                        (False, None, 0.2), (True, 1, 0.3),
                                                        (True, -100, 1.0)])
def test_cross_entropy_class_targets_match_torch(kernel_mode, torch, rng, dtype, reduction, shape,
                                                 weighted, ignore, smoothing):
    c = shape[0] if len(shape) == 1 else shape[1]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    t = class_targets(rng, shape, ignore)
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    if ignore is not None:
        kw["ignore_index"] = ignore
    ga = rng.standard_normal(t.shape if reduction == "none" else ()).astype(dtype)
    both(torch, F.cross_entropy, torch.nn.functional.cross_entropy, dict(input=x, target=t, weight=w),
         ["input"], ga, dtype, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("weighted,ignore", [(False, None), (True, None), (False, 2), (True, 0)])
def test_nll_loss_matches_torch(torch, rng, dtype, reduction, shape, weighted, ignore):
    c = shape[0] if len(shape) == 1 else shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    t = class_targets(rng, shape, ignore)
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    kw = dict(reduction=reduction) if ignore is None else dict(reduction=reduction, ignore_index=ignore)
    ga = rng.standard_normal(t.shape if reduction == "none" else ()).astype(dtype)
    both(torch, F.nll_loss, torch.nn.functional.nll_loss, dict(input=x, target=t, weight=w), ["input"],
         ga, dtype, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (2, 3, 2, 2), (4,), (0, 3)])
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.0), (False, 0.25), (True, 0.1)])
def test_cross_entropy_probability_targets_match_torch(torch, rng, dtype, reduction, shape, weighted,
                                                       smoothing):
    c = shape[0] if len(shape) == 1 else shape[1]
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    q = rng.random(shape).astype(dtype)
    q /= q.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    nshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    ga = rng.standard_normal(nshape if reduction == "none" else ()).astype(dtype)
    # the probability target gets a gradient too, as in PyTorch
    both(torch, F.cross_entropy, torch.nn.functional.cross_entropy, dict(input=x, target=q, weight=w),
         ["input", "target"], ga, dtype, reduction=reduction, label_smoothing=smoothing)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2), (3,)])
@pytest.mark.parametrize("kw", [dict(), dict(weight=True), dict(ignore_index=1), dict(label_smoothing=0.3),
                                dict(weight=True, ignore_index=0, label_smoothing=0.2), dict(soft=True),
                                dict(soft=True, weight=True, label_smoothing=0.4)])
def test_cross_entropy_gradcheck(kernel_mode, rng, reduction, shape, kw):
    kw = dict(kw)
    c = shape[0] if len(shape) == 1 else shape[1]
    if kw.pop("weight", False):
        kw["weight"] = tc.tensor(rng.random(c) + 0.5)
    x = leaf(2 * rng.standard_normal(shape))
    if kw.pop("soft", False):
        t = leaf(rng.random(shape))
        assert tc.gradcheck(lambda x, t: F.cross_entropy(x, t, reduction=reduction, **kw), [x, t])
    else:
        t = class_targets(rng, shape, kw.get("ignore_index"))
        assert tc.gradcheck(lambda x: F.cross_entropy(x, t, reduction=reduction, **kw), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_nll_loss_gradcheck_weighted_ignored(rng, reduction, shape):
    x = leaf(rng.standard_normal(shape))
    t = class_targets(rng, shape, ignore=2)
    w = tc.tensor(rng.random(shape[1]) + 0.5)
    assert tc.gradcheck(lambda x: F.nll_loss(x, t, weight=w, ignore_index=2, reduction=reduction), [x])


def test_cross_entropy_plain_case_takes_the_fused_path(rng, monkeypatch):
    """Only the plain case (2-d, class targets, no weight/smoothing/ignored) runs CrossEntropyFn."""
    calls = []
    real = L.CrossEntropyFn

    class Spy(real):
        def __init__(self, *a, **k):
            calls.append(1)
            super().__init__(*a, **k)

    monkeypatch.setattr(L, "CrossEntropyFn", Spy)
    x = leaf(rng.standard_normal((4, 3)))
    F.cross_entropy(x, [0, 1, 2, 1])
    F.cross_entropy(x, [0, 1, 2, 1], ignore_index=0)               # ignore_index hit: reference
    F.cross_entropy(x, [0, 1, 2, 1], ignore_index=5)               # never hit: still fused
    F.cross_entropy(x, [0, 1, 2, 1], weight=tc.ones(3, dtype=tc.float64))
    F.cross_entropy(x, [0, 1, 2, 1], label_smoothing=0.1)
    F.cross_entropy(leaf(rng.standard_normal((2, 3, 2))), np.zeros((2, 2), dtype=np.int64))
    assert len(calls) == 2


def test_cross_entropy_paths_agree(kernel_mode, rng):
    """The fused path and the reference path (here forced by a weight of ones) agree."""
    x = leaf(3 * rng.standard_normal((6, 5)))
    t = rng.integers(0, 5, 6)
    fused = F.cross_entropy(x, t)
    fused.backward()
    g = x.grad.array.copy()
    x.grad = None
    ref = F.cross_entropy(x, t, weight=tc.ones(5, dtype=tc.float64))
    ref.backward()
    np.testing.assert_allclose(fused.array, ref.array, rtol=1e-14)
    np.testing.assert_allclose(g, x.grad.array, rtol=1e-12, atol=1e-15)


def test_everything_ignored_gives_nan_mean_and_zero_sum(torch):
    x = np.random.default_rng(1).standard_normal((3, 4))
    t = np.full(3, -100)
    for name in ("cross_entropy", "nll_loss"):
        for red in ("mean", "sum"):
            ours = getattr(F, name)(leaf(x), t, reduction=red).item()
            theirs = getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(t),
                                                        reduction=red).item()
            assert (np.isnan(ours) and np.isnan(theirs)) or ours == theirs == 0.0, (name, red, ours, theirs)


def test_ignored_positions_with_infinite_log_probability_stay_zero(torch):
    """An ignored position is skipped, not multiplied by 0 (0 * -inf would be NaN)."""
    x = np.array([[0.0, -np.inf], [-0.5, -1.0]])
    t = np.array([1, 0])
    ours = F.nll_loss(leaf(x), t, ignore_index=1, reduction="none")
    theirs = torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(t), ignore_index=1, reduction="none")
    close(ours, theirs, np.float64)


def test_cross_entropy_legacy_size_average_and_reduce(torch, rng):
    x, t = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    for sa, red in [(False, None), (None, False), (True, True)]:
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            ours = F.cross_entropy(leaf(x), t, size_average=sa, reduce=red)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), size_average=sa,
                                                       reduce=red)
        close(ours, theirs, np.float64)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_class_target_bad_input(rng, name):
    loss = getattr(F, name)
    x = leaf(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(2, 4\) for input of shape "
                                         r"\(2, 3, 4\), got \(2, 3\)"):
        loss(leaf(rng.standard_normal((2, 3, 4))), np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=rf"{name}: expected target of shape \(\) for input of shape \(4,\)"):
        loss(leaf(rng.standard_normal(4)), [1])
    with pytest.raises(ValueError, match=rf"{name}: expected input to be at least 1-d"):
        loss(leaf(np.float64(1.0)), 0)
    with pytest.raises(ValueError, match=rf"{name}: target 7 is out of range for 4 classes.*ignore_index \(7"
                                         r"|target 7 is out of range"):
        loss(x, [0, 7, 1], ignore_index=3)
    assert np.isfinite(loss(x, [0, 7, 1], ignore_index=7).item())       # the ignored value may be any int
    with pytest.raises(ValueError, match=rf"{name}: weight should be defined for all 4 classes.*got shape "
                                         r"\(3,\)"):
        loss(x, [0, 1, 2], weight=tc.ones(3, dtype=tc.float64))
    with pytest.raises(TypeError, match=rf"{name}: expected one dtype, got input float64, weight float32"):
        loss(x, [0, 1, 2], weight=tc.ones(4))
    with pytest.raises(TypeError, match=rf"{name}: weight must be a Tensor"):
        loss(x, [0, 1, 2], weight=np.ones(4))
    with pytest.raises(TypeError, match=rf"{name}: target must not require grad"):
        loss(x, leaf(np.array([0.0, 1.0, 2.0])))


def test_cross_entropy_probability_target_bad_input(rng):
    x = leaf(rng.standard_normal((3, 4)))
    with pytest.raises(TypeError, match=r"cross_entropy: expected a floating point target for class "
                                        r"probabilities.*got int64"):
        F.cross_entropy(x, np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"cross_entropy: ignore_index is not supported for probability"):
        F.cross_entropy(x, tc.tensor(np.full((3, 4), 0.25)), ignore_index=1)
    with pytest.raises(TypeError, match=r"cross_entropy: expected one dtype, got input float64, target "
                                        r"float32"):
        F.cross_entropy(x, tc.full((3, 4), 0.25))
    with pytest.raises(TypeError, match=r"cross_entropy: expected integer class indices.*float32.*"
                                        r"probability \(float\) targets must have the input's shape"):
        F.cross_entropy(x, tc.tensor([0.0, 1.0, 2.0]))
    for eps in (1.5, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be between 0.0 and 1.0"):
            F.cross_entropy(x, [0, 1, 2], label_smoothing=eps)


# --------------------------------------------------------------------------- elementwise losses

POINTWISE = {
    "mse_loss": lambda rng, s: (rng.standard_normal(s), rng.standard_normal(s)),
    "l1_loss": lambda rng, s: (rng.standard_normal(s), rng.standard_normal(s)),
    "binary_cross_entropy": lambda rng, s: (rng.uniform(0.05, 0.95, s), rng.random(s)),
    "binary_cross_entropy_with_logits": lambda rng, s: (3 * rng.standard_normal(s), rng.random(s)),
}
SHAPES = [(4, 3), (2, 3, 2), (5,), (), (0, 2)]


def _weight_kw(name, rng, shape, weighted, dtype):
    if not weighted:
        return {}
    if name in ("mse_loss", "l1_loss"):           # elementwise, of the input's shape
        return dict(weight=(rng.random(shape) + 0.5).astype(dtype))
    wshape = shape[-1:] if shape else ()           # broadcast along the last dim
    kw = dict(weight=(rng.random(wshape) + 0.5).astype(dtype))
    if name == "binary_cross_entropy_with_logits":
        kw["pos_weight"] = (rng.random(wshape) * 3).astype(dtype)
    return kw


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_losses_match_torch(torch, rng, name, dtype, reduction, shape, weighted):
    x, t = (a.astype(dtype) for a in POINTWISE[name](rng, shape))
    kw = _weight_kw(name, rng, shape, weighted, dtype)
    ga = rng.standard_normal(shape if reduction == "none" else ()).astype(dtype)
    ours = {k: tc.tensor(v) for k, v in kw.items()}
    theirs = {k: torch.tensor(v) for k, v in kw.items()}
    xo, to = leaf(x), leaf(t)
    xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    lo = getattr(F, name)(xo, to, reduction=reduction, **ours)
    lt = getattr(torch.nn.functional, name)(xt, tt, reduction=reduction, **theirs)
    close(lo, lt, dtype)
    lo.backward(tc.tensor(ga))
    lt.backward(torch.tensor(ga))
    close(xo.grad, xt.grad, dtype)
    close(to.grad, tt.grad, dtype)                 # the target's gradient too, as PyTorch


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_losses_gradcheck(rng, name, reduction, weighted):
    x, t = POINTWISE[name](rng, (3, 4))
    if name == "l1_loss":
        x = t + np.where(rng.random(x.shape) < 0.5, -1, 1) * rng.uniform(0.1, 1, x.shape)   # off the kink
    kw = {k: tc.tensor(v) for k, v in _weight_kw(name, rng, (3, 4), weighted, np.float64).items()}
    assert tc.gradcheck(lambda x, t: getattr(F, name)(x, t, reduction=reduction, **kw), [leaf(x), leaf(t)])


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses_broadcast_with_pytorchs_warning(torch, rng, name):
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 1))
    xo, to = leaf(x), leaf(t)
    with pytest.warns(UserWarning, match=r"Using a target size \(\(3, 1\)\) that is different to the input"):
        lo = getattr(F, name)(xo, to)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
        lt = getattr(torch.nn.functional, name)(xt, tt)
    lo.backward()
    lt.backward()
    close(lo, lt, np.float64)
    close(xo.grad, xt.grad, np.float64)
    close(to.grad, tt.grad, np.float64)           # summed back over the broadcast dim


def test_bce_clamps_log_at_minus_100_like_torch(torch):
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.5])
    xo = leaf(x)
    lo = F.binary_cross_entropy(xo, tc.tensor(t), reduction="none")
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy(xt, torch.tensor(t), reduction="none")
    close(lo, lt, np.float64)
    assert lo.array[0] == 100.0
    lo.sum().backward()
    lt.sum().backward()
    close(xo.grad, xt.grad, np.float64)           # (x - t) / max(x (1 - x), 1e-12): finite


def test_bce_with_logits_is_stable_for_huge_logits(torch):
    x = np.array([1e4, -1e4, 800.0, -800.0, 0.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5])
    xo = leaf(x)
    with np.errstate(over="raise", invalid="raise"):
        lo = F.binary_cross_entropy_with_logits(xo, tc.tensor(t), reduction="none")
        lo.sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(t), reduction="none")
    lt.sum().backward()
    close(lo, lt, np.float64)
    close(xo.grad, xt.grad, np.float64)


def test_empty_means_are_nan_like_torch(torch):
    for name in sorted(POINTWISE):
        ours = getattr(F, name)(leaf(np.zeros(0)), tc.tensor(np.zeros(0))).item()
        theirs = getattr(torch.nn.functional, name)(torch.zeros(0, dtype=torch.float64),
                                                    torch.zeros(0, dtype=torch.float64)).item()
        assert np.isnan(ours) and np.isnan(theirs), name


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_bad_input(rng, name):
    loss = getattr(F, name)
    x, t = (leaf(a) for a in POINTWISE[name](rng, (3, 4)))
    with pytest.raises(TypeError, match=rf"{name}: target must be a Tensor, got ndarray"):
        loss(x, t.array)
    with pytest.raises(TypeError, match=rf"{name}: expected one dtype, got input float64, target float32"):
        loss(x, tc.tensor(t.array.astype(np.float32)))
    with pytest.raises(TypeError, match=rf"{name}: expected a floating point target, got int64"):
        loss(x, tc.tensor(np.ones((3, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=rf"{name}: reduction must be one of"):
        loss(x, t, reduction="avg")
    if name in ("mse_loss", "l1_loss"):
        with pytest.raises(ValueError, match=rf"{name}: target of shape \(3, 5\) does not broadcast with "
                                             r"input of shape \(3, 4\)"):
            loss(x, tc.tensor(np.zeros((3, 5))))
        with pytest.raises(ValueError, match=rf"{name}: weight and input must have the same size"):
            loss(x, t, weight=tc.tensor(np.ones(4)))
    else:
        with pytest.raises(ValueError, match=rf"{name}: expected target of the input's shape \(3, 4\), got "
                                             r"\(3, 1\)"):
            loss(x, tc.tensor(np.zeros((3, 1))))
        with pytest.raises(ValueError, match=rf"{name}: weight of shape \(3,\) does not broadcast"):
            loss(x, t, weight=tc.tensor(np.ones(3)))


def test_bce_rejects_values_outside_zero_one():
    t = tc.tensor(np.full(3, 0.5))
    for bad in (1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input should be "
                                             r"between 0 and 1"):
            F.binary_cross_entropy(tc.tensor(np.array([0.5, bad, 0.2])), t)


# --------------------------------------------------------------------------- leaky_relu, dropout2d


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0, -0.5, 2.0])
def test_leaky_relu_matches_torch(torch, rng, dtype, slope):
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    x.flat[:3] = 0.0                                       # the kink: PyTorch takes slope * dy there
    x.flat[3] = np.nan
    ga = rng.standard_normal(x.shape).astype(dtype)
    xo = leaf(x)
    y = F.leaky_relu(xo, slope)
    y.backward(tc.tensor(ga))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.leaky_relu(xt, slope)
    yt.backward(torch.tensor(ga))
    close(y, yt, dtype)
    close(xo.grad, xt.grad, dtype)


def test_leaky_relu_gradcheck_and_inplace(torch, rng):
    x = rng.standard_normal((2, 3, 4))
    x += np.where(x >= 0, 0.1, -0.1)
    assert tc.gradcheck(lambda x: F.leaky_relu(x, 0.3), [leaf(x)])
    # inplace: writes into a non-leaf and the graph still gives PyTorch's gradient
    a = leaf(x)
    h = a * 2
    out = F.leaky_relu(h, 0.1, inplace=True)
    assert out is h
    (out * out).sum().backward()
    at = torch.tensor(x, requires_grad=True)
    ht = at * 2
    torch.nn.functional.leaky_relu(ht, 0.1, inplace=True)
    (ht * ht).sum().backward()
    close(h, ht, np.float64)
    close(a.grad, at.grad, np.float64)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.leaky_relu(leaf(x), inplace=True)
    m = nn.LeakyReLU(0.2, inplace=True)
    assert repr(m) == repr(torch.nn.LeakyReLU(0.2, inplace=True))
    assert repr(m) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a real number"):
        F.leaky_relu(leaf(x), "0.1")


@pytest.mark.parametrize("shape", [(8, 16, 5, 5), (8, 16, 7)])
def test_dropout2d_zeroes_whole_channels(kernel_mode, shape):
    tc.manual_seed(0)
    x = leaf(np.random.default_rng(0).standard_normal(shape) + 5)    # no zeros of its own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = F.dropout2d(x, 0.4)
    ga = np.random.default_rng(1).standard_normal(shape)
    y.backward(tc.tensor(ga))
    flat = y.array.reshape(shape[0], shape[1], -1)
    dropped = (flat == 0).all(axis=2)
    kept = (flat != 0).all(axis=2)
    assert (dropped | kept).all()                          # a channel is all in or all out
    assert 0.2 < dropped.mean() < 0.6
    scale = np.where(dropped, 0.0, 1 / 0.6).reshape(shape[:2] + (1,) * (len(shape) - 2))
    np.testing.assert_allclose(y.array, x.array * scale, rtol=1e-14)
    np.testing.assert_allclose(x.grad.array, ga * scale, rtol=1e-14)   # the same mask in backward


def test_dropout2d_statistics_and_torch_warnings(torch):
    tc.manual_seed(1)
    y = F.dropout2d(tc.ones((200, 100, 2, 2)), 0.3)
    kept = (y.array[:, :, 0, 0] != 0).mean()
    assert abs(kept - 0.7) < 5 * np.sqrt(0.21 / 20000)
    for shape in [(2, 3, 4), (2, 3), (2, 3, 2, 2, 2)]:
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            F.dropout2d(tc.ones(shape), 0.5)
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            torch.nn.functional.dropout2d(torch.ones(shape), 0.5)
        assert [str(w.message)[:60] for w in ours] == [str(w.message)[:60] for w in theirs], shape
    with pytest.raises(ValueError, match="dropout2d: Feature dropout requires at least 2 dimensions"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            F.dropout2d(tc.ones(3), 0.5)
    with pytest.raises(ValueError, match="dropout2d: dropout probability has to be between 0 and 1"):
        F.dropout2d(tc.ones((2, 2, 2, 2)), 1.5)


def test_dropout2d_identity_cases_gradcheck_and_module(kernel_mode, rng):
    x = leaf(rng.standard_normal((2, 3, 2, 2)))
    assert F.dropout2d(x, 0.5, training=False) is x and F.dropout2d(x, 0.0) is x
    y = F.dropout2d(x, 1.0)
    y.sum().backward()
    assert (y.array == 0).all() and (x.grad.array == 0).all()

    def fixed(x):
        tc.manual_seed(7)
        return F.dropout2d(x, 0.5)
    assert tc.gradcheck(fixed, [leaf(rng.standard_normal((2, 4, 3, 3)))])
    m = nn.Dropout2d(0.5)
    assert m(x).shape == x.shape and m.eval()(x) is x
    assert repr(m) == "Dropout2d(p=0.5, inplace=False)"
    h = x * 1
    assert F.dropout2d(h, 0.5, inplace=True) is h


# --------------------------------------------------------------------------- modules


def test_loss_modules_match_torch(torch, rng):
    x = rng.standard_normal((5, 4))
    t = rng.integers(0, 4, 5)
    w = rng.random(4) + 0.5
    p = rng.random((5, 4))
    cases = [
        ("CrossEntropyLoss", dict(weight=w, ignore_index=2, label_smoothing=0.1), x, t),
        ("CrossEntropyLoss", dict(reduction="none"), x, p / p.sum(1, keepdims=True)),
        ("NLLLoss", dict(weight=w, ignore_index=0, reduction="sum"), x, t),
        ("MSELoss", dict(reduction="sum"), x, p),
        ("L1Loss", dict(), x, p),
        ("BCELoss", dict(weight=w), p, (p > 0.5).astype(np.float64)),
        ("BCEWithLogitsLoss", dict(weight=w, pos_weight=2 * w), x, p),
    ]
    for name, kw, a, b in cases:
        ours = getattr(nn, name)(**{k: tc.tensor(v) if isinstance(v, np.ndarray) else v
                                    for k, v in kw.items()})
        theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                            for k, v in kw.items()})
        close(ours(tc.tensor(a), tc.tensor(b)), theirs(torch.tensor(a), torch.tensor(b)), np.float64)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict()), name
        assert repr(ours) == repr(theirs), name


def test_loss_module_arguments(torch):
    with pytest.raises(ValueError, match="MSELoss: reduction must be"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="BCELoss: weight must be a Tensor"):
        nn.BCELoss(weight=[1.0, 2.0])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nn.L1Loss(size_average=False).reduction == "sum"


@pytest.mark.parametrize("name,kw", [("Softmax", dict(dim=1)), ("LogSoftmax", dict(dim=-1)), ("Identity", {}),
                                     ("Sigmoid", {}), ("Tanh", {}), ("LeakyReLU", dict(negative_slope=0.3))])
def test_activation_modules_match_torch(torch, rng, name, kw):
    x = rng.standard_normal((3, 4, 2))
    ga = rng.standard_normal(x.shape)
    xo, xt = leaf(x), torch.tensor(x, requires_grad=True)
    yo, yt = getattr(nn, name)(**kw)(xo), getattr(torch.nn, name)(**kw)(xt)
    close(yo, yt, np.float64)
    if name == "Identity":
        assert yo is xo
        return
    yo.backward(tc.tensor(ga))
    yt.backward(torch.tensor(ga))
    close(xo.grad, xt.grad, np.float64)
    assert repr(getattr(nn, name)(**kw)) == repr(getattr(torch.nn, name)(**kw))
    assert tc.gradcheck(getattr(nn, name)(**kw), [leaf(x)])


def test_zero_weight_class_with_nan_input_is_nan_like_torch(torch):
    """A class of weight 0 is multiplied (NaN stays NaN), unlike an ignored target, which is skipped."""
    x = np.array([[np.nan, 0.0], [0.0, -1.0]])
    t = np.array([0, 1])
    for kw in (dict(weight=np.array([0.0, 1.0])), dict(ignore_index=0)):
        ours = F.nll_loss(leaf(x), t, reduction="none",
                          **{k: tc.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
        theirs = torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(t), reduction="none",
                                              **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                                 for k, v in kw.items()})
        close(ours, theirs, np.float64)
