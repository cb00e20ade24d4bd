"""In-place operations in depth: random programs of writes into tensors and their views,
run by tinyconv and by PyTorch, must give the same values, gradients, version counters
and the same "modified by an inplace operation" errors."""
import numpy as np
import pytest

import tinyconv as tc

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.usefixtures("kernel_mode")

# --------------------------------------------------------------------------- random programs

VIEWS = ["base", "row", "col", "block", "T_row", "flat", "elem"]
OPS = ["add_", "sub_", "mul_", "div_", "clamp_", "fill_", "zero_", "copy_", "setitem", "iadd"]
OPERANDS = ["const", "w_sum", "w_elem"]


def _view(lib, y, kind, k):
    return {"base": lambda: y, "row": lambda: y[k % 3], "col": lambda: y[:, k % 4],
            "block": lambda: y[1:, ::2], "T_row": lambda: y.T[k % 4],
            "flat": lambda: y.reshape(12), "elem": lambda: y[k % 3, k % 4]}[kind]()


def _operand(lib, w, kind, k):
    if kind == "const":
        return 0.5 + 0.25 * k
    if kind == "w_sum":
        return w.sum() * 0.5                 # 0-d, requires grad
    return w[k % 2]                          # a 0-d view of a leaf that requires grad


def _apply(lib, t, op, v):
    """Write ``v`` into ``t`` by ``op``; every in-place op gives back ``t`` itself."""
    if op == "setitem":
        t[...] = v
        return
    same = t
    if op == "clamp_":
        out = t.clamp_(-1.0, 1.5)
    elif op == "fill_":
        out = t.fill_(v if isinstance(v, float) else 2.0)
    elif op == "zero_":
        out = t.zero_()
    elif op == "copy_":
        out = t.copy_(v if not isinstance(v, float) else lib.tensor(v, dtype=lib.float64))
    elif op == "iadd":
        t += v
        out = t
    else:
        out = getattr(t, op)(v)
    assert out is same


def run_program(lib, steps, saves):
    """Write into y = x * 1 and its views by ``steps``; loss over y, old views and saved nodes."""
    x = lib.tensor(np.linspace(-1.0, 1.5, 12).reshape(3, 4), dtype=lib.float64, requires_grad=True)
    w = lib.tensor([0.75, 1.25], dtype=lib.float64, requires_grad=True)
    y = x * 1
    kept = []                                # views made along the way, used at the end
    for i, (view, op, operand, k) in enumerate(steps):
        t = _view(lib, y, view, k)
        kept.append(t)
        if i in saves:                       # a node that saves t (Mul saves t for w's gradient)
            kept.append(t * w[0])
        _apply(lib, t, op, _operand(lib, w, operand, k))
    coeff = lib.tensor(np.arange(1.0, 13.0).reshape(3, 4), dtype=lib.float64)
    loss = (y * coeff).sum() + sum((v * v).sum() for v in kept)
    try:
        loss.backward()
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e)
        return "modified by an inplace operation"
    grads = [a.grad.numpy().copy() if a.grad is not None else None for a in (x, w)]
    return [y.detach().numpy().copy(), grads, y._version, [v._version for v in kept]]


def _same(ours, theirs):
    if isinstance(theirs, str) or isinstance(ours, str):
        assert ours == theirs
        return
    (y1, g1, v1, k1), (y2, g2, v2, k2) = ours, theirs
    np.testing.assert_allclose(y1, y2, rtol=1e-12)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert (v1, k1) == (v2, k2)


step = st.tuples(st.sampled_from(VIEWS), st.sampled_from(OPS), st.sampled_from(OPERANDS),
                 st.integers(0, 11))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=5), saves=st.sets(st.integers(0, 4), max_size=2))
def test_random_writes_into_views_match_pytorch(steps, saves):
    torch = pytest.importorskip("torch")
    _same(run_program(tc, steps, saves), run_program(torch, steps, saves))


