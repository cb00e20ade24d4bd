"""A dropped fully-connected weight gradient is reused by the next backward, never while anyone holds it.

``zero_grad()`` gives a large CPU ``.grad`` back (``backend.drop_grad``) and ``linear``'s
backward writes the next weight gradient into it, so AlexNet's 151 MB fc6 gradient is not
mapped and page-faulted afresh every step.  PyTorch's semantics stay: ``.grad`` is
populated after every backward, and a gradient the user kept is never overwritten.
"""
import numpy as np
import pytest

import tinyconv
import tinyconv.nn.functional as F
from tinyconv import backend, nn

BIG = (512, 1024)       # 2 MB in float32: over backend.RECYCLE_GRAD_BYTES


@pytest.fixture(autouse=True)
def _clean_pool():
    backend.free_workspace()
    yield
    backend.free_workspace()


def _step(layer, x, opt=None):
    (opt or layer).zero_grad()
    layer(x).square().sum().backward()
    return layer.weight.grad


def test_the_next_backward_reuses_a_dropped_weight_gradient():
    layer = nn.Linear(BIG[1], BIG[0])
    x = tinyconv.randn(4, BIG[1])
    first = _step(layer, x).array
    address = first.__array_interface__["data"][0]
    del first
    again = _step(layer, x).array           # zero_grad gave it back, backward took it again
    assert again.__array_interface__["data"][0] == address


def test_a_gradient_the_user_keeps_is_never_overwritten():
    layer = nn.Linear(BIG[1], BIG[0])
    opt = tinyconv.optim.SGD(layer.parameters(), lr=0.1)
    x = tinyconv.randn(4, BIG[1])
    kept = _step(layer, x, opt)             # held by the user across zero_grad
    kept_view = _step(layer, x * 2, opt).array[:3]   # only a view of this one is kept
    snapshot, view_snapshot = kept.array.copy(), kept_view.copy()
    third = _step(layer, x * 3, opt)
    np.testing.assert_array_equal(kept.array, snapshot)
    np.testing.assert_array_equal(kept_view, view_snapshot)
    assert not np.shares_memory(third.array, kept.array) and not np.shares_memory(third.array, kept_view)


def test_reused_memory_gives_the_same_gradients_as_fresh_memory():
    tinyconv.manual_seed(0)
    layer = nn.Linear(BIG[1], BIG[0])
    x = tinyconv.randn(4, BIG[1])
    grads = []
    for _ in range(3):                      # 1st: fresh memory; then the recycled one
        grads.append(_step(layer, x).array.copy())
    w, xa = layer.weight.array, x.array
    y = xa @ w.T + layer.bias.array
    want = (2 * y).T @ xa                   # d/dW sum((xW^T + b)^2)
    for g in grads:
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-4)


def test_small_gradients_are_simply_dropped():
    p = tinyconv.zeros(3, requires_grad=True)
    F.linear(tinyconv.ones(2, 3), p.reshape(1, 3)).sum().backward()
    backend.drop_grad(p)
    assert p.grad is None and not backend._recycled
