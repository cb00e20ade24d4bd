"""The everyday tensor API (issue 12 part 3) against PyTorch: pointwise math, binary ops,
selection (where, masked_fill), comparisons, dtypes, factories, the legacy constructor and
``torch.backends``.

Each differentiable op is run on tinyconv and on PyTorch in float64 with the same inputs
and the same random cotangent: the values, dtypes and gradients must agree, and
``tinyconv.gradcheck`` checks the backward against central differences.  Random factories
are checked for shape, dtype, range and moments (their streams differ from PyTorch's).
"""
import warnings

import numpy as np
import pytest

import tinyconv as tc

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")

RNG = np.random.default_rng(0)


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.array)


def _torch_dtype(t):
    return str(_np(t).dtype)


def _compare(tc_fn, torch_fn, arrays, grad=True, atol=1e-10):
    """Run ``fn`` on tinyconv and torch tensors made of ``arrays``; compare value, dtype, grads."""
    req = [grad and a.dtype.kind == "f" for a in arrays]
    xs = [tc.tensor(a, requires_grad=r) for a, r in zip(arrays, req)]
    ts = [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, req)]
    y, w = tc_fn(*xs), torch_fn(*ts)
    assert y.shape == tuple(w.shape)
    assert str(y.dtype) == _torch_dtype(w)
    np.testing.assert_allclose(_np(y), _np(w), atol=atol, rtol=1e-10, equal_nan=True)
    if any(req) and w.requires_grad:
        r = RNG.standard_normal(w.shape)
        y.backward(tc.tensor(r))
        w.backward(torch.tensor(r))
        for x, t in zip(xs, ts):
            if t.requires_grad:
                want = t.grad if t.grad is not None else torch.zeros_like(t)
                got = x.grad if x.grad is not None else tc.zeros_like(x)
                np.testing.assert_allclose(_np(got), _np(want), atol=atol, rtol=1e-8)
        if y.grad_fn is not None:
            assert tc.gradcheck(tc_fn, [tc.tensor(a, requires_grad=r) for a, r in zip(arrays, req)])
    return y


# --------------------------------------------------------------------------- unary

# name: inputs in the op's domain (away from kinks, where finite differences would fail)
DOMAIN = {"sqrt": (0.1, 3), "rsqrt": (0.1, 3), "log": (0.1, 3), "log2": (0.1, 3),
          "log10": (0.1, 3), "log1p": (-0.5, 3), "asin": (-0.9, 0.9), "acos": (-0.9, 0.9),
          "reciprocal": (0.2, 3), "tan": (-1.2, 1.2)}
UNARY = list(tc.pointwise.UNARY)


def _away_from_kinks(name, shape):
    lo, hi = DOMAIN.get(name, (-3, 3))
    x = RNG.uniform(lo, hi, shape)
    if name in ("abs", "sign", "floor", "ceil", "round", "trunc", "frac"):
        x = np.where(np.abs(x - np.round(x)) < 0.1, x + 0.25, x)    # no integer, no half
        x = np.where(np.abs(x) < 0.1, 0.3, x)
    return x


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(), (3, 4)])
def test_unary_function_and_method_match_pytorch(name, shape):
    x = _away_from_kinks(name, shape)
    _compare(getattr(tc, name), getattr(torch, name), [x])
    _compare(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x])


@pytest.mark.parametrize("name", UNARY)
def test_unary_inplace_matches_pytorch(name):
    x = _away_from_kinks(name, (2, 3))
    a, b = tc.tensor(x), torch.tensor(x)
    assert getattr(a, name + "_")() is a
    getattr(b, name + "_")()
    np.testing.assert_allclose(_np(a), _np(b), rtol=1e-12)


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_unary_integer_and_bool_inputs_as_pytorch(name, dtype):
    x = np.array([1, 0, 3], dtype=dtype) if dtype != np.bool_ else np.array([True, False])
    try:
        w = getattr(torch, name)(torch.tensor(x))
    except (RuntimeError, NotImplementedError) as e:
        with pytest.raises(type(e), match=name if name != "neg" else "Negation"):
            getattr(tc, name)(tc.tensor(x))
        return
    y = getattr(tc, name)(tc.tensor(x))
    assert str(y.dtype) == _torch_dtype(w)
    np.testing.assert_allclose(_np(y), w.numpy(), rtol=1e-6)


def test_unary_rejects_a_non_tensor_and_negates_no_bool():
    with pytest.raises(TypeError, match="sqrt.*must be Tensor, not list"):
        tc.sqrt([1.0])
    with pytest.raises(RuntimeError, match="Negation.*bool"):
        tc.neg(tc.tensor([True]))
    with pytest.raises(RuntimeError):
        torch.neg(torch.tensor([True]))