def test_a_known_program_matches_pytorch(torch):
    steps = [("row", "iadd", "const", 0), ("T_row", "mul_", "w_sum", 1), ("block", "copy_", "w_elem", 0),
             ("flat", "add_", "w_elem", 1), ("elem", "setitem", "w_sum", 5), ("base", "clamp_", "const", 0)]
    ours, theirs = run_program(tc, steps, set()), run_program(torch, steps, set())
    _same(ours, theirs)
    assert not isinstance(ours, str)                 # this one is harmless: gradients come out


def test_a_saved_view_then_written_raises_in_both(torch):
    steps = [("row", "mul_", "const", 0), ("col", "add_", "const", 1)]
    assert run_program(tc, steps, {0}) == run_program(torch, steps, {0}) == \
        "modified by an inplace operation"


# --------------------------------------------------------------------------- specific cases


def test_item_assignment_through_a_view_updates_the_base_graph(torch):
    def case(lib):
        x = lib.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=lib.float64, requires_grad=True)
        y = x * 1
        y[0] += 1                            # getitem, iadd on the view, setitem
        y[1][0] *= 5                         # a view of a view
        (y * y).sum().backward()
        return y.detach().numpy(), x.grad.numpy(), y._version
    (a, ga, va), (b, gb, vb) = case(tc), case(torch)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(ga, gb)
    assert va == vb


def test_write_into_a_view_of_a_tensor_without_grad_makes_the_base_require_it(torch):
    def case(lib):
        x = lib.zeros(2, 3, dtype=lib.float64)
        v = x[:, 1]
        w = lib.tensor([2.0, 3.0], dtype=lib.float64, requires_grad=True)
        v.copy_(w * w)
        (x * lib.tensor([[1.0, 2.0, 3.0]], dtype=lib.float64)).sum().backward()
        return x.requires_grad, x.is_leaf, v.requires_grad, w.grad.numpy()
    ours, theirs = case(tc), case(torch)
    assert ours[:3] == theirs[:3]
    np.testing.assert_allclose(ours[3], theirs[3])


def test_old_views_see_a_later_write_to_the_base(torch):
    def case(lib):
        x = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64, requires_grad=True)
        y = x * 1
        head, tail = y[:2], y[1:]
        y.mul_(lib.tensor([2.0, 3.0, 4.0], dtype=lib.float64))
        tail.add_(1)
        (head * head).sum().backward()
        return head.detach().numpy(), x.grad.numpy()
    for a, b in zip(case(tc), case(torch)):
        np.testing.assert_allclose(a, b)


def test_view_of_a_leaf_that_requires_grad_cannot_be_written(torch):
    for lib in (tc, torch):
        with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
            lib.ones(3, requires_grad=True)[:2].add_(1)
    with tc.no_grad():                       # outside the graph it is allowed, as in PyTorch
        p = tc.ones(3, requires_grad=True)
        p[:2].mul_(3)
    assert p.tolist() == [3.0, 3.0, 1.0] and p._version == 1 and p.is_leaf


def test_mul_inplace_keeps_the_old_values_its_backward_needs(torch):
    def case(lib):
        x = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        w = lib.tensor([3.0, 5.0], dtype=lib.float64, requires_grad=True)
        y = x * 2
        y.mul_(w)                            # dw needs the old y, which the write overwrites
        (y * y).sum().backward()
        return x.grad.numpy(), w.grad.numpy()
    for a, b in zip(case(tc), case(torch)):
        np.testing.assert_allclose(a, b)


