"""Reductions and indices against PyTorch: values, indices, gradients, dims, edge cases, errors.

``_both`` runs one call on tinyconv and on PyTorch (the oracle) and compares everything
PyTorch returns: a tensor or a ``(values, indices)`` tuple, dtypes, and the gradient of a
random cotangent.  When PyTorch raises, tinyconv must raise the same exception type, with
the op named in the message.  Hypothesis draws shapes (0-d, empty, size-1 dims) and dims
(negative, tuples, out of range); values come from a small set so ties are frequent.
"""
import warnings

import numpy as np
import pytest

import tinyconv as tc

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
NAN, INF = float("nan"), float("inf")


def _as_numpy(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t.array)


def _check_same(got, want, op):
    """One output (tensor) or a (values, indices) tuple: same type, shape, dtype and numbers."""
    if isinstance(want, tuple):
        assert type(got).__name__ == type(want).__name__ == op, (type(got), type(want))
        assert isinstance(got, tuple) and len(got) == len(want) == 2
        _check_same(got.values, want.values, op)
        _check_same(got.indices, want.indices, op)
        assert got.indices.dtype == np.int64 and not got.indices.requires_grad
        return
    assert isinstance(got, tc.Tensor), type(got)
    g, w = got.array, _as_numpy(want)
    assert g.shape == w.shape, (op, g.shape, w.shape)
    assert g.dtype == w.dtype, (op, g.dtype, w.dtype)
    if w.dtype.kind == "f":
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=op)
    else:
        np.testing.assert_array_equal(g, w, err_msg=op)


def _values(out):
    return out.values if isinstance(out, tuple) else out


def _both(op, x, *args, grad=True, fn=None, **kwargs):
    """Call ``op`` on tinyconv and PyTorch tensors made from ``x`` and compare results and grads.

    ``fn(module, tensor, *args, **kwargs)`` overrides the call (default: the method ``op``).
    Returns tinyconv's output, or None when both raised.
    """
    x = np.asarray(x)
    float_in = x.dtype.kind == "f"
    t = torch.tensor(x, requires_grad=grad and float_in)
    ours = tc.tensor(x, requires_grad=grad and float_in)
    call = fn or (lambda mod, a, *args, **kw: getattr(a, op)(*args, **kw))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = call(torch, t, *args, **kwargs)
    except Exception as e:           # PyTorch refuses: so must we, same type, naming the op
        with pytest.raises(type(e)) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(tc, ours, *args, **kwargs)
        assert op in str(info.value), (op, str(info.value))
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = call(tc, ours, *args, **kwargs)
    _check_same(got, want, op)
    wv = _values(want)
    if grad and float_in and wv.requires_grad:
        cot = np.random.default_rng(0).standard_normal(wv.shape).astype(x.dtype)
        wv.backward(torch.tensor(cot))
        _values(got).backward(tc.tensor(cot))
        np.testing.assert_allclose(ours.grad.array, t.grad.numpy(), rtol=1e-6, atol=1e-6,
                                   equal_nan=True, err_msg=f"{op} gradient")
    return got


# --------------------------------------------------------------------------- strategies

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
tie_values = st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])       # ties are frequent


@st.composite
def arrays(draw, shape=shapes, special=False):
    """A float32/64 array of a drawn shape; ``special`` adds nan and +-inf to the values."""
    elems = st.one_of(tie_values, st.sampled_from([NAN, INF, -INF])) if special else tie_values
    return draw(hnp.arrays(draw(st.sampled_from([np.float32, np.float64])), draw(shape), elements=elems))


@st.composite
def distinct(draw, shape=nonempty_shapes):
    """A float64 array with all values distinct (no ties: indices and gradients are unique)."""
    s = draw(shape)
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).permutation(int(np.prod(s))).reshape(s).astype(np.float64)


def one_dim(ndim):
    """A dim in range, or one step out of it on either side."""
    n = max(ndim, 1)
    return st.integers(-n - 1, n)


def dim_tuples(ndim):
    n = max(ndim, 1)
    return st.lists(st.integers(-n, n - 1), max_size=3).map(tuple)


# --------------------------------------------------------------------------- hypothesis sweeps


@SETTINGS
@given(x=arrays(special=True), data=st.data())
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "std", "var"])
def test_multi_dim_reductions_match_pytorch(op, x, data):
    dim = data.draw(st.one_of(st.none(), one_dim(x.ndim), dim_tuples(x.ndim)), label="dim")
    _both(op, x, dim, keepdim=data.draw(st.booleans(), label="keepdim"), grad=_torch_grad_ok(op, dim))


