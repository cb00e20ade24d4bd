"""Edge semantics of the fast kernels and their references, each against PyTorch (issue 11, part 5).

0-d and empty tensors through ReLU and dropout, NaN and inf through ReLU, dropout's
``p`` and ``inplace``, pow's gradient at 0**0, 0**-1 and negative bases, softmax over an
empty dim, and the dim errors of transpose, permute and softmax.  Every test runs on both
kernel paths (the NumPy reference and the Numba kernels), and the last ones check that
the two paths give bit-identical results.  The CUDA sources get the same cases in
tests/test_cuda_sources.py.
"""
import numpy as np
import pytest

import tinyconv as tc
import tinyconv.nn as nn
import tinyconv.nn.functional as F

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
pytestmark = pytest.mark.usefixtures("kernel_mode")

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -1.5, 1e-300, -1e-300]


def both(values, dtype=np.float64, requires_grad=True):
    """The same values as a tinyconv and a torch tensor."""
    a = np.asarray(values, dtype=dtype)
    return tc.tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def assert_same(ours, theirs, rtol=0.0):
    """Same shape, dtype and values, NaN where PyTorch has NaN and the sign of every inf and zero.

    ``rtol`` allows for last-bit differences between NumPy's and PyTorch's ``pow``.
    """
    ours = ours.array if isinstance(ours, tc.Tensor) else np.asarray(ours)
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=0)
    numbers = ~np.isnan(theirs)                               # a NaN's sign bit means nothing
    np.testing.assert_array_equal(np.signbit(ours[numbers]), np.signbit(theirs[numbers]))


def forward_backward(fn_ours, fn_theirs, values, gy=None, dtype=np.float64, rtol=0.0):
    x, xt = both(values, dtype)
    y, yt = fn_ours(x), fn_theirs(xt)
    g = np.ones(yt.shape, dtype) if gy is None else np.asarray(gy, dtype)
    y.backward(tc.tensor(g))
    yt.backward(torch.tensor(g))
    assert_same(y, yt, rtol)
    assert_same(x.grad, xt.grad, rtol)
    return y, x


# --------------------------------------------------------------------------- 0-d and empty


@pytest.mark.parametrize("value", [2.5, -2.5, 0.0, np.nan])
def test_relu_keeps_0d_shape(value):
    y, x = forward_backward(F.relu, torch.nn.functional.relu, value)
    assert y.shape == () and x.grad.shape == ()
    assert nn.ReLU()(tc.tensor(value)).shape == ()


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("training", [True, False])
def test_dropout_keeps_0d_shape(p, training):
    x = tc.tensor(3.0, requires_grad=True)
    y = F.dropout(x, p, training)
    y.backward()
    assert y.shape == () and x.grad.shape == ()
    if not training:
        assert y is x
    else:
        assert float(y) in ((0.0, 3.0 / (1 - p)) if p < 1 else (0.0,))
    assert float(x.grad) * 3.0 == pytest.approx(float(y))          # dx = y / x: the same mask
    assert F.dropout(tc.tensor(3.0), p, training).shape == torch.nn.functional.dropout(
        torch.tensor(3.0), p, training).shape


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_on_empty_tensors(shape, dtype):
    forward_backward(F.relu, torch.nn.functional.relu, np.zeros(shape), dtype=dtype)


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_dropout_on_empty_tensors(shape, p):
    forward_backward(lambda x: F.dropout(x, p), lambda x: torch.nn.functional.dropout(x, p),
                     np.zeros(shape))


# --------------------------------------------------------------------------- NaN and inf through ReLU


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_nan_inf_and_signed_zeros_as_pytorch(dtype):
    """y = max(x, 0) keeps NaN; the gradient is 0 where y <= 0 and passes at NaN, inf and tiny x."""
    values = np.array(SPECIALS).astype(dtype)
    gy = np.arange(1, len(values) + 1)
    forward_backward(F.relu, torch.nn.functional.relu, values, gy, dtype)


def test_relu_gradient_of_nan_and_inf_upstream():
    """A NaN or inf gradient arriving where y <= 0 is zeroed (a select, not a multiply by 0)."""
    gy = [np.nan, np.inf, -np.inf, np.nan, 1.0]
    forward_backward(F.relu, torch.nn.functional.relu, [-1.0, 0.0, -2.0, 3.0, np.nan], gy)


# --------------------------------------------------------------------------- inplace


