"""RMSprop, exactly PyTorch's ``torch.optim.RMSprop`` rule (Hinton's lecture 6e; Graves 2013
centered), stated by :func:`rmsprop_update_reference`.

The state of a parameter is ``step`` (0-d float32), ``square_avg`` and, when the
group asks for them, ``momentum_buffer`` and ``grad_avg``.  There is no fused kernel
yet (family ``"optim"``, name ``"rmsprop_update"``): the rule below runs in both kernel
modes.
"""
from ..backend import array_module
from .optimizer import ElementwiseOptimizer, check_hyper


def rmsprop_update_reference(p, g, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay,
                             momentum, maximize):
    """One RMSprop step for one parameter, in place on ``p`` and the state arrays::

        g   = -g                                  if maximize
        g   = g + weight_decay * p
        v   = alpha * v + (1 - alpha) * g * g     (square_avg)
        a   = a + (1 - alpha) * (g - a)           (grad_avg, if centered)
        avg = sqrt(v - a * a) + eps   if centered   else   sqrt(v) + eps
        buf = momentum * buf + g / avg;  p = p - lr * buf      if momentum > 0
        p   = p - lr * g / avg                                 otherwise

    ``grad_avg`` is None unless centered, ``momentum_buffer`` None unless momentum > 0.
    """
    xp = array_module(p)
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if grad_avg is not None:
        grad_avg += (1 - alpha) * (g - grad_avg)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = xp.sqrt(square_avg) + eps
    if momentum_buffer is not None:
        momentum_buffer *= momentum
        momentum_buffer += g / avg
        p -= lr * momentum_buffer
    else:
        p -= lr * (g / avg)


class RMSprop(ElementwiseOptimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
    foreach=None, maximize=False)``, as PyTorch (whose ``capturable`` and ``differentiable``
    are not supported; ``foreach`` is kept in the groups and chooses nothing)."""

    update_name = "rmsprop_update"
    update_reference = staticmethod(rmsprop_update_reference)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 foreach=None, maximize=False):
        op = "RMSprop"
        check_hyper(op, "learning rate", lr)
        check_hyper(op, "epsilon value", eps)
        check_hyper(op, "momentum value", momentum)
        check_hyper(op, "weight_decay value", weight_decay)
        check_hyper(op, "alpha value", alpha)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=bool(centered),
                        weight_decay=weight_decay, foreach=foreach, maximize=bool(maximize))
        super().__init__(params, defaults)

    def init_state(self, p, group):
        xp = array_module(p.array)
        state = {"square_avg": xp.zeros_like(p.array)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(p.array)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(p.array)
        return state

    def update_args(self, state, group):
        momentum = float(group["momentum"])
        return (state["square_avg"], state["grad_avg"] if group["centered"] else None,
                state["momentum_buffer"] if momentum > 0 else None, float(group["lr"]), float(group["alpha"]),
                float(group["eps"]), float(group["weight_decay"]), momentum, bool(group["maximize"]))