def _torch_grad_ok(op, dim):
    """PyTorch 2.13's std/var backward over ``dim=()`` divides by 1 - correction (its forward
    reduces every dim): an inf gradient we do not copy."""
    return not (op in ("std", "var") and dim is not None and len(tuple(np.atleast_1d(dim))) == 0)


@SETTINGS
@given(x=arrays(special=True), data=st.data())
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_dim_values_indices_and_gradient(op, x, data):
    dim = data.draw(st.one_of(st.none(), one_dim(x.ndim)), label="dim")
    if dim is None:
        _both(op, x)
    else:
        _both(op, x, dim, keepdim=data.draw(st.booleans()))


@SETTINGS
@given(x=arrays(special=True), data=st.data())
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin_match_pytorch(op, x, data):
    dim = data.draw(st.one_of(st.none(), one_dim(x.ndim)), label="dim")
    _both(op, x, dim, keepdim=data.draw(st.booleans()))


@SETTINGS
@given(x=arrays(special=True), data=st.data())
def test_sort_stable_matches_pytorch(x, data):
    dim = data.draw(one_dim(x.ndim), label="dim")
    _both("sort", x, dim=dim, descending=data.draw(st.booleans()), stable=True)


@SETTINGS
@given(x=distinct(), data=st.data())
def test_topk_matches_pytorch(x, data):
    dim = data.draw(one_dim(x.ndim), label="dim")
    n = x.shape[dim] if x.ndim and -x.ndim <= dim < x.ndim else 1
    k = data.draw(st.integers(0, n + 1), label="k")
    _both("topk", x, k, dim=dim, largest=data.draw(st.booleans()))


@SETTINGS
@given(x=arrays(special=True), data=st.data())
@pytest.mark.parametrize("op", ["prod", "logsumexp"])
def test_prod_logsumexp_match_pytorch(op, x, data):
    dim = data.draw(one_dim(x.ndim) if op == "prod" else st.one_of(one_dim(x.ndim),
                                                                      dim_tuples(x.ndim).filter(bool)))
    _both(op, x, dim, keepdim=data.draw(st.booleans()))


@SETTINGS
@given(x=arrays(), data=st.data())
@pytest.mark.parametrize("op", ["all", "any"])
def test_all_any_match_pytorch(op, x, data):
    dim = data.draw(st.one_of(st.none(), one_dim(x.ndim), dim_tuples(x.ndim)), label="dim")
    if dim is None:
        _both(op, x)
    else:
        _both(op, x, dim, keepdim=data.draw(st.booleans()))


# --------------------------------------------------------------------------- named tuples


def test_max_dim_returns_values_and_indices():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 5.0, 0.0]])
    r = _both("max", x, 1)
    values, indices = r                      # unpackable
    assert r[0] is values and r.values is values and r[1] is indices and r.indices is indices
    np.testing.assert_array_equal(indices.array, [1, 1])          # the first of the tied 3s
    assert repr(r).startswith("tinyconv.return_types.max(\nvalues=tensor([3., 5.]")
    assert repr(r).endswith("),\nindices=tensor([1, 1]))")
    x32 = x.astype(np.float32)
    assert repr(tc.tensor(x32).max(1)).replace("tinyconv", "torch") == repr(torch.tensor(x32).max(1))
    _, pred = tc.tensor(x).max(1)                                  # the d2l idiom
    np.testing.assert_array_equal(pred.array, [1, 1])


@pytest.mark.parametrize("fn", ["max", "min"])
def test_torch_level_max_min(fn):
    x = np.array([[1.0, 3.0], [4.0, 2.0]])
    _both(fn, x, 0, fn=lambda m, a, *args, **kw: getattr(m, fn)(a, *args, **kw))
    _both(fn, x, fn=lambda m, a: getattr(m, fn)(a))
    _both(fn, x, fn=lambda m, a: getattr(m, fn)(a, dim=1, keepdim=True))


@pytest.mark.parametrize("fn", ["max", "min", "maximum", "minimum"])
def test_elementwise_max_min_split_ties_as_pytorch(fn):
    a = np.array([[1.0, 2.0, 3.0, NAN], [5.0, 0.0, 2.0, 1.0]])
    b = np.array([1.0, 1.0, 4.0, 2.0])                       # broadcast; a tie in column 0
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    oa, ob = (tc.tensor(v, requires_grad=True) for v in (a, b))
    want, got = getattr(torch, fn)(ta, tb), getattr(tc, fn)(oa, ob)
    _check_same(got, want, fn)
    want.sum().backward()
    got.sum().backward()
    for o, t in ((oa, ta), (ob, tb)):
        np.testing.assert_array_equal(o.grad.array, t.grad.numpy())
    _check_same(getattr(tc.tensor(a), fn)(tc.tensor(b)), getattr(torch.tensor(a), fn)(torch.tensor(b)), fn)


