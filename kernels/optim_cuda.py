"""CUDA launchers for ``optim.cu``: fused SGD and Adam steps, torch.optim's updates.

Fast-kernel contracts (family ``optim``), as tinyconv.optim calls them:

    sgd_update(w, grad, v, lr, momentum, dampening, weight_decay, nesterov, first_step) -> None
    adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                weight_decay, step, maximize, decoupled) -> None

Each updates the parameter and its state in place (``v`` may be None when momentum is 0,
``max_exp_avg_sq`` None without amsgrad); the arrays are C-contiguous, of one shape and
dtype (checked before launching: the kernels index every array with the same i < n).
The rules are stated by ``sgd_update_reference`` (tinyconv/optim/sgd.py) and
``adam_update_reference`` (tinyconv/optim/adam.py).
"""
import math

import numpy as np

from .cuda_loader import launch, xp_of
from .optim_args import adam_arrays, check_same

KERNELS = {"sgd_update_kernel": True, "adam_update_kernel": True}


def sgd_update(w, grad, v, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    xp = xp_of(w)
    check_same("sgd_update", [("w", w), ("grad", grad)] + ([] if v is None else [("v", v)]))
    if v is None:
        if momentum != 0:
            raise ValueError("sgd_update: momentum != 0 needs a momentum buffer v")
        v = xp.empty((0,), dtype=w.dtype)     # never read or written when momentum == 0
    launch("optim", "sgd_update_kernel", w.dtype, w.size,
           (w, grad, v, np.int64(w.size), np.float64(lr), np.float64(momentum), np.float64(dampening),
            np.float64(weight_decay), np.int32(bool(nesterov)), np.int32(bool(first_step))))


def adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step,
                maximize=False, decoupled=False):
    adam_arrays(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq)
    if step < 1:
        raise ValueError(f"adam_update: step is the count after this step's increment (>= 1), got {step}")
    amsgrad = max_exp_avg_sq is not None
    vmax = max_exp_avg_sq if amsgrad else xp_of(p).empty((0,), dtype=p.dtype)   # never read or written
    launch("optim", "adam_update_kernel", p.dtype, p.size,
           (p, g, exp_avg, exp_avg_sq, vmax, np.int64(p.size), np.float64(beta1), np.float64(beta2),
            np.float64(eps), np.float64(weight_decay), np.float64(1 - lr * weight_decay),
            np.float64(lr / (1 - beta1 ** step)), np.float64(math.sqrt(1 - beta2 ** step)),
            np.int32(amsgrad), np.int32(bool(maximize)), np.int32(bool(decoupled))))
