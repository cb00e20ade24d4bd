"""Gradient checking by central differences, in float64.

For a function ``f`` and a fixed random cotangent ``r`` (shape of the output), the
scalar ``L(x) = sum(f(x) * r)`` has gradient ``J^T r``: exactly what backward
computes.  Each input element ``x_i`` is nudged by ``+-eps`` and
``(L(x + eps e_i) - L(x - eps e_i)) / 2 eps`` is compared with the analytic value.
One backward pass and two forward passes per element prove every input's gradient.
"""
import numpy as np

from . import backend
from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def _scalar(out, r):
    xp = backend.array_module(out.array)
    return float(xp.sum(out.array.astype(np.float64) * r))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``fn``'s backward against central differences for every input that requires grad.

    ``fn(*inputs)`` must return one Tensor.  Inputs that require grad must be float64.
    Returns True, or raises :class:`GradcheckError` naming the worst element
    (input, index, numerical and analytic value).
    """
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 for finite differences, "
                            f"got {inputs[i].dtype}")
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    xp = backend.array_module(out.array)
    r = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    for i in checked:
        inputs[i].grad = None
    out.backward(Tensor(r.astype(out.dtype)))

    for i in checked:
        x = inputs[i]
        analytic = backend.to_device(x.grad.array, "cpu") if x.grad is not None \
            else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        flat = x.array.reshape(-1)       # a view: nudging it nudges x
        with no_grad():
            for j in range(flat.size):
                old = flat[j].item()
                flat[j] = old + eps
                plus = _scalar(fn(*inputs), r)
                flat[j] = old - eps
                minus = _scalar(fn(*inputs), r)
                flat[j] = old
                numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        err = np.abs(numeric - analytic) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            k = np.unravel_index(int(np.argmax(err)), err.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) gradient mismatch at index {k}: "
                f"numerical {numeric[k]:.10g}, analytic {analytic[k]:.10g} "
                f"({int((err > 0).sum())} of {err.size} elements outside atol={atol}, rtol={rtol})")
    return True
