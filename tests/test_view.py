"""``Tensor.view`` / ``view_as`` are PyTorch's: a true view where PyTorch gives one (same memory,
version counter and ``_base``; writes go both ways), PyTorch's error where it refuses
(``x.t().view(-1)``), and ``view(dtype)`` with PyTorch's rules.  ``reshape`` still copies
when it must.  Checked against the installed torch over many shapes and strides.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyconv as tc
from tinyconv.math_ops import view_strides

SPANS = "view size is not compatible with input tensor's size and stride"
MODIFIED = "one of the variables needed for gradient computation has been modified by an inplace operation"


def _strides(t):
    return tuple(s // t.array.itemsize for s in t.array.strides)


# ---------------------------------------------------------------------------- a strided input


@st.composite
def strided_inputs(draw):
    """A base shape and the ops (permute, step slices, expand, unsqueeze) that make a strided
    view of it, applied the same way to both libraries by ``_make``."""
    shape = draw(st.lists(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 0]), min_size=1, max_size=4))
    ops = []
    ndim = len(shape)
    for _ in range(draw(st.integers(0, 3) | st.integers(1, 3))):
        kind = draw(st.sampled_from(["permute", "slice", "unsqueeze", "expand"]))
        if kind == "permute":
            ops.append(("permute", tuple(draw(st.permutations(range(ndim))))))
        elif kind == "slice":
            ops.append(("slice", draw(st.integers(0, ndim - 1)), draw(st.integers(0, 2)),
                        draw(st.integers(1, 3))))
        elif kind == "unsqueeze" and ndim < 5:
            ops.append(("unsqueeze", draw(st.integers(0, ndim))))
            ndim += 1
        elif kind == "expand":
            ops.append(("expand", draw(st.integers(2, 3))))
    return shape, ops


def _make(lib, shape, ops):
    n = int(np.prod(shape))
    x = lib.arange(n, dtype=lib.float64).reshape(shape) if lib is not tc else \
        tc.arange(n, dtype=tc.float64).reshape(*shape)
    for op in ops:
        if op[0] == "permute":
            x = x.permute(*op[1])
        elif op[0] == "slice":
            index = [slice(None)] * x.ndim
            index[op[1]] = slice(op[2], None, op[3])
            x = x[tuple(index)]
        elif op[0] == "unsqueeze":
            x = x.unsqueeze(op[1])
        elif op[0] == "expand":            # every size-1 dim becomes op[1] (stride 0)
            x = x.expand(*[op[1] if s == 1 else s for s in x.shape])
    return x


def _target_shapes(draw, numel):
    """A shape for ``numel`` elements (a random factorisation with 1s, maybe a -1), or a wrong one."""
    if draw(st.integers(0, 4)) == 4:
        return tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=4)))
    if numel == 0:                          # any shape with a 0 in it (and maybe a -1: ambiguous)
        dims = draw(st.lists(st.sampled_from([1, 2, 3, -1]), min_size=0, max_size=3))
        return tuple(dims[:1] + [0] + dims[1:])
    dims, left = [], numel
    for p in (2, 3, 5, 7):
        while left % p == 0:
            left //= p
            dims.append(p)
    dims.append(left)
    # group the prime factors into random dims, then sprinkle 1s
    groups = draw(st.lists(st.integers(0, 3), min_size=len(dims), max_size=len(dims)))
    shape = [1] * 4
    for f, g in zip(dims, groups):
        shape[g] *= f
    shape = [s for s in shape if s != 1 or draw(st.booleans())]
    if shape and draw(st.booleans()):
        shape[draw(st.integers(0, len(shape) - 1))] = -1
    return tuple(shape)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), made=strided_inputs())
def test_view_succeeds_exactly_where_torchs_does(torch, data, made):
    shape, ops = made
    ours, theirs = _make(tc, shape, ops), _make(torch, shape, ops)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.array, theirs.numpy())
    target = _target_shapes(data.draw, ours.numel())
    try:
        want = theirs.view(target)
    except RuntimeError as e:
        with pytest.raises(RuntimeError) as got:
            ours.view(target)
        first = str(e).split(".")[0].split(" at ")[0][:40]
        assert first in str(got.value), (str(e), str(got.value))
        return
    got = ours.view(target)
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.array, want.numpy())
    # the same strides as torch's where they mean anything (a size-1 dim's stride is arbitrary)
    if got.numel():
        assert [s for s, n in zip(_strides(got), got.shape) if n > 1] == \
            [s for s, n in zip(want.stride(), want.shape) if n > 1]
        assert np.shares_memory(got.array, ours.array)
        assert got._version_counter is ours._version_counter


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made=strided_inputs(), data=st.data())
def test_reshape_gives_torchs_values_whatever_the_strides(torch, made, data):
    shape, ops = made
    ours, theirs = _make(tc, shape, ops), _make(torch, shape, ops)
    target = _target_shapes(data.draw, ours.numel())
    try:
        want = theirs.reshape(target)
    except RuntimeError:
        return
    np.testing.assert_array_equal(ours.reshape(target).array, want.numpy())


@pytest.mark.parametrize("old_shape,old_strides,new_shape,want", [
    ((2, 3), (3, 1), (6,), (1,)),
    ((3, 2), (1, 3), (6,), None),                  # x.t().view(-1)
    ((3, 2), (1, 3), (3, 2, 1), (1, 3, 3)),
    ((2, 3, 4), (12, 1, 3), (2, 12), None),
    ((2, 3, 4), (12, 1, 3), (6, 4), None),
    ((2, 3, 4), (24, 4, 1), (6, 4), None),          # a step slice of dim 0: dims 1, 2 are one chunk
    ((2, 3, 4), (24, 4, 1), (2, 3, 2, 2), (24, 4, 2, 1)),
    ((2, 3, 4), (24, 4, 1), (2, 12), (24, 1)),
    ((3, 4), (0, 1), (12,), None),                  # expanded
    ((3, 4), (0, 1), (3, 2, 2), (0, 2, 1)),
    ((), (), (1, 1), (1, 1)),
    ((0, 3), (3, 1), (3, 0), (1, 1)),
])
def test_view_strides_are_pytorchs_compute_stride(old_shape, old_strides, new_shape, want):
    assert view_strides(old_shape, old_strides, new_shape) == want


# ---------------------------------------------------------------------------- a true view


def test_transpose_view_raises_torchs_error_and_reshape_copies(torch):
    for lib in (torch, tc):
        x = lib.arange(6.0).reshape(2, 3)
        with pytest.raises(RuntimeError, match=SPANS + r".*Use \.reshape\(\.\.\.\) instead\."):
            x.t().view(-1)
        flat = x.t().reshape(-1)
        flat[0] = 100.0
        assert float(x[0, 0]) == 0.0            # reshape copied: the write stays in the copy


@pytest.mark.parametrize("bad,match", [((2, 4), r"shape '\[2, 4\]' is invalid for input of size 6"),
                                       ((-1, -1), "only one dimension can be inferred"),
                                       ((-2, 3), "invalid shape dimension -2")])
def test_view_shape_errors_as_torch(torch, bad, match):
    for lib in (torch, tc):
        with pytest.raises(RuntimeError, match=match):
            lib.arange(6.0).view(*bad)


def test_view_of_empty_with_minus_one_is_ambiguous_as_torch(torch):
    for lib in (torch, tc):
        with pytest.raises(RuntimeError, match="because the unspecified dimension size -1 can be any "
                                               "value and is ambiguous"):
            lib.zeros(0, 3).view(-1, 0)


def test_writes_go_both_ways_and_bump_one_version(torch):
    def case(lib):
        x = lib.arange(12.0).reshape(3, 4)[1:]          # a row slice: one chunk, so viewable
        v = x.view(2, 2, 2)
        v[0, 1, 1] = -1.0                               # into the view ...
        x.mul_(2)                                       # ... and into the base
        v.add_(1)
        base = x._base
        return [x.numpy() if lib is torch else x.array, v.numpy() if lib is torch else v.array,
                x._version, v._version, v._base is base, base._version]
    ours, theirs = case(tc), case(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_view_as_follows_view(torch):
    for lib in (torch, tc):
        x = lib.arange(6.0).reshape(2, 3)
        assert lib.zeros(3, 2).shape == x.view_as(lib.zeros(3, 2)).shape
        with pytest.raises(RuntimeError, match=SPANS):
            x.t().view_as(lib.zeros(6))


def _grads(lib, fn, values):
    x = lib.tensor(values, dtype=lib.float64, requires_grad=True)
    y = fn(x)
    y.backward(lib.ones_like(y) * lib.arange(float(y.numel()), dtype=lib.float64).reshape(y.shape))
    return (y.detach().numpy() if lib is not tc else y.array), \
        (x.grad.numpy() if lib is not tc else x.grad.array)


VIEWS = {
    "flat": lambda x: (x * 2).view(-1),
    "split dims": lambda x: x.view(2, 1, 3, 2),
    "row slice": lambda x: x[1:].view(9),
    "step slice": lambda x: (x[::2].view(2, 3, 1) * x[1::2].view(2, 1, 3)).sum(0),
    "transpose then contiguous": lambda x: x.t().contiguous().view(12),
    "in place through a view": lambda x: _in_place(x),
}


def _in_place(x):
    y = x * 1
    v = y.view(3, 4)
    v.mul_(3)                                            # CopySlices through the base
    return y * y


@pytest.mark.parametrize("name", list(VIEWS))
def test_gradients_through_views_as_torch(torch, name, rng):
    values = rng.standard_normal((4, 3))
    for ours, theirs in zip(_grads(tc, VIEWS[name], values), _grads(torch, VIEWS[name], values)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in VIEWS if n != "in place through a view"])
def test_gradcheck_through_views(name, rng):
    x = tc.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    assert tc.gradcheck(VIEWS[name], (x,))


def test_in_place_through_a_view_of_a_saved_tensor_fails_backward_as_torch(torch):
    for lib in (torch, tc):
        x = lib.ones(2, 3, dtype=lib.float64, requires_grad=True)
        y = x * 2
        z = (y * y).sum()                 # saves y
        v = y.view(6)
        v.add_(1)                         # the view's write is y's: y's version moves
        assert y._version == v._version == 1
        with pytest.raises(RuntimeError, match=MODIFIED):
            z.backward()


def test_in_place_into_a_saved_view_fails_backward_as_torch(torch):
    for lib in (torch, tc):
        x = lib.ones(2, 3, dtype=lib.float64, requires_grad=True)
        y = x * 2
        v = y.view(6)
        z = (v.exp()).sum()               # saves exp's output; and v
        w = (v * v).sum()                 # saves v
        y.mul_(3)                         # into the base: v's memory, v's version
        with pytest.raises(RuntimeError, match=MODIFIED):
            w.backward()
        z.backward()                      # exp saved its output only: a fresh array, untouched


# ---------------------------------------------------------------------------- view(dtype)


DTYPE_CASES = [
    ("float32", "int32", lambda x: x),
    ("float64", "int64", lambda x: x),
    ("float64", "float32", lambda x: x),                 # 8 -> 4 bytes: the last dim doubles
    ("float64", "int16", lambda x: x[:, 1:]),
    ("float32", "float64", lambda x: x),                 # 4 -> 8: the last dim halves
    ("float32", "float64", lambda x: x[:, :3]),           # size(-1) odd
    ("float32", "float64", lambda x: x[:, 1:3]),          # storage offset odd
    ("float32", "int64", lambda x: x.t()),                # stride(-1) != 1
    ("float32", "float64", lambda x: x[::3]),             # stride(0) = 12, divisible
    ("float32", "float64", lambda x: x[:, ::1][:, 2:]),
    ("float32", "float64", lambda x: x[0, 0]),            # 0-d
    ("float32", "int32", lambda x: x[0, 0]),              # 0-d, same size: allowed
    ("int32", "float32", lambda x: x[1]),
]


@pytest.mark.parametrize("src,dst,pick", DTYPE_CASES)
def test_view_dtype_as_torch(torch, src, dst, pick):
    values = np.arange(24).reshape(4, 6)

    def case(lib):
        x = pick(lib.tensor(values, dtype=getattr(lib, src)))
        return x.view(getattr(lib, dst))
    try:
        want = case(torch)
    except RuntimeError as e:
        with pytest.raises(RuntimeError, match=str(e).split(",")[0].replace("(", r"\(").replace(")", r"\)")):
            case(tc)
        return
    got = case(tc)
    assert got.shape == tuple(want.shape) and got.dtype == np.dtype(dst)
    np.testing.assert_array_equal(got.array, want.numpy())


def test_view_dtype_shares_memory_and_version_and_is_not_differentiable(torch):
    def case(lib):
        x = lib.zeros(4, requires_grad=True)
        with lib.no_grad():
            v = x.view(lib.int32)
            v.add_(1)
        return [x._version, v.requires_grad, x.detach().numpy() if lib is torch else x.array]
    ours, theirs = case(tc), case(torch)
    assert ours[:2] == theirs[:2]
    np.testing.assert_array_equal(ours[2], theirs[2])


def test_view_falls_back_to_pytorchs_strides_where_numpy_would_copy():
    """View.forward takes NumPy's reshape when it is a view; where NumPy copied it builds the
    view from the strides PyTorch's rule found (an array whose reshape always copies)."""
    from tinyconv.math_ops import View

    class Copying(np.ndarray):
        def reshape(self, *shape):
            return np.array(self).reshape(*shape)

    base = np.arange(24.0).reshape(2, 3, 4)
    x = base[:, 1:].view(Copying)                       # (2, 2, 4), strides (12, 4, 1) elements
    strides = view_strides(x.shape, (12, 4, 1), (2, 8))
    y = View((2, 8), strides).forward(x)
    assert np.shares_memory(y, base) and y.strides == (96, 8)
    np.testing.assert_array_equal(y, base[:, 1:].reshape(2, 8))
