"""Stochastic gradient descent with momentum, exactly PyTorch's ``torch.optim.SGD`` rule.

For each parameter p with gradient g, per step (Sutskever et al. 2013 form of momentum)::

    g   = g + weight_decay * p                              (L2 penalty)
    buf = g                              on the first step  (no dampening then)
    buf = momentum * buf + (1 - dampening) * g              afterwards
    g   = g + momentum * buf   if nesterov   else   buf     (when momentum != 0)
    p   = p - lr * g

The paper (Krizhevsky et al. 2012, section 5) writes its update as
``v = 0.9 v - 0.0005 lr w - lr g;  w = w + v``; with a constant lr that is this rule
with momentum 0.9, weight_decay 5e-4 (the lr factored out of the velocity).

Fast-kernel contract (family ``"optim"``, name ``"sgd_update"``, in
``tinyconv/kernels/optim_numba.py`` for the CPU or ``optim_cuda.py`` for CuPy)::

    sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step) -> None

* ``p``, ``g``: arrays of one shape and dtype (float32 or float64), C-contiguous, on one
  device; ``buf``: the same, or None when ``momentum == 0``.
* Updates ``p`` and ``buf`` **in place** by the rule above and returns None; it must not
  write ``g`` (that is the parameter's ``.grad``).  On ``first_step`` the contents of
  ``buf`` are undefined on entry (the optimizer allocates it with ``empty_like``) and
  the kernel sets ``buf = g + weight_decay * p``.
* ``lr``, ``momentum``, ``dampening``, ``weight_decay`` are Python floats;
  ``nesterov`` and ``first_step`` Python bools.

:func:`sgd_update_reference` is the NumPy/CuPy statement of that contract, which a
fast kernel must match to float rounding.
"""
from ..backend import array_module, device_of, kernel, to_device
from .optimizer import Optimizer


def sgd_update_reference(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """One SGD step for one parameter, in place on ``p`` and ``buf`` (see the module docstring)."""
    if weight_decay != 0:
        g = g + weight_decay * p           # a new array: the parameter's .grad stays untouched
    if momentum != 0:
        if first_step:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def _number(value, op, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    if value < 0:
        raise ValueError(f"{op}: invalid {name} {value!r} (must be >= 0)")
    return value


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False)``, as PyTorch.

    ``params``: an iterable of parameters, or of dicts (parameter groups with their
    own hyper-parameters).  Each parameter's momentum buffer lives in
    ``state[p]["momentum_buffer"]`` on the parameter's device.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        op = "SGD"
        _number(lr, op, "learning rate")
        _number(momentum, op, "momentum")
        _number(dampening, op, "dampening")
        _number(weight_decay, op, "weight_decay")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"{op}: Nesterov momentum requires a momentum and zero dampening, "
                             f"got momentum={momentum}, dampening={dampening}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=bool(nesterov))
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns the closure's loss if given."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr, momentum = float(group["lr"]), float(group["momentum"])
            dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
            nesterov = bool(group["nesterov"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = array_module(p.array)
                g = xp.ascontiguousarray(p.grad.array)
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is not None and (buf.dtype != p.dtype or device_of(buf) != p.device):
                    # the model was moved or cast after the buffer was made: follow the parameter
                    buf = state["momentum_buffer"] = to_device(buf.astype(p.dtype), p.device)
                first_step = buf is None
                if momentum != 0 and first_step:
                    buf = state["momentum_buffer"] = xp.empty_like(p.array)
                update = kernel("optim", "sgd_update", p.array) if p.array.flags.c_contiguous else None
                (update or sgd_update_reference)(p.array, g, buf if momentum != 0 else None, lr, momentum,
                                                 dampening, weight_decay, nesterov, first_step)
                p._version_counter.n += 1    # an in-place write (PyTorch's p.add_): see Optimizer
        return loss