@pytest.mark.parametrize("name", ["relu", "softmax", "log_softmax"])
def test_relu_and_softmax_as_functions_and_methods(name, kernel_mode):
    x = RNG.standard_normal((3, 4))
    if name == "relu":
        _compare(tc.relu, torch.relu, [x])
        _compare(lambda t: t.relu(), lambda t: t.relu(), [x])
        return
    for dim in (0, 1, -1):
        _compare(lambda t, d=dim: getattr(tc, name)(t, d),
                 lambda t, d=dim: getattr(torch, name)(t, d), [x])
        _compare(lambda t, d=dim: getattr(t, name)(d), lambda t, d=dim: getattr(t, name)(d), [x])
    with pytest.raises(TypeError, match="dim"):
        getattr(tc, name)(tc.tensor(x))


def test_relu_inplace_and_nan(kernel_mode):
    x = np.array([-1.0, 0.0, 2.0, np.nan])
    a, b = tc.tensor(x), torch.tensor(x)
    a.relu_(), b.relu_()
    np.testing.assert_array_equal(_np(a), b.numpy())


# --------------------------------------------------------------------------- binary

BINARY = {
    "add": (lambda m, a, b: m.add(a, b), None),
    "add_alpha": (lambda m, a, b: m.add(a, b, alpha=2.5), None),
    "sub_alpha": (lambda m, a, b: m.sub(a, b, alpha=-0.5), None),
    "mul": (lambda m, a, b: m.mul(a, b), None),
    "div": (lambda m, a, b: m.div(a, b), "nonzero"),
    "pow": (lambda m, a, b: m.pow(a, b), "positive"),
    "atan2": (lambda m, a, b: m.atan2(a, b), "nonzero"),
    "maximum": (lambda m, a, b: m.maximum(a, b), None),
    "remainder": (lambda m, a, b: m.remainder(a, b), "nonzero"),
    "fmod": (lambda m, a, b: m.fmod(a, b), "nonzero"),
    "minimum": (lambda m, a, b: m.minimum(a, b), None),
    "matmul": (lambda m, a, b: m.matmul(a, b.transpose(0, 1) if b.ndim == 2 else b), "matrix"),
}


def _pair(kind):
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((1, 4))
    if kind == "nonzero":
        b = np.where(np.abs(b) < 0.3, 0.7, b)
    if kind == "positive":
        a = np.abs(a) + 0.2
    if kind == "matrix":
        b = RNG.standard_normal((5, 4))
    return a, b


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("form", ["function", "method"])
def test_binary_ops_match_pytorch(name, form):
    fn, kind = BINARY[name]
    a, b = _pair(kind)
    if form == "function":
        _compare(lambda x, y: fn(tc, x, y), lambda x, y: fn(torch, x, y), [a, b])
    else:
        class Bound:            # fn(m, a, b) with m.op(a, b) -> a.op(b)
            def __init__(self, first):
                self.first = first

            def __getattr__(self, op):
                return lambda a, b, **kw: getattr(a, op)(b, **kw)
        _compare(lambda x, y: fn(Bound(x), x, y), lambda x, y: fn(Bound(x), x, y), [a, b])


@pytest.mark.parametrize("mode", [None, "trunc", "floor"])
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_div_rounding_mode_matches_pytorch(mode, dtype):
    a = np.array([[-7, -6, -1, 0, 1, 6, 7]], dtype=dtype)
    b = np.array([[2], [-3]], dtype=dtype)
    if dtype == np.float64:
        a = a + 0.1           # off the steps, where the zero gradient is the true one
    _compare(lambda x, y: tc.div(x, y, rounding_mode=mode),
             lambda x, y: torch.div(x, y, rounding_mode=mode), [a, b])
    _compare(lambda x, y: x.div(y, rounding_mode=mode),
             lambda x, y: x.div(y, rounding_mode=mode), [a, b])
    a2, t2 = tc.tensor(a), torch.tensor(a)
    if mode is not None or dtype == np.float64:
        a2.div_(tc.tensor(b[:1]), rounding_mode=mode)
        t2.div_(torch.tensor(b[:1]), rounding_mode=mode)
        np.testing.assert_array_equal(_np(a2), t2.numpy())


def test_div_rounding_mode_errors_and_floor_divide():
    with pytest.raises(RuntimeError, match="rounding_mode"):
        tc.div(tc.ones(2), 2, rounding_mode="round")
    x = np.array([-3.5, 3.5])
    np.testing.assert_array_equal(_np(tc.floor_divide(tc.tensor(x), 2)),
                                  torch.floor_divide(torch.tensor(x), 2).numpy())