def test_elementwise_max_promotes_like_pytorch():
    _check_same(tc.max(tc.arange(3), tc.tensor(1.5)), torch.max(torch.arange(3), torch.tensor(1.5)), "max")
    with pytest.raises(TypeError, match="max"):             # a number is not a tensor
        tc.max(tc.ones(2), 2.0)
    with pytest.raises(TypeError, match="maximum"):
        tc.maximum(tc.ones(2), 2.0)


# --------------------------------------------------------------------------- gradients


def test_gradient_of_max_dim_goes_to_the_index_of_max_to_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    _both("max", x, 1)                        # to the returned index only
    _both("max", x)                           # shared equally between ties
    _both("amax", x, 1)                       # shared equally between ties (per row)
    _both("amin", x, (0, 1), keepdim=True)
    _both("min", x)


@pytest.mark.parametrize("op", ["max", "min", "amax", "amin", "argmax", "argmin", "sort"])
def test_nan_propagates_as_in_pytorch(op):
    x = np.array([[1.0, NAN, 3.0, NAN], [INF, -INF, 0.0, 2.0]])
    _both(op, x, 1)
    _both(op, x) if op != "sort" else _both(op, x, descending=True)


def test_nan_gradients_as_in_pytorch():
    x = np.array([1.0, NAN, 3.0, NAN])
    _both("max", x)             # max(): the gradient goes to the nans
    _both("amax", x)            # amax: nan gradients everywhere (PyTorch's formula)
    _both("max", x, 0)          # max(dim): to the first nan
    _both("logsumexp", np.array([1.0, INF, 3.0]), 0)
    _both("logsumexp", np.array([-INF, -INF]), 0)


def test_prod_gradient_with_zeros():
    for x in ([1.0, 0.0, 3.0], [1.0, 0.0, 0.0], [[2.0, 0.0, 3.0], [0.0, 0.0, 1.0]]):
        _both("prod", np.array(x))
        _both("prod", np.array(x), -1, keepdim=True)


def test_std_var_corrections():
    x = np.array([[1.0, 2.0, 4.0, 5.0], [3.0, 3.0, 3.0, 3.0]])
    _both("std", x, 1, correction=2)
    _both("var", x, 1, correction=0.5)
    _both("std", x, 1, unbiased=False, keepdim=True)
    _both("var", x, 1, True, True)
    _both("std", x, False)                               # the std(unbiased) overload
    _both("std", np.array([1.0, 2.0]), correction=2)     # dof 0: inf
    _both("var", np.array([1.0]))                        # dof 0: nan, and a warning
    with pytest.warns(UserWarning, match="degrees of freedom"):
        tc.ones(1).var()
    with pytest.raises(TypeError, match="var"):
        tc.ones(3).var(0, unbiased=True, correction=1)


def test_sort_topk_gradients_and_stability():
    x = np.array([2.0, 1.0, 2.0, 1.0, 3.0])
    _both("sort", x, stable=True)
    _both("sort", x, descending=True, stable=True)
    for largest in (True, False):    # PyTorch breaks topk's ties its own way: compare values
        want = torch.tensor(x).topk(3, largest=largest).values.numpy()
        np.testing.assert_array_equal(tc.tensor(x).topk(3, largest=largest).values.array, want)
    _both("topk", np.array([2.0, 1.0, 5.0, 0.0, 3.0]), 2)
    ours = tc.tensor([2.0, 1.0, 5.0, 0.0, 3.0]).topk(3, largest=False, sorted=False)
    want = torch.tensor([2.0, 1.0, 5.0, 0.0, 3.0]).topk(3, largest=False, sorted=False)
    assert sorted(ours.indices.tolist()) == sorted(want.indices.tolist())   # any order, as PyTorch
    _both("sort", np.array([1.0, NAN, -NAN, -INF]))


def test_sum_mean_dtypes():
    ints = np.array([[1, 2], [3, 4]])
    _both("sum", ints)
    _both("sum", ints.astype(np.int32), 0)
    _both("sum", ints > 2)
    _both("sum", ints, fn=lambda m, a: a.sum(dtype=m.float32))
    _both("mean", ints, fn=lambda m, a: a.mean(dtype=m.float64))
    _both("sum", np.ones((2, 3), np.float32), fn=lambda m, a: a.sum(1, dtype=m.float64))
    _both("mean", ints, fn=lambda m, a: a.mean(dtype=m.int64))
    for dt in (np.int64, np.int32, np.uint8, np.bool_):
        _both("mean", ints.astype(dt))
    _both("prod", ints)
    _both("logsumexp", ints, 0)
    _both("all", ints.astype(np.uint8))
    _both("max", ints.astype(np.int32), 0)