def test_relu_inplace_as_pytorch():
    for lib in (tc, torch):
        a = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        b = a * 2
        c = lib.nn.functional.relu(b, inplace=True)
        assert c is b and b._version == 1
        c.backward(lib.tensor([1.0, 1.0, 1.0], dtype=lib.float64))
        assert list(a.grad.tolist()) == [2.0, 0.0, 2.0] and b.tolist() == [2.0, 0.0, 1.0]
        b = lib.tensor([1.0, -2.0])
        assert lib.nn.functional.relu_(b) is b and b.tolist() == [1.0, 0.0]
        b = lib.tensor([-1.0, 2.0])
        assert lib.nn.ReLU(inplace=True)(b) is b and b.tolist() == [0.0, 2.0] and b._version == 1
        assert repr(lib.nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
        assert repr(lib.nn.ReLU()) == "ReLU()"


def test_relu_inplace_on_a_leaf_that_requires_grad_raises_as_pytorch():
    for lib in (torch, tc):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an "
                                               "in-place operation"):
            lib.nn.functional.relu(lib.ones(3, requires_grad=True), inplace=True)


@pytest.mark.parametrize("p,training,writes", [(0.5, True, True), (1.0, True, True), (0.0, True, False),
                                               (0.5, False, False)])
def test_dropout_inplace_as_pytorch(p, training, writes):
    for lib in (tc, torch):
        b = lib.tensor([1.0, -1.0, 2.0, 4.0])
        c = lib.nn.functional.dropout(b, p, training, True)
        assert c is b and b._version == int(writes)
        if p == 1.0:
            assert b.tolist() == [0.0, 0.0, 0.0, 0.0] and np.signbit(b.numpy()[1])    # -1 * 0 = -0
        elif not writes:
            assert b.tolist() == [1.0, -1.0, 2.0, 4.0]
        else:
            assert all(v in (0.0, 2 * w) for v, w in zip(b.tolist(), [1.0, -1.0, 2.0, 4.0]))
        m = lib.nn.Dropout(p, inplace=True)
        m.train(training)
        b = lib.tensor([1.0, -1.0])
        assert m(b) is b and b._version == int(writes)
        assert repr(m) == f"Dropout(p={p}, inplace=True)"


def test_dropout_inplace_keeps_the_graph():
    for lib in (tc, torch):
        a = lib.tensor([1.0, 2.0, 3.0, 4.0], dtype=lib.float64, requires_grad=True)
        b = a * 1
        lib.nn.functional.dropout(b, 0.5, True, True).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), b.detach().numpy() / a.detach().numpy())


# --------------------------------------------------------------------------- dropout p


def test_dropout_p0_returns_the_input_itself():
    for lib in (tc, torch):
        x = lib.ones(3, requires_grad=True)
        assert lib.nn.functional.dropout(x, 0.0) is x
        assert lib.nn.functional.dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_p1_is_x_times_0_as_pytorch(dtype):
    """y = x * 0 (NaN and inf give NaN, -1 gives -0), dx = dy * 0, no mask drawn."""
    values = np.array(SPECIALS).astype(dtype)
    forward_backward(lambda x: F.dropout(x, 1.0), lambda x: torch.nn.functional.dropout(x, 1.0),
                     values, np.arange(len(values)) - 3.0, dtype)
    state = tc.random.get_rng_state() if hasattr(tc.random, "get_rng_state") else None
    F.dropout(tc.ones(5), 1.0)
    if state is not None:
        np.testing.assert_array_equal(tc.random.get_rng_state(), state)


@pytest.mark.parametrize("p", [-0.1, 1.5, 2, -1])
def test_dropout_p_outside_unit_interval_raises_pytorchs_value_error(p):
    msg = f"dropout probability has to be between 0 and 1, but got {p}"
    for lib in (torch, tc):
        with pytest.raises(ValueError, match=msg):
            lib.nn.functional.dropout(lib.ones(3), p)
        with pytest.raises(ValueError, match=msg):
            lib.nn.Dropout(p)
        with pytest.raises(ValueError, match=msg):
            lib.nn.functional.dropout(lib.ones(3), p, training=False)     # checked before training


# --------------------------------------------------------------------------- pow

POW_BASES = [0.0, -0.0, -2.0, 2.0, 0.5, -0.5, np.inf, -np.inf, np.nan]
POW_EXPONENTS = [0.0, -1.0, -2.0, 0.5, -0.5, 1.0, 2.0, 3.0, 1.5, np.inf, -np.inf]
POW_RTOL = 4e-16          # NumPy's and PyTorch's pow may differ in the last bit


