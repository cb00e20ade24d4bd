"""CPU kernel (Numba) for the ``optim`` family: SGD's update fused into one pass.

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
"""
import numpy as np
from numba import njit, prange

from ._numba_threads import threads_for


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