def test_scalar_operands_and_alpha_on_integers():
    x = np.array([1.0, -2.0, 3.0])
    _compare(lambda t: tc.add(t, 2, alpha=3), lambda t: torch.add(t, 2, alpha=3), [x])
    _compare(lambda t: tc.sub(1.5, t) if False else tc.mul(t, 0.5),
             lambda t: torch.mul(t, 0.5), [x])
    with pytest.raises(RuntimeError, match="alpha"):
        tc.add(tc.tensor([1]), tc.tensor([2]), alpha=0.5)
    with pytest.raises(RuntimeError, match="alpha"):
        torch.add(torch.tensor([1]), torch.tensor([2]), alpha=0.5)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_as_functions_methods_and_inplace(op):
    a = RNG.integers(0, 3, (3, 4)).astype(np.float64)
    b = RNG.integers(0, 3, (4,)).astype(np.float64)
    for other in (b, 1.0):
        tb = tc.tensor(other) if isinstance(other, np.ndarray) else other
        wb = torch.tensor(other) if isinstance(other, np.ndarray) else other
        y, w = getattr(tc, op)(tc.tensor(a), tb), getattr(torch, op)(torch.tensor(a), wb)
        assert y.dtype == tc.bool
        np.testing.assert_array_equal(_np(y), w.numpy())
        np.testing.assert_array_equal(_np(getattr(tc.tensor(a), op)(tb)), w.numpy())
    x, t = tc.tensor(a), torch.tensor(a)
    getattr(x, op + "_")(1.0), getattr(t, op + "_")(1.0)
    assert x.dtype == tc.float64
    np.testing.assert_array_equal(_np(x), t.numpy())


@pytest.mark.parametrize("op", ["%", "//", "abs", "r%", "r//"])
def test_python_operators(op):
    a = np.array([[5.3, -7.1, 3.6, -0.4]])
    b = np.array([[2.0], [-1.5]])
    fn = {"%": lambda x, y: x % y, "//": lambda x, y: x // y, "abs": lambda x, y: abs(x) * y,
          "r%": lambda x, y: 2.5 % x, "r//": lambda x, y: 2.5 // x}[op]
    _compare(fn, fn, [a, b], grad=op in ("%", "abs"))   # PyTorch has no gradient for the others
    ia, ib = np.array([7, -7, 6]), np.array([2, 2, -4])
    _compare(fn, fn, [ia, ib], grad=False)


@pytest.mark.parametrize("name", ["logical_not", "logical_and", "logical_or", "logical_xor",
                                  "bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor"])
@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.float64])
def test_logical_and_bitwise_ops(name, dtype):
    a = np.array([0, 1, 3, -2]).astype(dtype)
    b = np.array([1, 1, 0, 6]).astype(dtype)
    args = (a,) if name.endswith("not") else (a, b)
    try:
        want = getattr(torch, name)(*map(torch.tensor, args))
    except (RuntimeError, TypeError, NotImplementedError) as e:
        with pytest.raises(type(e), match=name):
            getattr(tc, name)(*map(tc.tensor, args))
        return
    got = getattr(tc, name)(*map(tc.tensor, args))
    assert str(got.dtype) == _torch_dtype(want)
    np.testing.assert_array_equal(_np(got), want.numpy())
    np.testing.assert_array_equal(_np(getattr(tc.tensor(a), name)(*map(tc.tensor, args[1:]))),
                                  want.numpy())


def test_mask_operators():
    m, n = np.array([True, False, True]), np.array([True, True, False])
    for fn in (lambda x, y: ~x, lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y):
        np.testing.assert_array_equal(_np(fn(tc.tensor(m), tc.tensor(n))),
                                      fn(torch.tensor(m), torch.tensor(n)).numpy())
    x = tc.tensor(m)
    x &= tc.tensor(n)
    assert x.tolist() == [True, False, False]


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize("case", ["tensors", "broadcast", "scalar_other", "scalar_input", "scalars"])
def test_where_matches_pytorch(case):
    cond = RNG.random((3, 4)) > 0.5
    x, z = RNG.standard_normal((3, 4)), RNG.standard_normal((1, 4))

    def run(m, c, a, b):
        a, b = {"tensors": (a, b), "broadcast": (a[:1], b), "scalar_other": (a, 0.5),
                "scalar_input": (-1.5, b), "scalars": (1.0, 0.0)}[case]
        return m.where(c, a, b)
    ct, wt = tc.tensor(cond), torch.tensor(cond)
    _compare(lambda a, b: run(tc, ct, a, b), lambda a, b: run(torch, wt, a, b), [x, z])
    _compare(lambda a, b: run(tc, ct, a, b) if case == "scalars" else
             (run(tc, ct, a, b) if case != "tensors" else a.where(ct, b)),
             lambda a, b: run(torch, wt, a, b) if case == "scalars" else
             (run(torch, wt, a, b) if case != "tensors" else a.where(wt, b)), [x, z])


