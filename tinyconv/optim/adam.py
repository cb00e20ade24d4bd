"""Adam and AdamW, exactly PyTorch's ``torch.optim.Adam`` / ``torch.optim.AdamW`` rule
(Kingma & Ba 2015; decoupled weight decay: Loshchilov & Hutter 2019; amsgrad: Reddi et
al. 2018), stated by :func:`adam_update_reference`.

The state of a parameter is ``step`` (a 0-d float32 array, as PyTorch stores it),
``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad, ``max_exp_avg_sq`` (v_max).

Fast-kernel contract (family ``"optim"``, name ``"adam_update"``, in
``tinyconv/kernels/optim_numba.py`` for the CPU or ``optim_cuda.py`` for CuPy)::

    adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                weight_decay, step, maximize, decoupled) -> None

* ``p``, ``g``, ``exp_avg``, ``exp_avg_sq``: arrays of one shape and dtype (float32 or
  float64), C-contiguous, on one device; ``max_exp_avg_sq`` the same, or None when
  amsgrad is off.
* Updates ``p``, ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``) **in place** by
  the rule of :func:`adam_update_reference` and returns None; it never writes ``g``
  (the parameter's ``.grad``).
* ``step`` is t after this step's increment (a Python float, >= 1); ``lr``, ``beta1``,
  ``beta2``, ``eps``, ``weight_decay`` Python floats; ``maximize``, ``decoupled`` bools.

:func:`adam_update_reference` is the NumPy/CuPy statement of that contract, which a
fast kernel must match to float rounding.
"""
import math
import numbers

from ..backend import array_module
from .optimizer import ElementwiseOptimizer, check_hyper


def adam_update_reference(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                          weight_decay, step, maximize, decoupled):
    """One Adam/AdamW step for one parameter, in place on ``p`` and the state arrays.

    With g the gradient and t = ``step`` (1, 2, ... after this step's increment)::

        g  = -g                                   if maximize
        p  = p * (1 - lr * weight_decay)          if decoupled (AdamW)
        g  = g + weight_decay * p                 otherwise (L2 penalty, plain Adam)
        m  = m + (1 - beta1) * (g - m)            first moment   (= beta1 m + (1 - beta1) g)
        v  = beta2 * v + (1 - beta2) * g * g      second moment
        v_max = max(v_max, v);  v = v_max         if amsgrad (``max_exp_avg_sq`` not None)
        p  = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """
    xp = array_module(p)
    if maximize:
        g = -g                                 # new arrays from here: .grad stays untouched
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    exp_avg += (1 - beta1) * (g - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    step_size = lr / (1 - beta1 ** step)
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
    p -= step_size * (exp_avg / (xp.sqrt(v) / bias_correction2_sqrt + eps))


class Adam(ElementwiseOptimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    foreach=None, maximize=False, fused=None, decoupled_weight_decay=False)``, as PyTorch.

    ``decoupled_weight_decay=True`` is AdamW.  ``foreach`` and ``fused`` are accepted and
    kept in the groups for PyTorch's state_dict layout, but choose nothing: tinyconv runs
    its fused kernel in ``"fast"`` kernel mode and the NumPy rule in ``"reference"`` mode.
    PyTorch's ``capturable`` and ``differentiable`` (CUDA graphs, autograd through the
    step) and tensor-valued ``lr``/``betas`` are not supported.
    """

    update_name = "adam_update"
    update_reference = staticmethod(adam_update_reference)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, fused=None, decoupled_weight_decay=False):
        op = type(self).__name__
        check_hyper(op, "learning rate", lr)
        check_hyper(op, "epsilon value", eps)
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"{op}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_hyper(op, "beta parameter at index 0", betas[0], high=1.0)
        check_hyper(op, "beta parameter at index 1", betas[1], high=1.0)
        check_hyper(op, "weight_decay value", weight_decay)
        if not all(isinstance(b, numbers.Real) and not isinstance(b, numbers.Integral) for b in betas):
            raise ValueError(f"{op}: betas must be either both floats or both Tensors")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=bool(amsgrad),
                        maximize=bool(maximize), foreach=foreach, fused=fused,
                        decoupled_weight_decay=bool(decoupled_weight_decay))
        super().__init__(params, defaults)

    def init_state(self, p, group):
        xp = array_module(p.array)
        state = {"exp_avg": xp.zeros_like(p.array), "exp_avg_sq": xp.zeros_like(p.array)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p.array)
        return state

    def writes(self, group):
        """Two with decoupled weight decay (PyTorch's ``p.mul_`` then ``p.addcdiv_``), else one."""
        return 2 if group["decoupled_weight_decay"] and group["weight_decay"] != 0 else 1

    def update_args(self, state, group):
        beta1, beta2 = group["betas"]
        max_exp_avg_sq = state.get("max_exp_avg_sq") if group["amsgrad"] else None
        return (state["exp_avg"], state["exp_avg_sq"], max_exp_avg_sq, float(group["lr"]),
                float(beta1), float(beta2), float(group["eps"]),
                float(group["weight_decay"]), float(state["step"]), bool(group["maximize"]),
                bool(group["decoupled_weight_decay"]))


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False, foreach=None, fused=None)``: Adam with decoupled weight decay, as PyTorch
    (``p = p * (1 - lr * weight_decay)`` before the Adam step, not ``g += weight_decay * p``)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         fused=fused, decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:        # as PyTorch's AdamW.__setstate__
            group["decoupled_weight_decay"] = True
