"""PyTorch's semantics, item by item, each checked against PyTorch itself.

A test runs the same code with ``lib = tinyconv`` and ``lib = torch`` and compares what
comes out (values, gradients, version counters, error types and words).  Every test
runs on both kernel paths (the NumPy reference and the fast kernels).
"""
import operator

import numpy as np
import pytest

import tinyconv as tc

pytestmark = pytest.mark.usefixtures("kernel_mode")
torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")


def _plain(v):
    """Tensors (either library) -> NumPy arrays, recursively; other values as they are."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        return np.asarray(v.detach().cpu().numpy())
    return v


def same(torch, case, rtol=1e-6):
    """``case(tinyconv)`` gives what ``case(torch)`` gives."""
    ours, theirs = _plain(case(tc)), _plain(case(torch))
    _assert_same(ours, theirs, rtol)


def _assert_same(ours, theirs, rtol):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b, rtol)
    elif isinstance(theirs, np.ndarray):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours, theirs)
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-12)
    elif isinstance(theirs, float):
        assert type(ours) is float and ours == pytest.approx(theirs, rel=rtol), (ours, theirs)
    else:
        assert type(ours) is type(theirs) and ours == theirs, (ours, theirs)


def same_error(torch, case, match):
    """``case`` raises the same exception type in both libraries, with ``match`` in both messages."""
    with pytest.raises(Exception, match=match) as theirs:
        case(torch)
    with pytest.raises(type(theirs.value), match=match):
        case(tc)


def leaf(lib, values, dtype="float64"):
    return lib.tensor(values, dtype=getattr(lib, dtype), requires_grad=True)


# --- 1. The graph: every use of a tensor is counted before its node runs


@pytest.mark.parametrize("first", ["b", "b*2"])
def test_a_times_3_used_twice_gives_9_in_either_order(torch, first):
    def case(lib):
        a = leaf(lib, 1.0)
        b = a * 3
        y = b + b * 2 if first == "b" else b * 2 + b
        y.backward()
        return a.grad
    same(torch, case)
    assert float(case(tc)) == 9.0


def test_residual_block_h_plus_f_of_h(torch, rng):
    x0, w0 = rng.standard_normal((2, 4)), rng.standard_normal((4, 4))

    def case(lib):
        F = lib.nn.functional
        x, w = leaf(lib, x0), leaf(lib, w0)
        h = F.relu(x @ w)
        out = h + F.relu(h @ w)              # h reaches out directly and through f
        (out * out).sum().backward()
        return out, x.grad, w.grad
    same(torch, case)


# --- 2. Reductions and indices as PyTorch returns them
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


# --- 3. Python protocols


def test_bool_is_ambiguous_for_more_than_one_or_no_element(torch):
    same_error(torch, lambda lib: bool(lib.ones(2)), "more than one value is ambiguous")
    same_error(torch, lambda lib: bool(lib.ones(0)), "no values is ambiguous")
    same(torch, lambda lib: [bool(lib.tensor([0.0])), bool(lib.tensor(2)), bool(lib.ones(1, 1))])


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_float_and_int(torch):
    same(torch, lambda lib: [float(lib.tensor([2.5])), int(lib.tensor(-2.7)),
                             int(lib.tensor([[7]])), float(leaf(lib, [1.5]).sum())])
    same_error(torch, lambda lib: float(lib.ones(2)), "only one element tensors")
    same_error(torch, lambda lib: int(lib.ones(0)), "only one element tensors")


def test_index_lets_a_tensor_pick_from_a_list(torch):
    classes = ["cat", "dog", "emu"]
    same(torch, lambda lib: [classes[lib.tensor(1)], classes[lib.tensor([2])],
                             classes[lib.tensor(-1)], classes[lib.tensor(True)]])
    same(torch, lambda lib: classes[lib.tensor([0, 1, 2]).argmax()])
    same_error(torch, lambda lib: classes[lib.tensor(1.0)], "only integer tensors of a single element")
    same_error(torch, lambda lib: classes[lib.tensor([0, 1])], "only integer tensors of a single element")


def test_format_takes_a_spec_for_0d_only(torch):
    same(torch, lambda lib: [format(lib.tensor(2.0 / 3), ".3f"), f"{lib.tensor(7):d}",
                             f"{lib.tensor(0.5)}"])
    same_error(torch, lambda lib: format(lib.tensor([1.5]), ".3f"), "unsupported format string")


def test_len(torch):
    same(torch, lambda lib: [len(lib.zeros(3, 2)), len(lib.zeros(0, 4))])
    same_error(torch, lambda lib: len(lib.tensor(1.0)), "len\\(\\) of a 0-d tensor")


def test_iteration_yields_differentiable_tensors(torch):
    def case(lib):
        x = leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
        rows = list(x)
        (rows[0] * rows[1] + rows[1]).sum().backward()
        return rows, x.grad, [float(v) for v in x[0]]
    same(torch, case)
    same_error(torch, lambda lib: iter(lib.tensor(1.0)), "iteration over a 0-d tensor")


def test_tolist(torch):
    same(torch, lambda lib: [lib.tensor([[1, 2], [3, 4]]).tolist(), lib.tensor(2.5).tolist(),
                             lib.zeros(0).tolist(), lib.tensor([True, False]).tolist()])


def test_in(torch):
    same(torch, lambda lib: [2.0 in lib.tensor([1.0, 2.0]), 3 in lib.tensor([1.0, 2.0]),
                             lib.tensor(1) in lib.tensor([[0, 1], [2, 3]]), 1 in lib.zeros(0)])
    same_error(torch, lambda lib: "a" in lib.ones(2), "only supports Tensor or scalar")
    same_error(torch, lambda lib: lib.tensor([1.0, 3.0]) in [lib.tensor([1.0, 2.0])],
               "more than one value is ambiguous")


def test_comparisons_give_bool_tensors_usable_in_if(torch):
    def case(lib):
        t = lib.tensor([1.0, 3.0, 3.0])
        picked = "three" if t[1] == 3 else "other"
        return [t == 3, t != 3, t < 3, t <= 1, t > 1, t >= 3, 3 == t, t == lib.tensor([1.0]),
                picked, t == None]  # noqa: E711  (PyTorch gives False)
    same(torch, case)

    def ambiguous(lib):
        if lib.tensor([1.0, 3.0]) == 3:
            pass
    same_error(torch, ambiguous, "more than one value is ambiguous")


def test_sum(torch):
    same(torch, lambda lib: [lib.tensor([[1, 2], [3, 4]]).sum(), lib.ones(2, 3).sum(),
                             lib.zeros(0).sum(), lib.ones(2, 3).sum(1)])


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_item(torch):
    same(torch, lambda lib: [lib.tensor([[2.5]]).item(), lib.tensor(3).item(),
                             lib.tensor(True).item(), leaf(lib, [1.0]).item()])
    same_error(torch, lambda lib: lib.ones(2).item(), "a Tensor with 2 elements cannot be converted")


# --- 4. In-place operations and version counters


@pytest.mark.parametrize("op", ["add_", "sub_", "mul_", "div_", "zero_", "fill_", "copy_", "clamp_"])
def test_inplace_method_writes_the_same_tensor(torch, op):
    args = {"add_": (2.0,), "sub_": (1.5,), "mul_": (-3.0,), "div_": (4.0,), "zero_": (),
            "fill_": (7.0,), "copy_": ("src",), "clamp_": (-1.0, 1.5)}[op]

    def case(lib):
        t = lib.tensor([[-2.0, 0.5, 3.0], [1.0, -0.25, 2.0]])
        alias = t.data
        call = [lib.tensor([9.0, 8.0, 7.0]) if a == "src" else a for a in args]
        out = getattr(t, op)(*call)
        return [out is t, t, alias, t._version]
    same(torch, case)


@pytest.mark.parametrize("op", ["normal_", "uniform_"])
def test_random_fill_writes_the_same_tensor(torch, op):
    def case(lib):
        t = lib.zeros(4000, dtype=lib.float64)
        alias = t.data
        out = getattr(t, op)(2.0, 3.0)
        return [out is t, t._version, alias.tolist() == t.tolist()]
    same(torch, case)
    t = getattr(tc.zeros(4000, dtype=tc.float64), op)(2.0, 3.0).numpy()
    mean, std = (2.0, 3.0) if op == "normal_" else (2.5, 1 / 12 ** 0.5)
    assert abs(t.mean() - mean) < 0.15 and abs(t.std() / std - 1) < 0.1
    if op == "uniform_":
        assert t.min() >= 2.0 and t.max() < 3.0


_AUGMENTED = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv}


@pytest.mark.parametrize("op", list(_AUGMENTED))
def test_augmented_assignment_is_in_place(torch, op):
    def case(lib):
        base = np.array([1.0, 2.0, 4.0], dtype=np.float32)
        t = lib.from_numpy(base)
        view, data, before = t[1:], t.data, t
        t = _AUGMENTED[op](t, lib.tensor([2.0, 4.0, 8.0]))     # t += ..., etc.
        return [t is before, t, view, data, base.copy(), t._version]
    same(torch, case)


def test_setitem_is_in_place_and_differentiable_in_both(torch, rng):
    x0, v0 = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def case(lib):
        x, v = leaf(lib, x0), leaf(lib, v0)
        t = x * 2
        alias = t[0]
        t[1] = v * v                        # a row from v
        t[:, 0] = 5.0                       # a column of a constant
        t[lib.tensor([True, False, True]), 3] = v[:2]
        (t * t).sum().backward()
        return [t, alias, x.grad, v.grad, t._version]
    same(torch, case)


def test_param_data_is_pytorchs(torch):
    def case(lib):
        p = leaf(lib, [1.0, 2.0, 3.0])
        (p * p).sum().backward()
        p.data.copy_(lib.tensor([4.0, 5.0, 6.0], dtype=lib.float64))
        p.data -= 0.5 * p.grad
        p.grad.data.zero_()
        after_copy = p.clone().detach()
        if lib is tc:
            tc.manual_seed(0)
        p.data.normal_(0, 0.01)
        small = (p * p).max().item() < 0.01
        q = lib.zeros(2, dtype=lib.float64)
        p.data = q
        q[0] = 3.0
        return [after_copy, p.grad, small, p, p.requires_grad, p.is_leaf, p._version]
    same(torch, case)


def test_inplace_on_a_leaf_that_requires_grad(torch):
    same_error(torch, lambda lib: leaf(lib, [1.0]).add_(1),
               "a leaf Variable that requires grad is being used in an in-place operation")
    same_error(torch, lambda lib: leaf(lib, [1.0, 2.0]).__setitem__(0, 3.0),
               "leaf Variable that requires grad is being used in an in-place operation")

    def sgd(lib):                          # the hand-written SGD idiom, step by step as PyTorch
        gen = np.random.default_rng(1)
        x, y = lib.tensor(gen.standard_normal((16, 3))), lib.tensor(gen.standard_normal((16, 1)))
        w, b = leaf(lib, gen.standard_normal((1, 3)) * 0.1), leaf(lib, [0.0])
        same_objects, losses = (w, b), []
        for _ in range(20):
            loss = ((lib.nn.functional.linear(x, w, b) - y) ** 2).mean()
            losses.append(loss.item())
            loss.backward()
            with lib.no_grad():
                for p in (w, b):
                    p -= 0.1 * p.grad
                    p.grad.zero_()
        return [losses, w is same_objects[0], b is same_objects[1], w.is_leaf, w.requires_grad]
    same(torch, sgd)
    losses = sgd(tc)[0]
    assert losses[-1] < 0.8 * losses[0]


def test_version_counter_values(torch):
    def case(lib):
        x = lib.zeros(2, 3)
        row, det = x[0], x.detach()
        seen = [x._version]
        x.add_(1)
        x[0, 1] = 2.0
        row.mul_(2)                         # a view: the base's counter
        det.sub_(1)                         # detach() shares the counter
        x.data.add_(1)                      # .data does not (as PyTorch)
        seen += [x._version, row._version, det._version, (x + 1)._version]
        x += 1
        x.zero_()
        x.fill_(3).clamp_(0, 1).copy_(lib.ones(3)).div_(2)
        return seen + [x._version]
    same(torch, case)


@pytest.mark.parametrize("where", ["exp output", "mul input", "conv2d weight", "relu output",
                                   "matmul input", "log input"])
def test_backward_through_a_modified_saved_tensor_raises(torch, where):
    def case(lib):
        F = lib.nn.functional
        x = leaf(lib, np.linspace(0.5, 2.0, 16).reshape(1, 1, 4, 4))
        w = leaf(lib, np.ones((1, 1, 3, 3)))
        a = x * 1                           # a non-leaf: it may be written in place
        if where == "exp output":
            y = a.exp()
            saved = y
        elif where == "mul input":
            y, saved = a * w.sum(), a
        elif where == "conv2d weight":
            saved = w * 1
            y = F.conv2d(a, saved)
        elif where == "relu output":
            y = F.relu(a)
            saved = y
        elif where == "matmul input":
            y, saved = a @ (w.sum() * a), a
        else:
            y, saved = a.log(), a
        saved.mul_(2)
        y.sum().backward()
    same_error(torch, case, "modified by an inplace operation")


def test_harmless_inplace_gives_pytorchs_gradient(torch):
    def case(lib):
        F = lib.nn.functional
        x, w = leaf(lib, [1.0, -2.0, 3.0]), leaf(lib, [0.5, 0.25, -1.0])
        y = x * 2                           # Mul saved nothing of y
        y.add_(1)
        z = F.relu(y)
        z2 = z * 1
        z2.mul_(w)                          # saves the old z2 for w's gradient
        z2.clamp_(-5, 5)
        u = z2.exp() + z2                   # Exp saved its output, Add nothing of u
        u.sub_(1)
        u.sum().backward()
        return [y, z2, u, x.grad, w.grad]
    same(torch, case)


def test_inplace_dtype_rules(torch):
    same_error(torch, lambda lib: lib.tensor([1, 2]).__iadd__(1.5),
               "can't be cast to the desired output type")
    same_error(torch, lambda lib: lib.tensor([1, 2]).div_(2), "can't be cast to the desired output type")
    same_error(torch, lambda lib: lib.tensor([True]).add_(1), "can't be cast to the desired output type")
    same(torch, lambda lib: [lib.ones(2).add_(lib.ones(2, dtype=lib.float64)),   # narrowing is fine
                             lib.tensor([1, 2]).mul_(3), lib.zeros(2, dtype=lib.int64).fill_(1.5),
                             lib.zeros(2, dtype=lib.int64).copy_(lib.tensor([1.7, -1.7]))])


def test_inplace_shape_rules(torch):
    same_error(torch, lambda lib: lib.ones(3).add_(lib.ones(2, 3)), "doesn't match the broadcast shape")
    same_error(torch, lambda lib: lib.ones(2, 1).mul_(lib.ones(1, 3)), "doesn't match the broadcast shape")
    same(torch, lambda lib: [lib.ones(2, 3).add_(lib.ones(3)),
                             lib.ones(2, 3).copy_(lib.tensor([1.0, 2.0, 3.0]))])


# --- 5. The fast kernels keep PyTorch's edge semantics
# (thorough cases, and bit-for-bit agreement of the two kernel paths: tests/test_edge_semantics.py)


def test_relu_and_dropout_keep_0d_shape(torch):
    def case(lib):
        F = lib.nn.functional
        x = leaf(lib, 1.5)
        outs = [F.relu(x), F.dropout(x, 0.0), F.dropout(x, 1.0), F.dropout(x, 0.5, training=False)]
        sum(outs).backward()
        return [[tuple(o.shape) for o in outs], tuple(F.dropout(x, 0.5).shape), x.grad]
    same(torch, case)


def test_relu_gradient_at_nan(torch):
    def case(lib):
        x = leaf(lib, [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 2.0, -2.0])
        y = lib.nn.functional.relu(x)
        y.backward(lib.arange(1.0, 8.0, dtype=lib.float64))
        return [y, x.grad]
    same(torch, case)


@pytest.mark.parametrize("base,exponent", [(0.0, 0.0), (0.0, -1.0), (0.0, 2.0), (0.0, 0.5), (-2.0, 0.5),
                                           (-2.0, 2.0), (-2.0, 3.0), (-8.0, -1.0)])
def test_pow_gradient_at_zero_and_negative_bases(torch, base, exponent):
    def case(lib):
        b, e = leaf(lib, [base]), leaf(lib, [exponent])
        y = b ** e
        y.backward(lib.ones(1, dtype=lib.float64))
        b2 = leaf(lib, [base])
        (b2 ** exponent).backward(lib.ones(1, dtype=lib.float64))
        return [y, b.grad, e.grad, b2.grad]
    same(torch, case, rtol=1e-15)


def test_softmax_and_log_softmax_over_an_empty_dim(torch):
    def case(lib):
        F = lib.nn.functional
        x = leaf(lib, np.zeros((2, 0)))
        outs = [F.softmax(x, 1), F.log_softmax(x, 1), F.softmax(x, 0), F.log_softmax(x, -2)]
        sum(o.sum() for o in outs).backward()
        return outs + [x.grad]
    same(torch, case)
    msg = r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"
    same_error(torch, lambda lib: lib.nn.functional.softmax(lib.ones(2, 0), 2), msg)
    same_error(torch, lambda lib: lib.nn.functional.log_softmax(lib.ones(2, 3), -3), "Dimension out of range")


def test_transpose_and_permute_check_their_dims(torch):
    msg = r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 5\)"
    same_error(torch, lambda lib: lib.ones(2, 3).transpose(0, 5), msg)
    same_error(torch, lambda lib: lib.ones(2, 3).permute(0, 5), msg)
    same_error(torch, lambda lib: lib.ones(2, 3).permute(1, 1), "duplicate dims are not allowed")
    same_error(torch, lambda lib: lib.ones(2, 3).permute(0), "does not match the length")
    same(torch, lambda lib: [lib.ones(2, 3).transpose(-1, 0), lib.tensor(1.0).transpose(0, -1),
                             lib.ones(2, 3, 4).permute(-1, 0, 1), lib.ones(2, 3).T])


def test_to_with_positional_flags(torch):
    def case(lib):
        x = lib.tensor([1.0, 2.0])
        y = lib.zeros(1, dtype=lib.float64)
        return [x.to("cpu", lib.float64), x.to(lib.float64, True), x.to(y), x.to(x) is x,
                x.to("cpu") is x, x.to(copy=True) is x, x.to(lib.float32, False, True) is x,
                x.to("cpu", lib.float32, False, True) is x, x.to(dtype=lib.float64, copy=True)]
    same(torch, case)
    same_error(torch, lambda lib: lib.ones(1).to("cpu", lib.float64, True, True, True), "to\\(\\)")


def test_fast_and_reference_paths_agree(torch):
    """The same edge inputs through relu, dropout p=0/1 and softmax give the same bits on both paths."""
    def run(mode):
        with tc.use_kernels(mode):
            F = tc.nn.functional
            x = tc.tensor([np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0], requires_grad=True)
            outs = [F.relu(x), F.dropout(x * 1, 1.0), F.relu(x[0]), F.dropout(x[0], 0.5).shape == (),
                    F.softmax(tc.ones(2, 0), 1)]
            (outs[0] + outs[1]).sum().backward()
            return _plain(outs + [x.grad])
    for a, b in zip(run("fast"), run("reference")):
        np.testing.assert_array_equal(a, b)
    same(torch, lambda lib: lib.nn.functional.relu(lib.tensor([float("nan"), -0.0, 1.0])))


# --- 6. The autograd surface


def test_backward_with_gradient(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0, 3.0])
        y = x * x
        y.backward(gradient=lib.tensor([1.0, 10.0, 100.0], dtype=lib.float64))
        return x.grad
    same(torch, case)
    same_error(torch, lambda lib: (leaf(lib, [1.0, 2.0]) * 2).backward(),
               "grad can be implicitly created only for scalar outputs")


def test_grad_fn_and_next_functions():
    x, c = leaf(tc, [1.0, 2.0]), tc.tensor([3.0, 4.0], dtype=tc.float64)
    y = (x * c).exp()
    assert repr(y.grad_fn) == "<ExpBackward>" and y.grad_fn.name() == "ExpBackward"
    (mul, _), = y.grad_fn.next_functions
    assert repr(mul) == "<MulBackward>"
    (acc, _), (none, _) = mul.next_functions
    assert none is None and acc.name() == "AccumulateGrad" and acc.variable is x
    assert acc is mul.next_functions[0][0]        # one node per leaf, as PyTorch
    assert x.grad_fn is None and "grad_fn=<ExpBackward>" in repr(y)


def test_grad_fn_has_pytorchs_shape(torch):
    def case(lib):
        x, c = leaf(lib, [1.0, 2.0]), lib.tensor([3.0, 4.0], dtype=lib.float64)
        y = (x * c).exp()
        (mul, i), = y.grad_fn.next_functions
        (acc, j), (none, k) = mul.next_functions
        return [i, j, k, none is None, acc.variable is x, type(acc).__name__, x.grad_fn is None]
    same(torch, case)


def test_is_leaf(torch):
    def case(lib):
        x, c = leaf(lib, [1.0]), lib.ones(1)
        y = x * 2
        with lib.no_grad():
            z = x * 2
        return [x.is_leaf, c.is_leaf, y.is_leaf, z.is_leaf, y.detach().is_leaf, (c * 2).is_leaf]
    same(torch, case)


def test_retain_grad(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0])
        y = x * 3
        y.retain_grad()
        y.retain_grad()                     # twice is once
        x.retain_grad()                     # a leaf: no-op
        (y * y).sum().backward()
        return [y.grad, y.retains_grad, x.retains_grad, x.grad]
    same(torch, case)
    same_error(torch, lambda lib: lib.ones(2).retain_grad(), "can't retain_grad on Tensor that has "
               "requires_grad=False")


def test_requires_grad_method_and_setter(torch):
    def case(lib):
        x = lib.ones(2, dtype=lib.float64)
        out = x.requires_grad_()
        y = lib.ones(2, dtype=lib.float64)
        y.requires_grad = True
        y.requires_grad = False
        z = x * 2
        z.requires_grad_(True)              # already True on a non-leaf: fine
        return [out is x, x.requires_grad, y.requires_grad, z.requires_grad]
    same(torch, case)
    same_error(torch, lambda lib: setattr(leaf(lib, [1.0]) * 2, "requires_grad", False),
               "you can only change requires_grad flags of leaf variables")
    same_error(torch, lambda lib: lib.ones(2, dtype=lib.int64).requires_grad_(),
               "only Tensors of floating point dtype can require gradients")


def test_register_hook(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0])
        seen = []
        x.register_hook(lambda g: seen.append(g.clone()))          # leaf: the total, once
        y = x * 2
        y.register_hook(lambda g: g * 10)                          # replaces y's gradient
        gone = y.register_hook(lambda g: g * 1000)
        gone.remove()
        (y + x * 3).sum().backward()
        return [seen, x.grad]
    same(torch, case)
    same_error(torch, lambda lib: lib.ones(2).register_hook(lambda g: g), "doesn't require gradient")


def test_register_post_accumulate_grad_hook(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0])
        seen = []
        x.register_post_accumulate_grad_hook(lambda t: seen.append((t is x, t.grad.clone())))
        (x * x).sum().backward()
        return [[s[0] for s in seen], [s[1] for s in seen]]
    same(torch, case)
    same_error(torch, lambda lib: (leaf(lib, [1.0]) * 2).register_post_accumulate_grad_hook(print),
               "cannot be registered on non-leaf tensors")


def test_autograd_grad(torch):
    def case(lib):
        x, w = leaf(lib, [1.0, 2.0]), leaf(lib, [3.0, -1.0])
        y = x * w
        gx, gw = lib.autograd.grad(y.sum(), [x, w], retain_graph=True)
        (g2,) = lib.autograd.grad(y, x, grad_outputs=lib.tensor([1.0, 10.0], dtype=lib.float64),
                                  retain_graph=False, create_graph=False)
        return [gx, gw, g2, x.grad is None, w.grad is None]
    same(torch, case)


def test_grad_mode_context_managers_and_decorators(torch):
    def case(lib):
        x = leaf(lib, [1.0])
        modes = []

        @lib.no_grad()
        def called():
            return (x * 2).requires_grad

        @lib.no_grad
        def bare():
            return (x * 2).requires_grad

        @lib.enable_grad()
        def enabled():
            return (x * 2).requires_grad

        @lib.set_grad_enabled(False)
        def disabled():
            return (x * 2).requires_grad

        with lib.no_grad():
            modes += [(x * 2).requires_grad, enabled(), lib.is_grad_enabled()]
            with lib.enable_grad():
                modes.append((x * 2).requires_grad)
        with lib.set_grad_enabled(False):
            modes.append(lib.is_grad_enabled())
        modes += [called(), bare(), disabled(), lib.is_grad_enabled()]
        lib.set_grad_enabled(False)                     # a plain call acts at once
        modes.append(lib.is_grad_enabled())
        lib.set_grad_enabled(True)
        return modes + [lib.is_grad_enabled(), called.__name__]
    same(torch, case)


def test_detach_shares_memory_and_version_counter(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0])
        d = x.detach()
        d[0] = 5.0
        d.mul_(2)
        return [x, d, x._version, d._version, d.requires_grad, d.is_leaf, d.grad_fn is None]
    same(torch, case)