# --------------------------------------------------------------------------- dims and edge cases


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "std", "var", "all", "any"])
def test_empty_dim_tuple_means_what_it_means_in_pytorch(op):
    x = np.array([[1.0, 3.0, 0.0], [2.0, 5.0, 0.0]])
    _both(op, x, (), grad=_torch_grad_ok(op, ()))
    _both(op, x, [], grad=_torch_grad_ok(op, ()))
    _both(op, np.array(4.0), (), grad=_torch_grad_ok(op, ()))


def test_logsumexp_dims():
    x = np.array([[1.0, 3.0, 0.0], [2.0, 5.0, 0.0]])
    _both("logsumexp", x, (0, 1))
    _both("logsumexp", x, ())
    with pytest.raises(TypeError, match="logsumexp"):
        tc.ones(2).logsumexp()


@pytest.mark.parametrize("op,args", [
    ("sum", (0,)), ("sum", (-1,)), ("mean", (0, True)), ("amax", (-1,)), ("max", (0,)), ("min", (-1,)),
    ("argmax", (0,)), ("argmin", (-1, True)), ("sort", (0,)), ("topk", (1,)), ("topk", (0,)),
    ("prod", (0,)), ("logsumexp", (0,)), ("all", (0,)), ("any", (-1,)), ("std", (0,)),
])
def test_zero_dim_tensors_take_dim_0_and_minus_1(op, args):
    _both(op, np.array(5.0), *args)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "max", "argmax", "sort", "topk", "prod",
                                "logsumexp", "all", "std"])
def test_dims_out_of_range(op):
    for x, dim in ((np.array(5.0), 1), (np.array(5.0), -2), (np.ones((2, 3)), 2), (np.ones((2, 3)), -3)):
        args = (1, dim) if op == "topk" else (dim,)
        with pytest.raises(IndexError, match=rf"{op}\(\): Dimension out of range \(expected to be in "
                                             rf"range of \[-{max(x.ndim, 1)}, {max(x.ndim, 1) - 1}\], "
                                             rf"but got {dim}\)"):
            getattr(tc.tensor(x), op)(*args)
        _both(op, x, *args)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "logsumexp", "std", "var", "all"])
def test_duplicate_dims_raise(op):
    for dim in ((1, 1), (1, -1)):
        _both(op, np.ones((2, 3)), dim)
        with pytest.raises(RuntimeError, match="appears multiple times"):
            getattr(tc.ones(2, 3), op)(dim)


@pytest.mark.parametrize("op", ["sum", "mean", "prod", "logsumexp", "all", "any", "std", "var",
                                "max", "min", "amax", "amin", "argmax", "argmin", "sort"])
def test_empty_tensors(op):
    e, e2 = np.zeros(0), np.zeros((2, 0))
    if op == "sort":
        _both(op, e)
        _both(op, e2, 0)
        return
    _both(op, e2, 0)
    _both(op, e2, 1)
    if op != "logsumexp":
        _both(op, e)                       # max/argmax: PyTorch's "specify the dim" errors


def test_empty_max_errors_name_the_op():
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim to be specified"):
        tc.zeros(0).max()
    with pytest.raises(IndexError, match=r"argmax\(\): Expected reduction dim"):
        tc.zeros(0).argmax()
    with pytest.raises(IndexError, match=r"amin\(\): Expected reduction dim 1 to have non-zero size"):
        tc.zeros(2, 0).amin(1)
    with pytest.raises(RuntimeError, match=r"topk\(\): selected index k out of range"):
        tc.zeros(3).topk(4)


def test_bad_dim_types_raise_type_errors_naming_the_op():
    with pytest.raises(TypeError, match=r"max\(\): argument 'dim' must be int"):
        tc.ones(2, 3).max(dim=(0, 1))
    with pytest.raises(TypeError, match=r"argmax\(\): argument 'dim' must be int"):
        tc.ones(2, 3).argmax((0, 1))
    with pytest.raises(TypeError, match=r"sum\(\): argument 'dim' must be tuple of ints"):
        tc.ones(2, 3).sum(1.0)