def _pow_grads(lib, base, exponent):
    b = lib.tensor(base, dtype=lib.float64, requires_grad=True)
    e = lib.tensor(exponent, dtype=lib.float64, requires_grad=True)
    y = b ** e
    y.backward(lib.ones_like(y))
    return y, b.grad, e.grad


@pytest.mark.filterwarnings("error")          # no RuntimeWarning from NumPy either
def test_pow_values_and_gradients_with_tensor_exponents():
    """Every (base, exponent) pair of the table: y, dy/dbase, dy/dexponent as PyTorch, NaN and inf too."""
    base, exponent = np.meshgrid(POW_BASES, POW_EXPONENTS, indexing="ij")
    for ours, theirs in zip(_pow_grads(tc, base, exponent), _pow_grads(torch, base, exponent)):
        assert_same(ours, theirs, POW_RTOL)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("exponent", POW_EXPONENTS + [2, 3, -1, 0])
def test_pow_with_a_scalar_exponent(exponent):
    def fwd(x):
        return x ** exponent
    forward_backward(fwd, fwd, POW_BASES, rtol=POW_RTOL)
    forward_backward(lambda x: x.pow(exponent), lambda x: x.pow(exponent), POW_BASES, rtol=POW_RTOL)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("base", [0.0, 2.0, -2.0, 0.5, 1.0])
def test_pow_with_a_scalar_base(base):
    def fwd(x):
        return base ** x
    forward_backward(fwd, fwd, POW_EXPONENTS, rtol=POW_RTOL)


@pytest.mark.filterwarnings("error")
def test_pow_broadcast_gradients_sum_nan_and_inf_as_pytorch():
    base = np.array([[0.0], [-2.0], [3.0]])
    exponent = np.array([[0.0, -1.0, 2.0, 0.5]])
    for ours, theirs in zip(_pow_grads(tc, base, exponent), _pow_grads(torch, base, exponent)):
        assert_same(ours, theirs, POW_RTOL)


@pytest.mark.parametrize("case", ["0**0", "0**-1", "(-2)**0.5", "(-2)**2"])
def test_pow_named_cases(case):
    """The issue's cases spelled out: 0**0 gives grads (0, 0); 0**-1 gives (-inf, -inf);
    (-2)**0.5 gives NaN for both; (-2)**2 gives -4 and NaN (log of a negative base)."""
    base, exponent, expected = {"0**0": (0.0, 0.0, (1.0, 0.0, 0.0)),
                                "0**-1": (0.0, -1.0, (np.inf, -np.inf, -np.inf)),
                                "(-2)**0.5": (-2.0, 0.5, (np.nan, np.nan, np.nan)),
                                "(-2)**2": (-2.0, 2.0, (4.0, -4.0, np.nan))}[case]
    for lib in (tc, torch):
        got = [float(t.detach()) for t in _pow_grads(lib, base, exponent)]
        np.testing.assert_array_equal(got, expected)


def test_integer_pow_with_a_negative_exponent_raises_pytorchs_error():
    for lib in (torch, tc):
        with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
            lib.tensor([2, 3]) ** -1
    assert (tc.tensor([2, 3]) ** 2).tolist() == [4, 9]


# --------------------------------------------------------------------------- softmax over an empty dim


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", [((2, 0), 1), ((2, 0), 0), ((0, 3), 1), ((0, 3), -2), ((0,), 0),
                                       ((2, 0, 3), 1), ((2, 0, 3), 2)])
def test_softmax_over_an_empty_dim(name, shape, dim):
    forward_backward(lambda x: getattr(F, name)(x, dim), lambda x: getattr(torch.nn.functional, name)(x, dim),
                     np.zeros(shape))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_0d(name, dim):
    forward_backward(lambda x: getattr(F, name)(x, dim), lambda x: getattr(torch.nn.functional, name)(x, dim),
                     1.5)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", [((2, 3), 5), ((2, 3), -3), ((2, 0), 2), ((), 1), ((), -2)])