def test_where_with_integer_scalars_and_one_argument():
    cond = np.array([[True, False], [False, True]])
    y, w = tc.where(tc.tensor(cond), 1, 0), torch.where(torch.tensor(cond), 1, 0)
    assert str(y.dtype) == str(w.dtype).replace("torch.", "")
    np.testing.assert_array_equal(_np(y), w.numpy())
    got, want = tc.where(tc.tensor(cond)), torch.where(torch.tensor(cond))
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, t in zip(got, want):
        assert g.dtype == tc.int64
        np.testing.assert_array_equal(_np(g), t.numpy())
    np.testing.assert_array_equal(_np(tc.tensor(cond).nonzero()), torch.tensor(cond).nonzero())


def test_where_errors():
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        tc.where(tc.ones(2), tc.ones(2), tc.zeros(2))
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        torch.where(torch.ones(2), torch.ones(2), torch.zeros(2))
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        tc.where(tc.ones(2) > 0, tc.ones(3), tc.zeros(2))
    with pytest.raises(TypeError):
        tc.where(tc.ones(2) > 0, tc.ones(2))


@pytest.mark.parametrize("value", [0.5, -2, "tensor"])
@pytest.mark.parametrize("mask_shape", [(3, 4), (4,)])
def test_masked_fill_matches_pytorch(value, mask_shape):
    x = RNG.standard_normal((3, 4))
    mask = RNG.random(mask_shape) > 0.5
    v = np.array(1.25) if value == "tensor" else value
    mt, mw = tc.tensor(mask), torch.tensor(mask)
    if value == "tensor":
        _compare(lambda a, b: tc.masked_fill(a, mt, b), lambda a, b: torch.masked_fill(a, mw, b),
                 [x, v])
    else:
        _compare(lambda a: a.masked_fill(mt, v), lambda a: a.masked_fill(mw, v), [x])
    a, b = tc.tensor(x), torch.tensor(x)
    vt = tc.tensor(v) if value == "tensor" else v
    assert a.masked_fill_(mt, vt) is a
    b.masked_fill_(mw, torch.tensor(v) if value == "tensor" else v)
    np.testing.assert_array_equal(_np(a), b.numpy())


def test_masked_fill_inplace_records_backward_and_errors():
    x = np.arange(6.0).reshape(2, 3)
    mask = np.array([True, False, True])
    a = tc.tensor(x, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    ya, yb = a * 2, b * 2
    ya.masked_fill_(tc.tensor(mask), 0.0), yb.masked_fill_(torch.tensor(mask), 0.0)
    ya.sum().backward(), yb.sum().backward()
    np.testing.assert_array_equal(_np(a.grad), b.grad.numpy())
    with pytest.raises(RuntimeError, match="boolean masks"):
        tc.ones(3).masked_fill(tc.ones(3), 0)
    with pytest.raises(RuntimeError, match="0-dimensional"):
        tc.ones(3).masked_fill(tc.ones(3) > 0, tc.ones(2))
    with pytest.raises(RuntimeError, match="broadcastable"):
        tc.ones(3).masked_fill(tc.ones(2) > 0, 1.0)


@pytest.mark.parametrize("bounds", [(-0.5, 0.5), (None, 0.2), (-0.1, None), ("tensor", "tensor")])
def test_clamp_and_clip_functions(bounds):
    x = RNG.standard_normal((3, 4))
    x = np.where(np.abs(np.abs(x) - 0.5) < 0.05, 0.0, x)
    lo, hi = bounds
    if lo == "tensor":
        lo_a, hi_a = RNG.uniform(-1, -0.2, (4,)), RNG.uniform(0.2, 1, (4,))
        _compare(lambda a, l, h: tc.clamp(a, l, h), lambda a, l, h: torch.clamp(a, l, h),
                 [x, lo_a, hi_a], grad=True)
        return
    _compare(lambda a: tc.clamp(a, lo, hi), lambda a: torch.clamp(a, lo, hi), [x])
    _compare(lambda a: tc.clip(a, lo, hi), lambda a: torch.clip(a, lo, hi), [x])


def test_isclose_allclose_equal_and_classification():
    a = np.array([1.0, 1.0 + 1e-9, np.nan, np.inf, -np.inf, 2.0])
    b = np.array([1.0, 1.0, np.nan, np.inf, np.inf, 2.1])
    ta, tb, wa, wb = tc.tensor(a), tc.tensor(b), torch.tensor(a), torch.tensor(b)
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.1, "atol": 0.0}):
        np.testing.assert_array_equal(_np(tc.isclose(ta, tb, **kw)), torch.isclose(wa, wb, **kw))
        np.testing.assert_array_equal(_np(ta.isclose(tb, **kw)), torch.isclose(wa, wb, **kw))
        assert tc.allclose(ta[:2], tb[:2], **kw) == torch.allclose(wa[:2], wb[:2], **kw)
        assert ta.allclose(tb, **kw) == wa.allclose(wb, **kw)
    assert tc.equal(ta[:2], ta[:2].clone()) and not tc.equal(ta[:2], tb[:2])
    assert not tc.equal(tc.ones(2), tc.ones(3)) and not torch.equal(torch.ones(2), torch.ones(3))
    for name in ("isnan", "isinf", "isfinite"):
        np.testing.assert_array_equal(_np(getattr(tc, name)(ta)), getattr(torch, name)(wa))
        np.testing.assert_array_equal(_np(getattr(ta, name)()), getattr(torch, name)(wa))
    with pytest.raises(RuntimeError, match="did not match"):
        tc.isclose(tc.ones(2), tc.ones(2, dtype=tc.float64))
    with pytest.raises(RuntimeError, match="did not match"):
        torch.isclose(torch.ones(2), torch.ones(2, dtype=torch.float64))


