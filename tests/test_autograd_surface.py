"""The autograd surface in depth (hooks, autograd.grad, grad mode, detach, grad_fn), the
Python protocols on odd values, and dims/``to()`` argument handling, against PyTorch."""
import threading

import numpy as np
import pytest

import tinyconv as tc

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.usefixtures("kernel_mode")


def leaf(lib, values):
    return lib.tensor(values, dtype=lib.float64, requires_grad=True)


def both(torch, case):
    """``case(lib)`` for tinyconv and for PyTorch, its tensors as lists."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v.detach().tolist() if hasattr(v, "detach") else v
    return plain(case(tc)), plain(case(torch))


def assert_same(torch, case):
    ours, theirs = both(torch, case)
    assert ours == theirs


# --------------------------------------------------------------------------- hooks


def test_leaf_hook_runs_once_with_the_total_of_every_use(torch):
    def case(lib):
        x, calls = leaf(lib, [1.0, 2.0]), []
        x.register_hook(lambda g: calls.append(g.clone()))
        (x * 2 + x * x + x.exp() * 0).sum().backward()
        return calls, x.grad
    assert_same(torch, case)


def test_hooks_chain_in_order_and_none_keeps_the_gradient(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0])
        y, seen = x * 3, []
        y.register_hook(lambda g: seen.append(g.clone()))           # None: unchanged
        y.register_hook(lambda g: g + 1)
        y.register_hook(lambda g: g * 2)                            # sees the + 1
        x.register_hook(lambda g: g * 0 + 0.5)                      # leaf: replaces .grad
        y.sum().backward()
        return seen, x.grad
    assert_same(torch, case)


def test_retained_grad_is_the_hooked_gradient(torch):
    def case(lib):
        x = leaf(lib, [1.0, 2.0])
        y = x * 3
        y.retain_grad()
        y.register_hook(lambda g: g * 10)
        y.sum().backward()
        return y.grad, x.grad
    assert_same(torch, case)


def test_removed_hooks_stay_removed_and_remove_twice_is_harmless(torch):
    def case(lib):
        x = leaf(lib, [1.0])
        h1 = x.register_hook(lambda g: g * 100)
        h2 = x.register_post_accumulate_grad_hook(lambda t: t.grad.mul_(100))
        h1.remove()
        h1.remove()
        h2.remove()
        (x * 2).sum().backward()
        return x.grad
    assert_same(torch, case)


def test_hooks_run_on_every_backward_and_grads_accumulate(torch):
    def case(lib):
        x, calls, posts = leaf(lib, [1.0, 2.0]), [], []
        x.register_hook(lambda g: calls.append(g.clone()))
        x.register_post_accumulate_grad_hook(lambda t: posts.append(t.grad.clone()))
        y = (x * x).sum()
        y.backward(retain_graph=True)
        y.backward()
        return calls, posts, x.grad
    assert_same(torch, case)


def test_post_accumulate_hook_may_step_the_parameter(torch):
    """The optimizer-in-backward idiom: update and clear the grad as soon as it is ready."""
    def case(lib):
        w = leaf(lib, [1.0, -2.0])

        def step(p):
            with lib.no_grad():
                p -= 0.5 * p.grad
            p.grad = None
        w.register_post_accumulate_grad_hook(step)
        (w * w).sum().backward()
        return w, w.grad is None, w.is_leaf
    assert_same(torch, case)


def test_hook_on_a_tensor_written_in_place_sees_the_gradient_of_its_old_value(torch):
    def case(lib):
        x, seen = leaf(lib, [1.0, 2.0]), []
        y = x * 2
        y.register_hook(lambda g: seen.append(g.clone()))
        y.mul_(3)
        y.sum().backward()
        return seen, x.grad
    assert_same(torch, case)


# --------------------------------------------------------------------------- autograd.grad


def test_autograd_grad_many_outputs_and_inputs(torch):
    def case(lib):
        x, w = leaf(lib, [1.0, 2.0]), leaf(lib, [3.0, 4.0])
        h = x * w
        a, b = h.sum(), (h * h).sum()
        g = lib.autograd.grad([a, b], [x, h, w],
                              grad_outputs=[lib.tensor(1.0, dtype=lib.float64), None])
        return list(g), x.grad is None, w.grad is None, h.grad_fn is not None
    assert_same(torch, case)


def test_autograd_grad_allow_unused(torch):
    def case(lib):
        x, u = leaf(lib, [1.0]), leaf(lib, [2.0])
        return list(lib.autograd.grad((x * 2).sum(), [x, u], allow_unused=True))
    assert_same(torch, case)
    for lib in (tc, torch):
        x, u = leaf(lib, [1.0]), leaf(lib, [2.0])
        with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
            lib.autograd.grad((x * 2).sum(), [x, u])


def test_autograd_grad_frees_the_graph_unless_retained(torch):
    for lib in (tc, torch):
        x = leaf(lib, [1.0])
        y = (x.exp() * 2).sum()
        lib.autograd.grad(y, x)
        with pytest.raises(RuntimeError, match="a second time"):
            lib.autograd.grad(y, x)


def test_create_graph_is_refused_clearly():
    x = leaf(tc, [1.0])
    with pytest.raises(NotImplementedError, match="create_graph=True"):
        tc.autograd.grad((x * x).sum(), x, create_graph=True)


def test_backward_errors_match_pytorch(torch):
    for lib in (tc, torch):
        x = leaf(lib, [1.0, 2.0])
        with pytest.raises(RuntimeError, match="Mismatch in shape"):
            (x * 2).backward(gradient=lib.ones(3, dtype=lib.float64))
        with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
            lib.ones(2).sum().backward()


def test_backward_inputs_fills_only_those(torch):
    def case(lib):
        x, w = leaf(lib, [1.0, 2.0]), leaf(lib, [3.0, 4.0])
        (x * w).sum().backward(inputs=[w])
        return x.grad is None, w.grad
    assert_same(torch, case)


# --------------------------------------------------------------------------- grad mode


def test_grad_mode_is_restored_after_an_exception(torch):
    for lib in (tc, torch):
        with pytest.raises(KeyError):
            with lib.no_grad():
                raise KeyError("boom")
        assert lib.is_grad_enabled()

        @lib.no_grad()
        def fails():
            raise KeyError("boom")
        with pytest.raises(KeyError):
            fails()
        assert lib.is_grad_enabled()


def test_decorators_keep_the_name_and_docstring(torch):
    for lib in (tc, torch):
        def f(a, b=2):
            """Adds."""
            return a + b
        for deco in (lib.no_grad(), lib.no_grad, lib.enable_grad(), lib.set_grad_enabled(False)):
            g = deco(f)
            assert (g.__name__, g.__doc__, g(1)) == ("f", "Adds.", 3)
        assert lib.is_grad_enabled()


def test_a_no_grad_object_can_be_entered_again_and_nested(torch):
    def case(lib):
        ctx, modes = lib.no_grad(), []
        for _ in range(2):
            with ctx:
                with lib.enable_grad():
                    with lib.set_grad_enabled(False):
                        modes.append(lib.is_grad_enabled())
                    modes.append(lib.is_grad_enabled())
                modes.append(lib.is_grad_enabled())
        return modes + [lib.is_grad_enabled()]
    assert_same(torch, case)


def test_a_decorated_function_may_recurse():
    @tc.no_grad()
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)
    assert depth(5) == 5 and tc.is_grad_enabled()


def _mode_seen_by_another_thread_inside_no_grad(lib):
    seen, ready, done = [], threading.Event(), threading.Event()

    def other():
        ready.wait()
        seen.append(lib.is_grad_enabled())
        done.set()
    t = threading.Thread(target=other)
    t.start()
    with lib.no_grad():
        ready.set()
        done.wait()
    t.join()
    return seen


def test_grad_mode_is_per_thread(torch):
    assert _mode_seen_by_another_thread_inside_no_grad(tc) == \
        _mode_seen_by_another_thread_inside_no_grad(torch) == [True]


# --------------------------------------------------------------------------- detach, flags, grad_fn


def test_detached_write_is_caught_by_the_version_check(torch):
    for lib in (tc, torch):
        x = leaf(lib, [1.0, 2.0])
        y = x.exp()
        y.detach().zero_()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_data_write_is_not_caught_as_in_pytorch(torch):
    """``.data`` has its own version counter: the write goes unseen (PyTorch's documented trap)."""
    assert_same(torch, lambda lib: _data_trap(lib))


def _data_trap(lib):
    x = leaf(lib, [0.0, 1.0])
    y = x.exp()
    y.data.mul_(2)
    y.sum().backward()
    return x.grad, y._version


def test_detach_in_place_makes_a_leaf(torch):
    def case(lib):
        x = leaf(lib, [1.0])
        y = x * 2
        out = y.detach_()
        return out is y, y.is_leaf, y.requires_grad, y.grad_fn is None
    assert_same(torch, case)


def test_grad_fn_after_in_place_points_at_the_old_node(torch):
    def case(lib):
        x = leaf(lib, [1.0])
        y = x * 2
        old = y.grad_fn
        y.add_(1)
        return y.grad_fn is not old, y.grad_fn.next_functions[0][0] is old, y.is_leaf
    assert_same(torch, case)


def test_no_grad_outputs_have_no_grad_fn(torch):
    def case(lib):
        x = leaf(lib, [1.0])
        with lib.no_grad():
            y = x * 2
            y.add_(1)
        return y.grad_fn is None, y.requires_grad, y.is_leaf, y._version
    assert_same(torch, case)


def test_printed_graph_is_short_and_stable():
    x = leaf(tc, [1.0, 2.0])
    y = tc.nn.functional.relu(x * 2)
    assert repr(y) == "tensor([2., 4.], dtype=float64, grad_fn=<ReLUFnBackward>)"
    assert [repr(n) for n, _ in y.grad_fn.next_functions] == ["<MulBackward>"]


# --------------------------------------------------------------------------- Python protocols on odd values

values = st.lists(st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, float("nan"), float("inf")]),
                  min_size=0, max_size=4)