def test_mul_inplace_by_itself_is_exact_where_pytorch_refuses(torch):
    """``y.mul_(y)``: PyTorch saves y for both operands and then refuses the backward;
    tinyconv copies what the node saved before the write, so the gradient is exact."""
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = x * 3
    y.mul_(y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    x = tc.tensor([1.0, 2.0], dtype=tc.float64, requires_grad=True)
    y = x * 3
    y.mul_(y)                                # y = 9 x^2
    y.sum().backward()
    assert x.grad.tolist() == [18.0, 36.0]


def test_inplace_result_keeps_dtype_and_a_float64_source_is_narrowed(torch):
    for lib in (tc, torch):
        t = lib.ones(3)
        t.add_(lib.tensor([0.1, 0.2, 0.3], dtype=lib.float64))
        assert str(t.dtype).endswith("float32")
    np.testing.assert_allclose(t.numpy(), np.float32([1.1, 1.2, 1.3]))


def test_inplace_into_read_only_memory_is_clear():
    a = np.ones(3, dtype=np.float32)
    a.flags.writeable = False
    with pytest.raises(RuntimeError, match="add_: the tensor's memory is read-only"):
        tc.from_numpy(a).add_(1)


def test_inplace_on_empty_and_0d_tensors(torch):
    for lib in (tc, torch):
        e = lib.zeros(0, 3)
        e.add_(1).mul_(2)
        z = lib.tensor(2.0)
        z += 1
        z.clamp_(max=2.5)
        assert e.shape == (0, 3) and e._version == 2 and z.item() == 2.5 and z._version == 2


def test_nan_and_inf_pass_through_inplace_ops(torch):
    vals = [float("nan"), float("inf"), -float("inf"), 1.0]
    outs = []
    for lib in (tc, torch):
        t = lib.tensor(vals, dtype=lib.float64)
        t.mul_(2).add_(1)
        c = lib.tensor(vals, dtype=lib.float64).clamp_(-1, 1)
        outs.append((t.numpy().copy(), c.numpy().copy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_setitem_with_bad_shape_is_clear():
    with pytest.raises(ValueError, match="__setitem__: cannot assign a value of shape"):
        tc.zeros(2, 3)[0] = tc.ones(4)


def test_inplace_gradcheck_through_views():
    def fn(x, w):
        y = x * 1
        y[0].mul_(w)
        y.T[1].add_(w[0] * w[1])
        return y.exp()
    x = tc.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=tc.float64, requires_grad=True)
    w = tc.tensor([0.5, -1.0, 2.0], dtype=tc.float64, requires_grad=True)
    tc.gradcheck(fn, (x, w))


def test_setitem_outside_the_graph_writes_straight_into_memory(monkeypatch):
    """No SetItem node (which copies the whole tensor) when nothing records."""
    def refuse(*args):
        raise AssertionError("SetItem ran")
    monkeypatch.setattr(tc.math_ops.SetItem, "forward", refuse)
    base = np.zeros((4, 2), dtype=np.float32)
    out = tc.from_numpy(base)
    for i in range(4):
        out[i] = float(i)
    with tc.no_grad():
        p = tc.zeros(2, requires_grad=True)
        p[1] = 5.0
    assert base[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0] and out._version == 4
    assert p.tolist() == [0.0, 5.0] and p.is_leaf and p._version == 1
    with pytest.raises(AssertionError, match="SetItem ran"):   # recorded: the node is needed
        tc.zeros(2)[0] = tc.ones(1, requires_grad=True).sum()


def test_pow_inplace_and_ipow(torch):
    def case(lib):
        x = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64, requires_grad=True)
        y = x * 1
        same = y
        y **= 2
        y.pow_(0.5)
        (y * y).sum().backward()
        return y is same, y._version, y.detach().numpy(), x.grad.numpy()
    (s1, v1, y1, g1), (s2, v2, y2, g2) = case(tc), case(torch)
    assert (s1, v1) == (s2, v2) == (True, 2)
    np.testing.assert_allclose(y1, y2)
    np.testing.assert_allclose(g1, g2)


def _view_writes(device):
    x = tc.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=tc.float64, device=device,
                  requires_grad=True)
    w = tc.tensor([0.5, 2.0, -1.0], dtype=tc.float64, device=device, requires_grad=True)
    y = x * 1
    y[0] += 1
    y.T[1].mul_(w)
    head = y[:2]
    y[:, 3] = w * w
    (y * y).sum().backward()
    return [t.cpu().detach().numpy() for t in (y, head, x.grad, w.grad)] + [y._version]


def test_writes_into_views_on_cuda_match_the_cpu(cupy):
    cpu, gpu = _view_writes("cpu"), _view_writes("cuda")
    for a, b in zip(cpu[:-1], gpu[:-1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert cpu[-1] == gpu[-1]