# --------------------------------------------------------------------------- dtypes

DTYPES = ["float", "double", "half", "float16", "float32", "float64", "long", "int", "int64",
          "int32", "int16", "int8", "uint8", "bool", "short"]


@pytest.mark.parametrize("name", DTYPES)
def test_dtype_aliases_name_pytorchs_dtypes(name):
    assert tc.zeros(2, dtype=getattr(tc, name)).dtype == getattr(tc, name)
    assert tc.dtypes.dtype_name(getattr(tc, name)) == str(getattr(torch, name))


CASTS = ["float", "double", "half", "long", "int", "short", "char", "byte", "bool"]


@pytest.mark.parametrize("method", CASTS)
def test_cast_methods_and_type_names(method):
    x = np.array([[0.0, 1.5, -2.0]])
    y, w = getattr(tc.tensor(x), method)(), getattr(torch.tensor(x), method)()
    assert str(y.dtype) == _torch_dtype(w)
    np.testing.assert_array_equal(_np(y), w.numpy())
    assert y.type() == w.type()
    assert tc.tensor(x).type(w.type()).dtype == y.dtype
    assert tc.tensor(x).type(getattr(tc, "bool" if method == "bool" else {
        "char": "int8", "byte": "uint8"}.get(method, method))).dtype == y.dtype
    assert y.is_floating_point() == w.is_floating_point() == tc.is_floating_point(y)


def test_cast_is_differentiable_and_type_errors():
    x = tc.tensor([1.0, 2.0], dtype=tc.float64, requires_grad=True)
    y = x.float()
    assert y.dtype == tc.float32 and y.grad_fn is not None
    (y.half().double() * 3).sum().backward()
    assert x.grad.dtype == tc.float64 and x.grad.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="invalid type"):
        tc.ones(2).type("torch.NoSuchTensor")
    with pytest.raises(TypeError, match="is_floating_point"):
        tc.is_floating_point([1.0])
    assert tc.ones(2).type(tc.LongTensor).dtype == tc.long


def test_default_dtype():
    assert tc.get_default_dtype() == tc.float32 and torch.get_default_dtype() == torch.float32
    try:
        tc.set_default_dtype(tc.float64)
        assert tc.tensor([1.0]).dtype == tc.zeros(2).dtype == tc.Tensor(2).dtype == tc.float64
        assert tc.tensor([1]).dtype == tc.int64
    finally:
        tc.set_default_dtype(tc.float32)
    assert tc.tensor([1.0]).dtype == tc.float32
    with pytest.raises(TypeError, match="floating-point"):
        tc.set_default_dtype(tc.int64)
    with pytest.raises(TypeError):
        torch.set_default_dtype(torch.int64)


# --------------------------------------------------------------------------- factories


