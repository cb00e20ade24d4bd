"""CUDA launcher for ``optim.cu``: one fused SGD step, torch.optim.SGD's update.

Fast-kernel contract (family ``optim``), for whoever wires it into tinyconv.optim:

    sgd_update(w, grad, v, lr, momentum, dampening, weight_decay, nesterov, first_step) -> None

updates ``w`` and the momentum buffer ``v`` in place (``v`` may be None when momentum is 0);
all arrays contiguous, one dtype.
"""
import numpy as np

from .cuda_loader import launch, xp_of

KERNELS = {"sgd_update_kernel": True}


def sgd_update(w, grad, v, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    xp = xp_of(w)
    for name, a in (("w", w), ("grad", grad), ("v", v)):
        if a is not None and not a.flags.c_contiguous:
            raise ValueError(f"sgd_update: {name} must be C-contiguous (it is updated in place)")
    if v is None:
        if momentum != 0:
            raise ValueError("sgd_update: momentum != 0 needs a momentum buffer v")
        v = xp.empty((0,), dtype=w.dtype)     # never read or written when momentum == 0
    launch("optim", "sgd_update_kernel", w.dtype, w.size,
           (w, grad, v, np.int64(w.size), np.float64(lr), np.float64(momentum), np.float64(dampening),
            np.float64(weight_decay), np.int32(bool(nesterov)), np.int32(bool(first_step))))
