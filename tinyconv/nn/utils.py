"""Gradient clipping, as ``torch.nn.utils``: ``clip_grad_norm_``, ``clip_grad_value_``,
``get_total_norm`` and ``clip_grads_with_norm_``.

Call between ``loss.backward()`` and ``optimizer.step()``::

    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)

The total norm of order p over all gradients is the p-norm of the vector of each
gradient's own p-norm, which equals the p-norm of all their entries concatenated::

    ||g||_p   = (sum |g_i|^p)^(1/p)       p = inf: max |g_i|,  p = -inf: min |g_i|,
                                          p = 0: the number of non-zero entries
    coef      = min(max_norm / (total + 1e-6), 1)
    g         = g * coef                  for every gradient, in place

PyTorch's ``foreach`` argument is accepted and ignored (there is one implementation).
"""
import math
import types
import warnings

import numpy as np

from ..autograd import Tensor
from ..backend import array_module, device_of, to_device


def _vector_norm(a, p):
    """``torch.linalg.vector_norm(a, p)`` of a raw array, a 0-d array in a's dtype."""
    xp = array_module(a)
    x = xp.abs(a.reshape(-1))
    if math.isinf(p):
        if x.size == 0:
            raise RuntimeError(f"linalg.vector_norm cannot compute the {p} norm on an empty tensor because "
                               "the operation does not have an identity")
        return x.max() if p > 0 else x.min()
    if p == 0:
        return (x != 0).sum().astype(a.dtype)
    if p == 1:
        return x.sum()
    if p == 2:
        return xp.sqrt((x * x).sum())
    return (x ** p).sum() ** (1.0 / p)


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of all ``tensors`` together (as if concatenated), a 0-d Tensor
    on the first tensor's device; ``tensor(0.)`` when there are none."""
    arrays = [t.array for t in _as_list(tensors)]
    norm_type = float(norm_type)
    if not arrays:
        return Tensor(np.array(0.0, dtype=np.float32))
    first = arrays[0]
    xp = array_module(first)
    norms = xp.stack([to_device(_vector_norm(a, norm_type), device_of(first)) for a in arrays])
    total = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           "non-finite, so it cannot be clipped. To disable this error and scale the "
                           "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return Tensor(total)


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale every gradient in place by ``min(max_norm / (total_norm + 1e-6), 1)``."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    total = total_norm.array if isinstance(total_norm, Tensor) else total_norm
    xp = array_module(total)
    coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)        # NaN stays NaN, as torch.clamp
    with np.errstate(invalid="ignore"):     # inf * 0 under a non-finite norm: NaN, silently as PyTorch
        for g in grads:
            g.array *= to_device(coef, device_of(g.array)).astype(g.dtype)
            g._version_counter.n += 1                  # PyTorch's g.mul_(coef)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients of ``parameters`` (a Tensor or an iterable) to a total norm of at most
    ``max_norm``, in place; returns the total norm before clipping (a 0-d Tensor).

    With ``error_if_nonfinite`` a NaN or infinite total norm is a RuntimeError; without it
    the gradients are scaled by the non-finite coefficient anyway, as PyTorch does."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                          stacklevel=2)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of ``parameters`` into ``[-clip_value, clip_value]``, in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.array
            array_module(g).clip(g, -clip_value, clip_value, out=g)
            p.grad._version_counter.n += 1