def test_randint_signatures_range_and_dtype():
    tc.manual_seed(0)
    a = tc.randint(5, (1000,))
    b = tc.randint(-3, 3, size=(10, 20))
    c = tc.randint(2, 4, (3,), dtype=tc.float32)
    assert a.dtype == b.dtype == tc.int64 == np.dtype(str(torch.randint(5, (2,)).dtype)[6:])
    assert a.shape == (1000,) and b.shape == (10, 20) and c.dtype == tc.float32
    assert set(a.tolist()) == set(range(5)) and -3 <= b.min().item() and b.max().item() <= 2
    like = tc.randint_like(tc.zeros(2, 3), 10)
    assert like.shape == (2, 3) and like.dtype == tc.float32
    assert tc.randint_like(tc.zeros(4, dtype=tc.int32), 1, 2).tolist() == [1, 1, 1, 1]
    with pytest.raises(RuntimeError, match="from.*less than.*to"):
        tc.randint(3, 3, (2,))
    with pytest.raises(RuntimeError):
        torch.randint(3, 3, (2,))
    with pytest.raises(TypeError, match="size"):
        tc.randint(3, 4)
    with pytest.raises(TypeError):
        torch.randint(3, 4)


@pytest.mark.parametrize("call", [
    lambda m: m.linspace(0, 1, 5), lambda m: m.linspace(-2, 3, 1), lambda m: m.linspace(1, 2, 0),
    lambda m: m.linspace(0, 10, 7, dtype=m.float64), lambda m: m.logspace(0, 2, 3),
    lambda m: m.logspace(-1, 1, 4, base=2), lambda m: m.eye(3), lambda m: m.eye(2, 4),
    lambda m: m.eye(3, dtype=m.int64), lambda m: m.full((2, 3), 7), lambda m: m.full((2,), 2.5),
    lambda m: m.full((2,), True), lambda m: m.full_like(m.ones(2, dtype=m.int32), 3),
    lambda m: m.zeros_like(m.ones(2, 3), dtype=m.float64), lambda m: m.ones_like(m.ones(3)),
    lambda m: m.empty(2, 3).shape and m.zeros(2, 3), lambda m: m.numel(m.ones(2, 5)),
    lambda m: m.as_tensor([1, 2]), lambda m: m.as_tensor([1.0], dtype=m.float64),
])
def test_deterministic_factories_match_pytorch(call):
    got, want = call(tc), call(torch)
    if isinstance(want, int):
        assert got == want
        return
    assert got.shape == tuple(want.shape) and str(got.dtype) == _torch_dtype(want)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["empty_like", "rand_like", "randn_like"])
def test_like_factories_shape_dtype_device_requires_grad(name):
    src = tc.zeros(3, 4, dtype=tc.float64)
    y = getattr(tc, name)(src)
    assert y.shape == (3, 4) and y.dtype == tc.float64 and not y.requires_grad
    y = getattr(tc, name)(src, dtype=tc.float32, requires_grad=True)
    assert y.dtype == tc.float32 and y.requires_grad and y.is_leaf
    assert getattr(tc, name)(src, device="cpu").device == tc.device("cpu")


def test_random_factories_moments():
    tc.manual_seed(1)
    n = tc.randn_like(tc.zeros(20000))
    assert abs(n.mean().item()) < 0.05 and abs(n.std().item() - 1) < 0.05
    u = tc.rand_like(tc.zeros(20000, dtype=tc.float64))
    assert 0 <= u.min().item() and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.02
    m = tc.normal(3.0, 0.5, size=(20000,))
    assert m.dtype == tc.float32 and abs(m.mean().item() - 3) < 0.02
    mean = tc.tensor([0.0, 10.0, -10.0], dtype=tc.float64)
    draws = tc.stack([tc.normal(mean, 0.1) for _ in range(300)]) if hasattr(tc, "stack") else \
        tc.tensor(np.stack([tc.normal(mean, 0.1).numpy() for _ in range(300)]))
    assert draws.dtype == tc.float64
    np.testing.assert_allclose(draws.numpy().mean(0), [0, 10, -10], atol=0.05)
    s = tc.normal(tc.zeros(2, 1), tc.tensor([1.0, 2.0, 3.0]))
    assert s.shape == tuple(torch.normal(torch.zeros(2, 1), torch.tensor([1.0, 2.0, 3.0])).shape)
    with pytest.raises(RuntimeError, match="std >= 0"):
        tc.normal(0.0, -1.0, size=(2,))
    with pytest.raises(RuntimeError, match="std >= 0"):
        tc.normal(tc.zeros(2), tc.tensor([1.0, -1.0]))


