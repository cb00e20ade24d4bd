"""Adagrad, exactly PyTorch's ``torch.optim.Adagrad`` rule (Duchi, Hazan & Singer 2011),
stated by :func:`adagrad_update_reference`.

The state of a parameter is ``step`` (0-d float32) and ``sum``.  As in PyTorch, the
state of every parameter given to the constructor is made at once (so a state_dict
lists them all), and the accumulator starts at the constructor's
``initial_accumulator_value`` whatever a group says.  There is no fused kernel yet
(family ``"optim"``, name ``"adagrad_update"``): the rule below runs in both modes.
"""
from ..backend import array_module
from .optimizer import ElementwiseOptimizer, _step_count, check_hyper


def adagrad_update_reference(p, g, state_sum, lr, lr_decay, weight_decay, eps, step, maximize):
    """One Adagrad step for one parameter, in place; t = ``step`` (1, 2, ... after the increment)::

        g   = -g                                  if maximize
        g   = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s   = s + g * g                           (state_sum, starts at initial_accumulator_value)
        p   = p - clr * g / (sqrt(s) + eps)
    """
    xp = array_module(p)
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    p -= clr * (g / (xp.sqrt(state_sum) + eps))


class Adagrad(ElementwiseOptimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
    foreach=None, *, maximize=False, fused=None)``, as PyTorch (``differentiable`` is not
    supported; ``foreach`` and ``fused`` are kept in the groups and choose nothing)."""

    update_name = "adagrad_update"
    update_reference = staticmethod(adagrad_update_reference)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, fused=None):
        op = "Adagrad"
        check_hyper(op, "learning rate", lr)
        check_hyper(op, "lr_decay value", lr_decay)
        check_hyper(op, "weight_decay value", weight_decay)
        check_hyper(op, "initial_accumulator_value value", initial_accumulator_value)
        check_hyper(op, "epsilon value", eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=bool(maximize), fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:           # PyTorch makes Adagrad's state up front
            for p in group["params"]:
                self.state[p] = {"step": _step_count(), **self.init_state(p, group)}

    def init_state(self, p, group):
        xp = array_module(p.array)
        return {"sum": xp.full_like(p.array, self.defaults["initial_accumulator_value"])}

    def update_args(self, state, group):
        return (state["sum"], float(group["lr"]), float(group["lr_decay"]), float(group["weight_decay"]),
                float(group["eps"]), float(state["step"]), bool(group["maximize"]))
