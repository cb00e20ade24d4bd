"""PyTorch semantics, one short test per promise, each checked against PyTorch itself."""

# --- 2. Reductions and indices as PyTorch returns them
import numpy as np
import pytest

import tinyconv as tc

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")


def _pair(a, requires_grad=True):
    """The same float64 data as a tinyconv and a PyTorch tensor."""
    a = np.asarray(a, dtype=np.float64)
    return tc.tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def _same(ours, theirs):
    np.testing.assert_allclose(ours.array, theirs.detach().numpy(), equal_nan=True)
    assert ours.shape == tuple(theirs.shape)


def test_max_min_return_values_and_indices_as_pytorch():
    x, t = _pair([[1.0, 3.0, 3.0], [2.0, float("nan"), 0.0]])
    for ours, theirs in ((x.max(1), t.max(1)), (x.min(-1, keepdim=True), t.min(-1, keepdim=True)),
                         (tc.max(x, 0), torch.max(t, 0))):
        values, indices = ours                           # unpackable, indexable, named
        assert ours[0] is ours.values is values and ours[1] is ours.indices is indices
        _same(values, theirs.values)
        _same(indices, theirs.indices)                   # a nan's index wins
    assert "return_types.max(\nvalues=" in repr(x.max(1))
    _same(x.max(), t.max())                              # no dim: the value, 0-d
    x.max(1).values.sum().backward()
    t.max(1).values.sum().backward()                     # max(dim): to the returned index only
    _same(x.grad, t.grad)
    a, ta = _pair([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    (a.max() + a.amax(1).sum() + a.amin(0).sum()).backward()
    (ta.max() + ta.amax(1).sum() + ta.amin(0).sum()).backward()   # ties share the gradient
    _same(a.grad, ta.grad)
    b, tb = _pair([2.0, 2.0, 1.0])
    a.grad = ta.grad = None
    tc.max(a, b).sum().backward()
    torch.max(ta, tb).sum().backward()                   # elementwise: a tie gives half to each
    _same(a.grad, ta.grad)
    _same(b.grad, tb.grad)


def test_each_reduction_and_index_op_as_pytorch():
    x, t = _pair(np.random.default_rng(0).permutation(24).reshape(2, 3, 4) / 5.0)
    calls = [lambda m, a: a.amax((0, 2), keepdim=True), lambda m, a: a.amin(-1),
             lambda m, a: a.sort(1, descending=True).values, lambda m, a: a.topk(2, dim=0).values,
             lambda m, a: a.sum(1, keepdim=True), lambda m, a: a.mean((0, 1)),
             lambda m, a: a.std(2, correction=0), lambda m, a: a.var(1, unbiased=True),
             lambda m, a: a.prod(1), lambda m, a: a.logsumexp(-1, keepdim=True)]
    cot = np.random.default_rng(1)
    for fn in calls:
        x.grad = t.grad = None
        ours, theirs = fn(tc, x), fn(torch, t)
        _same(ours, theirs)
        g = cot.standard_normal(theirs.shape)
        ours.backward(tc.tensor(g))
        theirs.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.array, t.grad.numpy(), rtol=1e-10)
    _same(x.argmax(), t.argmax())                                       # into the flattened tensor
    _same(x.argmin(1, keepdim=True), t.argmin(1, keepdim=True))
    _same(x.sort(-1).indices, t.sort(-1).indices)
    _same(x.topk(3, largest=False).indices, t.topk(3, largest=False).indices)
    assert x.all(1).dtype == np.bool_ and x.any().dtype == np.bool_
    _same((x > 1).all(1), (t > 1).all(1))
    ints = np.arange(6).reshape(2, 3)
    _same(tc.tensor(ints).sum(1, dtype=tc.float64), torch.tensor(ints).sum(1, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype"):
        tc.tensor(ints).mean()


def test_dims_and_edge_cases_as_pytorch():
    x, t = _pair(np.arange(24.0).reshape(2, 3, 4))
    _same(x.sum(-1), t.sum(-1))
    _same(x.sum(()), t.sum(()))                          # () reduces every dim for sum ...
    _same(x.all(()), t.all(()))                          # ... and none for all
    _same(x.mean(axis=(0, 2), keepdims=True), t.mean((0, 2), keepdim=True))   # NumPy keywords
    z, tz = _pair(5.0)
    for dim in (0, -1):
        _same(z.sum(dim, keepdim=True), tz.sum(dim, keepdim=True))
        _same(z.max(dim).indices, tz.max(dim).indices)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                                         r"\[-1, 0\], but got 1\)"):
        z.sum(1)
    with pytest.raises(RuntimeError, match="dim 1 appears multiple times"):
        x.sum((1, -2))
    e, te = _pair(np.zeros((2, 0)))
    _same(e.sum(), te.sum())
    _same(e.mean(), te.mean())                           # nan
    _same(e.amax(0), te.amax(0))
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim to be specified"):
        e.max()
    with pytest.raises(IndexError, match=r"argmax\(\): Expected reduction dim 1 to have non-zero"):
        e.argmax(1)


def test_one_dim_rule_for_every_op():
    x = tc.ones(2, 3)
    for op in ("sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "sort", "prod",
               "logsumexp", "std", "var", "all", "any"):
        with pytest.raises(IndexError, match=rf"^{op}\(\): Dimension out of range \(expected to be in "
                                             r"range of \[-2, 1\], but got -3\)$"):
            getattr(x, op)(-3)
        with pytest.raises(IndexError) as want:
            getattr(torch.ones(2, 3), op)(-3)
        assert str(want.value) in f"{op}(): Dimension out of range (expected to be in range of " \
                                  "[-2, 1], but got -3)"


def test_index_outputs_are_int64_outside_the_graph():
    x, t = _pair([[3.0, 1.0], [0.0, 2.0]])
    for ours, theirs in ((x.max(1).indices, t.max(1).indices), (x.argmin(0), t.argmin(0)),
                         (x.sort(0).indices, t.sort(0).indices), (x.topk(1).indices, t.topk(1).indices)):
        assert ours.dtype == np.int64 and not ours.requires_grad and ours.grad_fn is None
        _same(ours, theirs)
    assert x.max(1).values.grad_fn is not None and x.sort().values.requires_grad