def test_bernoulli_randperm_multinomial():
    tc.manual_seed(2)
    p = tc.tensor([0.0, 1.0, 0.3])
    draws = np.stack([tc.bernoulli(p).numpy() for _ in range(2000)])
    assert draws.dtype == np.float32 and set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(0), [0, 1, 0.3], atol=0.04)
    assert tc.bernoulli(tc.zeros(5), p=1.0).tolist() == [1.0] * 5
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        tc.bernoulli(tc.tensor([1.5]))
    perm = tc.randperm(10)
    assert perm.dtype == tc.int64 and sorted(perm.tolist()) == list(range(10))
    w = tc.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    m = tc.multinomial(w, 1)
    assert m.shape == (2, 1) and m.dtype == tc.int64 and m[0, 0].item() == 1
    assert sorted(tc.multinomial(tc.ones(4), 4).tolist()) == [0, 1, 2, 3]
    assert tc.multinomial(w, 5, replacement=True).shape == (2, 5)
    with pytest.raises(RuntimeError, match="without replacement"):
        tc.multinomial(tc.ones(2), 3)
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.ones(2), 3)


def test_as_tensor_shares_memory_and_is_tensor():
    a = np.arange(3.0)
    t = tc.as_tensor(a)
    a[0] = 7
    assert t[0].item() == 7 and torch.as_tensor(a)[0].item() == 7
    x = tc.ones(2)
    assert tc.as_tensor(x) is x and tc.as_tensor(x, dtype=tc.float64).dtype == tc.float64
    assert tc.is_tensor(x) and not tc.is_tensor(a) and not torch.is_tensor(a)
    assert tc.Size((2, 3)).numel() == torch.Size((2, 3)).numel() == 6
    assert repr(tc.Size((2, 3))) == repr(torch.Size((2, 3)))


# --------------------------------------------------------------------------- legacy constructor


@pytest.mark.parametrize("args", [([1, 2],), (2, 3), (), ([[1.5, 2], [3, 4]],), (0,), ([],),
                                  ((4, 5),)])
def test_legacy_constructor_matches_pytorch(args):
    got, want = tc.Tensor(*args), torch.Tensor(*args)
    assert got.shape == tuple(want.shape) and str(got.dtype) == _torch_dtype(want)
    if isinstance(args[0] if args else None, list):
        np.testing.assert_array_equal(_np(got), want.numpy())
    assert not got.requires_grad and got.is_leaf


def test_legacy_constructor_keeps_wrapping_raw_arrays():
    a = np.arange(4, dtype=np.int32)
    t = tc.Tensor(a)          # tinyconv's own construction: same memory, same dtype
    assert t.array is a and t.dtype == tc.int32
    assert tc.Tensor(np.float64(2.0)).shape == ()
    with pytest.raises(TypeError, match="must be a sequence"):
        tc.Tensor(2.5)
    with pytest.raises(TypeError):
        torch.Tensor(2.5)


@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor",
                                  "ByteTensor", "BoolTensor", "HalfTensor", "ShortTensor",
                                  "CharTensor"])
def test_legacy_typed_constructors(name):
    for args in ([[1, 0, 3]], (2, 3)):
        got, want = getattr(tc, name)(*args), getattr(torch, name)(*args)
        assert got.shape == tuple(want.shape) and str(got.dtype) == _torch_dtype(want)
        assert isinstance(got, getattr(tc, name)) and isinstance(got, tc.Tensor)
        assert got.type() == want.type()
    np.testing.assert_array_equal(_np(getattr(tc, name)([1, 0, 3])),
                                  getattr(torch, name)([1, 0, 3]).numpy())
    assert not isinstance(tc.zeros(1, dtype=tc.float64), tc.FloatTensor)


def test_legacy_constructor_in_a_module_parameter():
    w = tc.nn.Parameter(tc.Tensor(3, 4))          # the classic custom-layer idiom
    assert w.shape == (3, 4) and w.dtype == tc.float32 and w.requires_grad
    w.data.uniform_(-1, 1)
    assert -1 <= w.min().item() and w.max().item() <= 1


def test_long_tensor_keeps_large_integers():
    big = 2**53 + 1
    assert tc.LongTensor([big]).item() == torch.LongTensor([big]).item() == big


# --------------------------------------------------------------------------- torch.backends


def test_backends_flags():
    assert tc.backends.mps.is_available() is False and tc.backends.mps.is_built() is False
    assert tc.backends.cudnn.enabled is True and tc.backends.cudnn.benchmark is False
    assert tc.backends.cudnn.deterministic is False
    assert tc.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32 is False
    tc.backends.cudnn.benchmark = True
    try:
        assert tc.backends.cudnn.benchmark is True
    finally:
        tc.backends.cudnn.benchmark = False
    assert isinstance(tc.cuda.is_available(), bool)
    assert tc.device("cuda").type == "cuda" and tc.device("cpu").type == "cpu"
    device = tc.device("cuda" if tc.cuda.is_available() else "cpu")
    assert tc.ones(2).to(device).device.type == device.type