@settings(max_examples=40, deadline=None)
@given(a=values, b=st.sampled_from([0.0, 3.0, float("nan"), -float("inf")]))
def test_comparisons_and_in_match_pytorch_on_odd_values(a, b):
    torch = pytest.importorskip("torch")

    def case(lib):
        t = lib.tensor(a, dtype=lib.float64)
        out = [(t == b).tolist(), (t != b).tolist(), (t < b).tolist(), (t >= b).tolist(), b in t]
        for op in (bool, float, int):
            try:
                out.append(op(t))
            except (RuntimeError, ValueError, TypeError, OverflowError) as e:
                out.append(type(e).__name__)
        return out
    ours, theirs = case(tc), case(torch)
    assert repr(ours) == repr(theirs)                     # repr: NaN == NaN here


@settings(max_examples=40, deadline=None)
@given(ndim=st.integers(0, 4), d0=st.integers(-6, 6), d1=st.integers(-6, 6),
       perm=st.lists(st.integers(-5, 5), max_size=5))
def test_transpose_and_permute_dims_match_pytorch(ndim, d0, d1, perm):
    torch = pytest.importorskip("torch")
    shape = (2, 3, 1, 4)[:ndim]

    def outcome(lib, fn):
        x = lib.tensor(np.arange(float(np.prod(shape))).reshape(shape))
        try:
            return fn(x).tolist()
        except (IndexError, RuntimeError, TypeError) as e:
            return type(e).__name__, str(e).split(":")[-1].strip()[:60]
    for fn in (lambda x: x.transpose(d0, d1), lambda x: x.permute(*perm)):
        ours, theirs = outcome(tc, fn), outcome(torch, fn)
        assert (ours == theirs) or (ours[0] == theirs[0] == "RuntimeError"), (ours, theirs)


@pytest.mark.parametrize("args,kwargs", [
    (("cpu",), {}), (("float64",), {}), (("cpu", "float64"), {}), (("float64", True), {}),
    (("float64", False, True), {}), (("cpu", "float32", True, True), {}), ((), {"copy": True}),
    ((), {"dtype": "float64", "device": "cpu"}), (("like",), {}), (("like", True, True), {}),
    (("int64",), {"non_blocking": True}),
])
def test_to_arguments_match_pytorch(torch, args, kwargs):
    def case(lib):
        x = lib.tensor([1.5, -2.0])
        like = lib.zeros(1, dtype=lib.float64)

        def arg(a):
            return like if a == "like" else getattr(lib, a) if a in ("float64", "float32", "int64") else a
        y = x.to(*[arg(a) for a in args], **{k: arg(v) for k, v in kwargs.items()})
        return y.tolist(), str(y.dtype).replace("torch.", ""), y is x
    assert_same(torch, case)


def test_to_with_a_bad_argument_is_clear():
    with pytest.raises(TypeError, match="to\\(\\): expected a device, a dtype or a tensor"):
        tc.ones(1).to([1])
    with pytest.raises(TypeError, match="after the boolean flags"):
        tc.ones(1).to(True, "cpu")