def test_mean_of_integers_raises_pytorch_error():
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype.*Got: Long"):
        tc.arange(3).mean()
    with pytest.raises(RuntimeError, match=r"std"):
        tc.arange(3).std()


def test_numpy_style_keywords_still_work():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = tc.tensor(x)
    np.testing.assert_array_equal(t.sum(axis=(0, 2), keepdims=True).array, x.sum(axis=(0, 2), keepdims=True))
    np.testing.assert_array_equal(t.mean(axis=-1).array, x.mean(axis=-1))
    np.testing.assert_array_equal(t.amax(axis=1, keepdims=True).array, x.max(axis=1, keepdims=True))
    np.testing.assert_array_equal(t.max(axis=1).indices.array, x.argmax(axis=1))
    np.testing.assert_array_equal(t.argmax(axis=2).array, x.argmax(axis=2))
    np.testing.assert_array_equal(t.all(axis=0).array, x.all(axis=0))


def test_method_and_function_forms_agree():
    x = tc.tensor(np.random.default_rng(0).standard_normal((3, 4)))
    for name, args in (("sum", (1,)), ("mean", (0,)), ("std", (1,)), ("var", (1,)), ("prod", (1,)),
                       ("logsumexp", (1,)), ("amax", (1,)), ("amin", (0,)), ("argmax", (1,)),
                       ("argmin", (0,)), ("all", (1,)), ("any", (0,))):
        np.testing.assert_array_equal(getattr(tc, name)(x, *args).array, getattr(x, name)(*args).array)
    for name in ("max", "min", "sort"):
        a, b = getattr(tc, name)(x, 1), getattr(x, name)(1)
        np.testing.assert_array_equal(a.values.array, b.values.array)
        np.testing.assert_array_equal(a.indices.array, b.indices.array)
    np.testing.assert_array_equal(tc.topk(x, 2).indices.array, x.topk(2).indices.array)


# --------------------------------------------------------------------------- gradchecks


R = np.random.default_rng(3)
SMOOTH = {   # away from ties: distinct values, no zero counts
    "sum": lambda a: a.sum((0, 2)),
    "mean": lambda a: a.mean(-1, keepdim=True),
    "std": lambda a: a.std(1),
    "var": lambda a: a.var((0, 1), correction=0),
    "prod": lambda a: a.prod(1),
    "prod_all_with_zero": lambda a: (a * (a > a.amin()).to(dtype=tc.float64)).prod(),
    "logsumexp": lambda a: a.logsumexp((1, 2)),
    "amax": lambda a: a.amax((0, 2)),
    "amin": lambda a: a.amin(-1),
    "max_all": lambda a: a.max(),
    "max_dim": lambda a: a.max(1).values,
    "min_dim": lambda a: a.min(-1, keepdim=True)[0],
    "sort": lambda a: a.sort(1, descending=True).values,
    "topk": lambda a: a.topk(2, dim=-1).values,
    "maximum": lambda a: tc.maximum(a, a * 0.5 + 0.3),
    "minimum": lambda a: tc.min(a, a * 0.5 + 0.3),
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_gradcheck(name):
    x = tc.tensor(R.permutation(24).reshape(2, 3, 4) / 7.0 + 0.05, requires_grad=True)
    assert tc.gradcheck(SMOOTH[name], [x])


# --------------------------------------------------------------------------- CuPy


def test_reductions_on_cupy_match_numpy(cupy):
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    x[0, 1, 2] = NAN
    for name, args in (("sum", ((0, 2),)), ("mean", (1,)), ("std", (1,)), ("prod", (2,)),
                       ("logsumexp", (1,)), ("amax", (1,)), ("argmax", (2,)), ("all", (1,))):
        got = getattr(tc.tensor(x).cuda(), name)(*args).cpu().array
        np.testing.assert_allclose(got, getattr(tc.tensor(x), name)(*args).array, equal_nan=True)
    for name in ("max", "sort", "topk"):
        g, w = getattr(tc.tensor(x).cuda(), name)(2), getattr(tc.tensor(x), name)(2)
        np.testing.assert_allclose(g.values.cpu().array, w.values.array, equal_nan=True)
        np.testing.assert_array_equal(g.indices.cpu().array, w.indices.array)
    xc = tc.tensor(x).cuda().requires_grad_()
    xc.max(1).values.sum().backward()
    xn = tc.tensor(x, requires_grad=True)
    xn.max(1).values.sum().backward()
    np.testing.assert_array_equal(xc.grad.cpu().array, xn.grad.array)


def test_max_keepdim_without_dim_is_a_type_error():
    _both("max", np.ones((2, 3)), keepdim=True)