@pytest.mark.parametrize("name", UNARY)
def test_unary_saves_what_pytorch_saves(name):
    """Writing in place into the input or the output after the op: an error exactly when
    PyTorch's node saved that tensor (each row saves only what its derivative reads)."""
    x = _away_from_kinks(name, (3,))
    for target in ("input", "output"):
        outcomes = []
        for lib in (tc, torch):
            leaf = lib.tensor(x, requires_grad=True)
            a = leaf * 1
            y = getattr(lib, name)(a)
            with lib.no_grad():
                (a if target == "input" else y).mul_(1)
            try:
                y.sum().backward()
                outcomes.append("ok")
            except RuntimeError as e:
                assert "modified by an inplace operation" in str(e)
                outcomes.append("refused")
        assert outcomes[0] == outcomes[1], (target, outcomes)


# --------------------------------------------------------------------------- out=, size=, t_


OUT_CALLS = {
    "mul": lambda m, a, b, out: m.mul(a, b, out=out),
    "add_alpha": lambda m, a, b, out: m.add(a, b, alpha=2, out=out),
    "div": lambda m, a, b, out: m.div(a, b, out=out),
    "matmul": lambda m, a, b, out: m.matmul(a, b.T, out=out),
    "mm": lambda m, a, b, out: m.mm(a, b.T, out=out),
    "sqrt": lambda m, a, b, out: m.sqrt(a, out=out),
    "clamp": lambda m, a, b, out: m.clamp(a, 0.2, 0.7, out=out),
    "cat": lambda m, a, b, out: m.cat([a, b], out=out),
    "stack": lambda m, a, b, out: m.stack([a, b], 1, out=out),
}


@pytest.mark.parametrize("name", sorted(OUT_CALLS))
@pytest.mark.parametrize("out_shape", [(3, 3), (0,)], ids=["same-or-resized", "empty"])
def test_out_keyword_writes_into_out_as_pytorch(name, out_shape):
    """``out=`` returns ``out`` itself, holding the result (resized if needed), version bumped."""
    a, b = RNG.random((3, 3)) + 0.1, RNG.random((3, 3)) + 0.1
    results = []
    for m in (tc, torch):
        shape = OUT_CALLS[name](m, m.tensor(a), m.tensor(b), None).shape
        out = m.zeros(out_shape, dtype=m.float64)
        before = out._version
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = OUT_CALLS[name](m, m.tensor(a), m.tensor(b), out)
        resized_nonempty = tuple(shape) != out_shape and np.prod(out_shape) > 0
        assert any("resized" in str(w.message) for w in caught) == resized_nonempty
        assert r is out and out._version > before
        results.append(_np(out))
    assert results[0].shape == results[1].shape
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_out_keyword_refuses_what_pytorch_refuses():
    for m in (tc, torch):
        with pytest.raises(RuntimeError, match="out=... arguments don't support automatic"):
            m.sin(m.ones(2, requires_grad=True), out=m.zeros(2))
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            m.mul(m.ones(2), 0.5, out=m.zeros(2, dtype=m.long))
    with pytest.raises(TypeError, match="argument 'out' must be Tensor"):
        tc.mul(tc.ones(2), 2.0, out=np.zeros(2))


@pytest.mark.parametrize("name", ["zeros", "ones", "rand", "randn", "empty"])
def test_factories_take_size_as_a_keyword(name):
    for size in [(2, 3), [4], ()]:
        assert getattr(tc, name)(size=size).shape == tuple(getattr(torch, name)(size=size).shape)
    with pytest.raises(TypeError):
        getattr(tc, name)(2, size=(2,))


@pytest.mark.parametrize("ops", [("t_",), ("unsqueeze_", 0), ("transpose_", 0, 1),
                                 ("t_", "unsqueeze_", 2, "squeeze_")], ids=str)
def test_in_place_shape_ops_as_pytorch(ops):
    """``t_``/``transpose_``/``squeeze_``/``unsqueeze_`` restride the tensor itself, through autograd."""
    a = RNG.standard_normal((2, 3))
    grads, values = [], []
    for m in (tc, torch):
        x = m.tensor(a, requires_grad=True)
        y = x * 2
        version, i = y._version, 0
        while i < len(ops):
            name, args = ops[i], []
            i += 1
            while i < len(ops) and isinstance(ops[i], int):
                args.append(ops[i])
                i += 1
            assert getattr(y, name)(*args) is y
        assert y._version > version
        w = m.arange(float(y.numel()), dtype=m.float64).reshape(tuple(y.shape))  # a weighted sum:
        (y * w).sum().backward()                                               # order shows
        values.append(_np(y))
        grads.append(_np(x.grad))
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            m.ones(2, 3, requires_grad=True).t_()
    np.testing.assert_allclose(values[0], values[1])
    np.testing.assert_allclose(grads[0], grads[1])
