"""The autograd core: graph semantics, dtype rules, and every math op against PyTorch."""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.autograd import Function


def t64(a, grad=True):
    return tc.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# --------------------------------------------------------------------------- construction

def test_dtype_inference_follows_pytorch():
    assert tc.tensor(1.5).dtype == np.float32
    assert tc.tensor([1.0, 2.0]).dtype == np.float32
    assert tc.tensor([1, 2]).dtype == np.int64
    assert tc.tensor([True]).dtype == np.bool_
    assert tc.tensor(np.zeros(2, np.float64)).dtype == np.float64
    assert tc.tensor(np.zeros(2, np.int32)).dtype == np.int32
    assert tc.tensor([1, 2], dtype=tc.float64).dtype == np.float64


def test_tensor_copies_and_reports_properties():
    a = np.ones((2, 3), np.float32)
    t = tc.tensor(a, requires_grad=True)
    a[0, 0] = 5
    assert t.array[0, 0] == 1
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and t.device == "cpu"
    assert str(t.device) == "cpu" and t.is_leaf and t.requires_grad


def test_only_float_tensors_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tc.tensor([1, 2], requires_grad=True)


def test_numpy_item_detach():
    t = tc.tensor([[3.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    assert t.detach().numpy()[0, 0] == 3.0 and t.item() == 3.0
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        tc.tensor([1.0, 2.0]).item()


def test_cuda_request_without_cupy_or_gpu_is_clear():
    with pytest.raises(RuntimeError, match="CuPy|GPU"):
        tc.tensor([1.0], device="cuda")
    with pytest.raises(ValueError, match="device"):
        tc.tensor([1.0], device="tpu")


# --------------------------------------------------------------------------- graph

def test_backward_accumulates_uses_and_leaves():
    x = t64([1.0, 2.0, 3.0])
    y = (x * x + x).sum()          # x used three times: dy/dx = 2x + 1
    y.backward()
    np.testing.assert_allclose(x.grad.array, [3.0, 5.0, 7.0])
    (x * 2).sum().backward()       # a second graph accumulates into .grad
    np.testing.assert_allclose(x.grad.array, [5.0, 7.0, 9.0])


def test_diamond_graph_sums_both_paths():
    x = t64([2.0])
    a = x * 3
    b = a * a + a.exp()            # a feeds two ops
    b.backward(tc.tensor(np.ones(1)))
    np.testing.assert_allclose(x.grad.array, 3 * (2 * 6.0 + np.exp(6.0)))


def test_retain_graph_and_freed_buffers():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.array, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_saved_buffers_released_after_backward():
    x = t64([1.0, 2.0])
    y = x * x
    fn = y.grad_fn
    assert fn.saved_tensors is not None and len(fn.saved_tensors) == 2
    y.sum().backward()
    assert fn.saved_tensors is None


def test_graph_does_not_hold_intermediate_tensors():
    import gc
    import weakref
    x = t64(np.ones(4))
    h = x * 2.0
    ref = weakref.ref(h)
    y = (h + 1.0).sum()            # Add saves no input: h may be freed once dropped
    del h
    gc.collect()
    assert ref() is None
    y.backward()
    np.testing.assert_allclose(x.grad.array, 2.0)


def test_no_grad_records_nothing():
    x = t64([1.0])
    with tc.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @tc.no_grad()
    def f(v):
        return v * 3
    assert not f(x).requires_grad and tc.is_grad_enabled()


def test_retain_grad_on_intermediate():
    x = t64([1.0, -2.0])
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.array, 2 * np.array([3.0, -6.0]))


def test_backward_needs_scalar_or_grad():
    x = t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(tc.tensor(np.ones(3)))


def test_deep_chain_has_no_recursion_limit():
    x = t64([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


# --------------------------------------------------------------------------- type promotion

@pytest.mark.parametrize("a,b", [
    (np.float32, np.float64), (np.int64, np.float32), (np.int32, np.int64),
    (np.bool_, np.int64), (np.float64, np.int32), (np.bool_, np.float32)])
def test_promotion_matches_pytorch(torch, a, b):
    x, y = np.ones(3, a), np.ones(3, b)
    for op in ("__add__", "__mul__", "__sub__", "__truediv__"):
        if a == np.bool_ and b == np.bool_ or (op == "__sub__" and np.bool_ in (a, b)):
            continue
        got = getattr(tc.tensor(x), op)(tc.tensor(y)).dtype
        want = getattr(torch.from_numpy(x), op)(torch.from_numpy(y)).dtype
        assert str(got) == str(want).replace("torch.", ""), (op, a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_scalar_promotion_matches_pytorch(torch, dtype, scalar):
    x = np.ones(3, dtype)
    got = (tc.tensor(x) * scalar).dtype
    want = (torch.from_numpy(x) * scalar).dtype
    assert str(got) == str(want).replace("torch.", "")


def test_zero_dim_tensor_yields_to_dimensioned(torch):
    got = (tc.tensor(np.float64(2.0)) * tc.tensor(np.ones(2, np.float32))).dtype
    want = (torch.tensor(2.0, dtype=torch.float64) * torch.ones(2)).dtype
    assert got == np.float32 and want == torch.float32


def test_mixed_dtype_grads_flow_back_in_each_dtype():
    a = tc.tensor(np.ones(2, np.float32), requires_grad=True)
    b = tc.tensor(np.ones(2, np.float64), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


# --------------------------------------------------------------------------- ops vs PyTorch

def _compare(torch, fn_tc, fn_torch, *arrays, rtol=1e-10):
    xs = [t64(a) for a in arrays]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y, yt = fn_tc(*xs), fn_torch(*ts)
    np.testing.assert_allclose(y.array, yt.detach().numpy(), rtol=rtol, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(yt.shape)
    y.backward(tc.tensor(g))
    yt.backward(torch.tensor(g))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.array, t.grad.numpy(), rtol=rtol, atol=1e-12)


R = np.random.default_rng(0)
CASES = {
    "add_broadcast": (lambda a, b: a + b, lambda a, b: a + b, (R.random((3, 1, 4)), R.random((5, 1)))),
    "sub_broadcast": (lambda a, b: a - b, lambda a, b: a - b, (R.random((2, 3)), R.random(3))),
    "mul_broadcast": (lambda a, b: a * b, lambda a, b: a * b, (R.random((4, 1)), R.random((1, 3)))),
    "div": (lambda a, b: a / b, lambda a, b: a / b, (R.random((2, 3)), R.random((2, 3)) + 0.5)),
    "pow_tensor": (lambda a, b: a ** b, lambda a, b: a ** b, (R.random((3,)) + 0.5, R.random((3,)))),
    "pow_scalar": (lambda a: a ** 3, lambda a: a ** 3, (R.standard_normal((2, 3)),)),
    "rpow": (lambda a: 2.0 ** a, lambda a: 2.0 ** a, (R.standard_normal(4),)),
    "rsub_rdiv": (lambda a: (1.0 - a) + 2.0 / (a + 3.0), lambda a: (1.0 - a) + 2.0 / (a + 3.0),
                  (R.random(4),)),
    "neg_exp_log": (lambda a: (-a).exp() + (a + 2).log(), lambda a: (-a).exp() + (a + 2).log(),
                    (R.random((2, 2)),)),
    "matmul_2d": (lambda a, b: a @ b, lambda a, b: a @ b, (R.random((3, 4)), R.random((4, 2)))),
    "matmul_batched_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b,
                                 (R.random((2, 1, 3, 4)), R.random((5, 4, 2)))),
    "matmul_vec_mat": (lambda a, b: a @ b, lambda a, b: a @ b, (R.random(4), R.random((2, 4, 3)))),
    "matmul_mat_vec": (lambda a, b: a @ b, lambda a, b: a @ b, (R.random((2, 3, 4)), R.random(4))),
    "matmul_vec_vec": (lambda a, b: a @ b, lambda a, b: a @ b, (R.random(4), R.random(4))),
    "sum_all": (lambda a: a.sum(), lambda a: a.sum(), (R.random((2, 3)),)),
    "sum_axis_keep": (lambda a: a.sum(axis=1, keepdims=True), lambda a: a.sum(dim=1, keepdim=True),
                      (R.random((2, 3, 4)),)),
    "sum_dims": (lambda a: a.sum(dim=(0, 2)), lambda a: a.sum(dim=(0, 2)), (R.random((2, 3, 4)),)),
    "mean_neg_axis": (lambda a: a.mean(axis=-1), lambda a: a.mean(dim=-1), (R.random((2, 3, 4)),)),
    "mean_all": (lambda a: a.mean(), lambda a: a.mean(), (R.random((3, 5)),)),
    "max_axis": (lambda a: a.max(dim=1).values, lambda a: a.max(dim=1).values, (R.random((3, 5)),)),
    "amax_all_keep": (lambda a: a.amax(keepdim=True, dim=(0, 1)), lambda a: a.amax(dim=(0, 1), keepdim=True),
                     (R.random((3, 5)),)),
    "max_ties": (lambda a: a.amax(dim=1), lambda a: a.amax(dim=1), (np.array([[1.0, 3.0, 3.0], [2, 2, 2]]),)),
    "max_dim_ties": (lambda a: a.max(1)[0], lambda a: a.max(1)[0], (np.array([[1.0, 3.0, 3.0], [2, 2, 2]]),)),
    "reshape_view": (lambda a: a.reshape(6, 2).view(3, -1), lambda a: a.reshape(6, 2).view(3, -1),
                     (R.random((3, 4)),)),
    "permute_T": (lambda a: a.permute(2, 0, 1).T, lambda a: a.permute(2, 0, 1).permute(2, 1, 0),
                  (R.random((2, 3, 4)),)),
    "transpose": (lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), (R.random((2, 3, 4)),)),
    "flatten": (lambda a: a.flatten(1), lambda a: a.flatten(1), (R.random((2, 3, 4)),)),
    "slicing": (lambda a: a[1:, ::2, None, -1], lambda a: a[1:, ::2, None, -1], (R.random((3, 5, 4)),)),
    "fancy_index_repeats": (lambda a: a[[0, 2, 0]], lambda a: a[[0, 2, 0]], (R.random((3, 2)),)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_pytorch(torch, name):
    f, ft, arrays = CASES[name]
    _compare(torch, f, ft, *arrays)


@pytest.mark.parametrize("name", sorted(set(CASES) - {"max_ties", "max_dim_ties"}))  # ties: no gradient
def test_op_gradcheck(name):
    f, _, arrays = CASES[name]
    assert tc.gradcheck(f, [t64(a) for a in arrays])


def test_float32_ops_match_pytorch(torch):
    a, b = R.random((8, 16)).astype(np.float32), R.random((16, 4)).astype(np.float32)
    x, w = tc.tensor(a, requires_grad=True), tc.tensor(b, requires_grad=True)
    xt, wt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    y = ((x @ w).exp() / 3.0).mean()
    yt = ((xt @ wt).exp() / 3.0).mean()
    y.backward()
    yt.backward()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.item(), yt.item(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w.grad.array, wt.grad.numpy(), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- gradcheck itself

class WrongSquare(Function):
    """y = x^2 with a deliberately wrong backward (x instead of 2x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        (x,) = self.saved_tensors
        return gy * x


def test_gradcheck_catches_wrong_backward():
    x = t64([0.5, -1.5, 2.0])
    with pytest.raises(tc.GradcheckError, match=r"input 0 .* index"):
        tc.gradcheck(lambda v: WrongSquare()(v), [x])


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        tc.gradcheck(lambda v: v * 2, [tc.tensor([1.0], requires_grad=True)])


# --------------------------------------------------------------------------- bad input

def test_matmul_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        tc.ones(2, 3) @ tc.ones(4, 5)


def test_reshape_and_permute_errors_are_clear():
    with pytest.raises(ValueError, match="reshape: cannot reshape a tensor of shape"):
        tc.ones(2, 3).reshape(4, 2)
    with pytest.raises(RuntimeError, match="permute"):     # PyTorch's type and words
        tc.ones(2, 3).permute(0, 0)
    with pytest.raises(IndexError, match=r"sum\(\): Dimension out of range"):
        tc.ones(2, 3).sum(dim=2)


def test_function_checks_dtypes_and_inputs():
    with pytest.raises(TypeError, match="one dtype"):
        tc.math_ops.Add()(tc.ones(2), tc.ones(2, dtype=tc.float64))
    with pytest.raises(TypeError, match="must be a Tensor"):
        tc.math_ops.Add()(tc.ones(2), np.ones(2))


def test_manual_seed_reproducible():
    tc.manual_seed(3)
    a = tc.randn(4).array.copy()
    tc.manual_seed(3)
    np.testing.assert_array_equal(a, tc.randn(4).array)
    state = tc.get_rng_state()
    b = tc.rand(3).array.copy()
    tc.set_rng_state(state)
    np.testing.assert_array_equal(b, tc.rand(3).array)


def test_leaf_grads_never_alias_each_other_or_the_seed():
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    seed = np.ones(2)
    (a + b).backward(tc.tensor(seed))          # Add hands the same array to both inputs
    a.grad.array[...] = 0                       # zeroing one grad in place ...
    np.testing.assert_array_equal(b.grad.array, [1.0, 1.0])   # ... leaves the other alone
    np.testing.assert_array_equal(seed, [1.0, 1.0])
    w = t64(np.ones((2, 2)))
    (w.reshape(4) * 2.0).sum().backward()      # Reshape's gradient is a view of another array
    w.grad.array[...] = 7
    assert w.grad.array.base is None


def test_fresh_leaf_gradient_is_taken_without_a_copy():
    x = t64([1.0, 2.0])
    y = x * 3.0                                # Mul's backward makes a new array for x
    fn, made = y.grad_fn, []
    orig = fn.backward
    fn.backward = lambda gy: tuple(made.append(g) or g for g in orig(gy))
    y.sum().backward()
    assert x.grad.array is made[0]              # taken over, not copied


# --------------------------------------------------------------------------- scratch buffers


def test_workspace_is_reused_grown_and_per_thread():
    import threading

    from tinyconv.backend import free_workspace, workspace
    like = np.zeros(1)
    a = workspace("test.a", (2, 3), np.float32, like)
    assert a.shape == (2, 3) and a.dtype == np.float32 and a.flags.c_contiguous
    b = workspace("test.a", (3, 2), np.float32, like)            # same buffer, new shape
    assert np.shares_memory(a, b)
    assert not np.shares_memory(a, workspace("test.b", (2, 3), np.float32, like))
    assert not np.shares_memory(a, workspace("test.a", (2, 3), np.float64, like))
    big = workspace("test.a", (10, 10), np.float32, like)        # grown: a new buffer
    assert big.shape == (10, 10) and not np.shares_memory(a, big)
    other = []
    t = threading.Thread(target=lambda: other.append(workspace("test.a", (10, 10), np.float32, like)))
    t.start()
    t.join()
    assert not np.shares_memory(big, other[0])
    free_workspace()
    assert not np.shares_memory(big, workspace("test.a", (10, 10), np.float32, like))
    free_workspace()


def test_recycled_arrays_come_back_by_shape_and_dtype():
    from tinyconv.backend import free_workspace, recycle, recycled_empty
    like = np.zeros(1)
    free_workspace()
    a = recycled_empty((3, 4), np.float32, like)
    recycle(a)
    assert recycled_empty((3, 4), np.float64, like) is not a
    assert recycled_empty((4, 3), np.float32, like) is not a
    assert recycled_empty((3, 4), np.float32, like) is a        # taken: gone from the pool
    assert recycled_empty((3, 4), np.float32, like) is not a
    for _ in range(10):                                         # the pool keeps a few per shape
        recycle(np.empty((3, 4), np.float32))
    from tinyconv import backend
    assert len(backend._recycled[(3, 4), np.dtype(np.float32)]) == backend._RECYCLED_PER_KEY
    free_workspace()
    assert not backend._recycled
