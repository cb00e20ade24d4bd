"""Adadelta, exactly PyTorch's ``torch.optim.Adadelta`` rule (Zeiler 2012), stated by
:func:`adadelta_update_reference`.

The state of a parameter is ``step`` (0-d float32), ``square_avg`` and ``acc_delta``.
There is no fused kernel yet (family ``"optim"``, name ``"adadelta_update"``): the rule
below runs in both kernel modes.
"""
from ..backend import array_module
from .optimizer import ElementwiseOptimizer, check_hyper


def adadelta_update_reference(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step for one parameter, in place on ``p``, ``square_avg`` and ``acc_delta``::

        g     = -g                                     if maximize
        g     = g + weight_decay * p
        v     = rho * v + (1 - rho) * g * g            (square_avg)
        delta = sqrt(u + eps) / sqrt(v + eps) * g      (u: acc_delta, from the previous steps)
        u     = rho * u + (1 - rho) * delta * delta
        p     = p - lr * delta
    """
    xp = array_module(p)
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    p -= lr * delta


class Adadelta(ElementwiseOptimizer):
    """``Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, maximize=False)``,
    as PyTorch (``capturable`` and ``differentiable`` are not supported; ``foreach`` is kept
    in the groups and chooses nothing)."""

    update_name = "adadelta_update"
    update_reference = staticmethod(adadelta_update_reference)

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, maximize=False):
        op = "Adadelta"
        check_hyper(op, "learning rate", lr)
        check_hyper(op, "rho value", rho, high=1.0, closed=True)
        check_hyper(op, "epsilon value", eps)
        check_hyper(op, "weight_decay value", weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=bool(maximize),
                        foreach=foreach)
        super().__init__(params, defaults)

    def init_state(self, p, group):
        xp = array_module(p.array)
        return {"square_avg": xp.zeros_like(p.array), "acc_delta": xp.zeros_like(p.array)}

    def update_args(self, state, group):
        return (state["square_avg"], state["acc_delta"], float(group["lr"]), float(group["rho"]),
                float(group["eps"]), float(group["weight_decay"]), bool(group["maximize"]))