def test_softmax_dim_out_of_range_raises_pytorchs_index_error(name, shape, dim):
    with pytest.raises(IndexError) as theirs:
        getattr(torch.nn.functional, name)(torch.ones(shape), dim)
    msg = str(theirs.value)
    assert msg.startswith("Dimension out of range")
    with pytest.raises(IndexError, match=f"{name}: " + msg.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        getattr(F, name)(tc.ones(*shape), dim)
    with pytest.raises(IndexError, match="Dimension out of range"):
        getattr(nn, {"softmax": "Softmax", "log_softmax": "LogSoftmax"}[name])(dim)(tc.ones(*shape))


# --------------------------------------------------------------------------- transpose, permute


@pytest.mark.parametrize("shape,call", [((2, 3), ("transpose", 0, 5)), ((2, 3), ("transpose", -3, 0)),
                                        ((), ("transpose", 0, 1)), ((2, 3), ("permute", 0, 5)),
                                        ((2, 3, 4), ("permute", 0, 1, -4)), ((), ("transpose", -2, 0))])
def test_transpose_and_permute_out_of_range_raise_pytorchs_index_error(shape, call):
    name, *dims = call
    with pytest.raises(IndexError) as theirs:
        getattr(torch.ones(shape), name)(*dims)
    msg = str(theirs.value)
    assert msg.startswith("Dimension out of range")
    with pytest.raises(IndexError) as ours:
        getattr(tc.ones(*shape), name)(*dims)
    assert msg in str(ours.value)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x = tc.ones(*shape)
        tc.transpose(x, *dims) if name == "transpose" else tc.permute(x, dims)


@pytest.mark.parametrize("shape,dims", [((2, 3), (0, -1)), ((2, 3), (-2, 1)), ((), (0, -1)), ((), (0, 0)),
                                        ((2, 0, 4), (2, 0))])
def test_transpose_in_range_as_pytorch(shape, dims):
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    forward_backward(lambda t: t.transpose(*dims), lambda t: t.transpose(*dims), x,
                     np.ones(np.swapaxes(x, *[d % max(x.ndim, 1) for d in dims]).shape) if x.ndim else 1.0)


# --------------------------------------------------------------------------- to() with positional flags


def test_to_with_positional_flags_as_pytorch():
    for lib in (tc, torch):
        x = lib.tensor([1.0, 2.0])
        assert x.to(lib.float32, False, True) is not x and x.to(lib.float32, False, False) is x
        assert x.to("cpu", lib.float32, False, True) is not x
        assert x.to(lib.float64, True).dtype == lib.float64
        assert x.to(x, False, True) is not x and x.to(x) is x
    with pytest.raises(TypeError, match=r"to\(\)"):
        tc.ones(1).to("cpu", tc.float64, True, True, True)
    with pytest.raises(TypeError, match=r"to\(\)"):
        tc.ones(1).to(object())


# --------------------------------------------------------------------------- fast and reference paths agree


def _run_in(mode, fn):
    with tc.use_kernels(mode):
        return fn()


EDGE_INPUTS = [np.array(2.5), np.array(np.nan), np.zeros((0, 3)), np.array(SPECIALS),
               np.array(SPECIALS, dtype=np.float32), np.array(SPECIALS, dtype=np.float16)]


@pytest.mark.parametrize("x", EDGE_INPUTS, ids=lambda a: f"{a.dtype}{a.shape}")
@pytest.mark.parametrize("op", ["relu", "relu_inplace", "dropout_p1", "dropout_p0", "dropout_eval"])
def test_fast_and_reference_paths_agree_bit_for_bit(x, op):
    def run():
        t = tc.tensor(x, requires_grad=True)
        u = t * 1
        y = {"relu": lambda: F.relu(u), "relu_inplace": lambda: F.relu(u, inplace=True),
             "dropout_p1": lambda: F.dropout(u, 1.0), "dropout_p0": lambda: F.dropout(u, 0.0),
             "dropout_eval": lambda: F.dropout(u, 0.5, training=False)}[op]()
        y.backward(tc.tensor(np.arange(x.size, dtype=x.dtype).reshape(x.shape) - 2))
        return y.array, t.grad.array
    fast, ref = _run_in("fast", run), _run_in("reference", run)
    for a, b in zip(fast, ref):
        assert a.shape == b.shape == x.shape and a.dtype == b.dtype == x.dtype
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))      # the kernels' NaNs too


@pytest.mark.parametrize("shape", [(), (1,), (0,), (3, 0), (7,)])
def test_fast_and_reference_dropout_agree_on_shapes_and_scale(shape):
    """The masks differ between paths (different generators), the shapes and the kept scale do not."""
    for mode in ("fast", "reference"):
        with tc.use_kernels(mode):
            x = tc.ones(*shape, dtype=tc.float64, requires_grad=True)
            y = F.dropout(x, 0.25)
            y.backward(tc.ones(*shape, dtype=tc.float64))
            assert y.shape == shape and x.grad.shape == shape
            assert set(np.unique(y.array)) <= {0.0, 1 / 0.75}
            np.testing.assert_array_equal(x.grad.array, y.array)
