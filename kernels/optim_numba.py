"""CPU kernels (Numba) for the ``optim`` family: SGD's and Adam's updates, each fused into one pass.

SGD
---

Must equal ``sgd_update_reference`` in ``tinyconv/optim/sgd.py`` to float rounding; its
contract (documented there) is::

    sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step) -> None

updating ``p`` and ``buf`` in place (``buf`` is None when momentum == 0), never writing ``g``.
Per element, with PyTorch's rule::

    d   = g + weight_decay * p
    buf = d                                   on the first step
    buf = momentum * buf + (1 - dampening) * d   afterwards
    d   = d + momentum * buf  if nesterov  else  buf   (when momentum != 0)
    p   = p - lr * d

The reference makes one full pass over memory per line (and temporaries); here each
element of p, g and buf is read once and p, buf written once, which matters for
AlexNet's 61 M parameters (244 MB per array in float32).  The arithmetic is done in the
parameter's dtype, as the reference does it.

Adam / AdamW
------------
Must equal ``adam_update_reference`` in ``tinyconv/optim/adam.py`` to float rounding::

    adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                weight_decay, step, maximize, decoupled) -> None

updating ``p``, ``exp_avg`` (m), ``exp_avg_sq`` (v) and ``max_exp_avg_sq`` (None unless
amsgrad) in place, never writing ``g``.  Per element, with PyTorch's rule::

    d = -g if maximize else g
    w = p * (1 - lr * weight_decay)  if decoupled   else  p,  d = d + weight_decay * p
    m = m + (1 - beta1) * (d - m)
    v = beta2 * v + (1 - beta2) * d * d
    u = max(v_max, v) (stored in v_max) if amsgrad   else  v
    p = w - step_size * m / (sqrt(u) / bias_correction2_sqrt + eps)

with ``step_size = lr / (1 - beta1**step)`` and ``bias_correction2_sqrt =
sqrt(1 - beta2**step)`` computed once per call in float64, as PyTorch computes them in
Python.  The reference's eight array passes and temporaries become one read of p, g,
m, v (and v_max) and one write of p, m, v (and v_max).
"""
import math

import numpy as np
from numba import njit, prange

from ._numba_threads import threads_for
from .optim_args import adam_arrays


@njit(cache=True, parallel=True)
def _sgd(p, g, buf, has_buf, lr, momentum, undamped, weight_decay, nesterov, first_step):
    # the scalars arrive in p's dtype, so float32 parameters are updated in float32 arithmetic
    for i in prange(p.size):
        d = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        if has_buf:
            if first_step:
                b = d
            else:
                b = momentum * buf[i] + undamped * d     # undamped = 1 - dampening
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] = p[i] - lr * d


def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """One fused SGD step for one parameter, in place on ``p`` and ``buf``; equals the reference."""
    if p.dtype == np.float16:                  # Numba has no float16: update float32 copies, round back
        p32, buf32 = p.astype(np.float32), None if buf is None else buf.astype(np.float32)
        sgd_update(p32, g.astype(np.float32), buf32, lr, momentum, dampening, weight_decay, nesterov,
                   first_step)
        p[...] = p32
        if buf is not None:
            buf[...] = buf32
        return
    flat_p = p.reshape(-1)                     # a view: p is C-contiguous by the contract
    flat_g = np.ascontiguousarray(g).reshape(-1)
    has_buf = buf is not None
    flat_b = buf.reshape(-1) if has_buf else flat_p[:0]
    dt = p.dtype.type
    with threads_for(flat_p.size):
        _sgd(flat_p, flat_g, flat_b, has_buf, dt(lr), dt(momentum), dt(1 - dampening), dt(weight_decay),
             bool(nesterov), bool(first_step))


@njit(cache=True, parallel=True)
def _adam(p, g, m, v, vmax, amsgrad, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay,
          step_size, bc2_sqrt, maximize, decoupled):
    # scalars arrive in p's dtype (so float32 stays float32); decay = 1 - lr * weight_decay
    for i in prange(p.size):
        d = -g[i] if maximize else g[i]
        w = p[i]
        if weight_decay != 0:
            if decoupled:
                w = w * decay
            else:
                d = d + weight_decay * w
        mi = m[i] + one_minus_beta1 * (d - m[i])
        vi = beta2 * v[i] + one_minus_beta2 * d * d
        m[i] = mi
        v[i] = vi
        if amsgrad:
            u = vmax[i]
            if vi > u or vi != vi:             # max that keeps a NaN from either side, as np.maximum
                u = vi
            vmax[i] = u
            vi = u
        p[i] = w - step_size * (mi / (math.sqrt(vi) / bc2_sqrt + eps))


def adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step,
                maximize, decoupled):
    """One fused Adam/AdamW step for one parameter, in place; equals ``adam_update_reference``."""
    adam_arrays(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq)
    arrays = (p, exp_avg, exp_avg_sq) + (() if max_exp_avg_sq is None else (max_exp_avg_sq,))
    if p.dtype == np.float16:                  # Numba has no float16: update float32 copies, round back
        copies = [a.astype(np.float32) for a in arrays]
        amsgrad_copy = copies[3] if max_exp_avg_sq is not None else None
        adam_update(copies[0], g.astype(np.float32), copies[1], copies[2], amsgrad_copy, lr, beta1, beta2,
                    eps, weight_decay, step, maximize, decoupled)
        for a, c in zip(arrays, copies):
            a[...] = c
        return
    flat = [a.reshape(-1) for a in arrays]     # views: the state is C-contiguous by the contract
    amsgrad = max_exp_avg_sq is not None
    vmax = flat[3] if amsgrad else flat[0][:0]
    dt = p.dtype.type
    step_size = lr / (1 - beta1 ** step)
    bc2_sqrt = math.sqrt(1 - beta2 ** step)
    with threads_for(flat[0].size):
        _adam(flat[0], g.reshape(-1), flat[1], flat[2], vmax, amsgrad, dt(1 - beta1), dt(beta2),
              dt(1 - beta2), dt(eps), dt(weight_decay), dt(1 - lr * weight_decay), dt(step_size),
              dt(bc2_sqrt), bool(maximize), bool(decoupled))
