"""``Optimizer``: the parameter groups and per-parameter state every optimizer shares.

As in PyTorch, ``param_groups`` is a list of dicts, each with a ``"params"`` list and
that group's hyper-parameters (``lr``, ``momentum``, ...), which may be changed
between steps (that is how a learning-rate schedule works).  ``state`` maps each
parameter to a dict of its own arrays (SGD's ``momentum_buffer``), kept on the
parameter's device.

``state_dict()`` is plain data: arrays become CPU NumPy copies and parameters are
named by their index in the order of the groups, so it can be saved next to the
model's state_dict and loaded into a fresh optimizer over a fresh model.

A step writes each parameter in place, so it bumps the parameter's version counter, as
PyTorch's does: a backward whose graph saved a parameter before ``step()`` refuses to run
after it ("modified by an inplace operation"), while one that did not save it still runs.
"""
import copy
import numbers

import numpy as np

from .. import backend
from ..autograd import Tensor, is_grad_enabled
from ..backend import array_module, device_of, kernel, to_device


class _Required:
    def __repr__(self):
        return "<required parameter>"


#: marks a hyper-parameter that has no default and must be given (e.g. per group)
required = _Required()


def _cpu_copy(v):
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        cpu = backend.to_device(v, "cpu")
        return cpu.copy() if cpu is v else np.asarray(cpu)
    return copy.deepcopy(v)


class Optimizer:
    """Base class: holds ``param_groups``, ``state`` and ``defaults``; subclasses write ``step``."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}           # Parameter -> dict of its state (keyed by the object itself)
        self.param_groups = []
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, got a "
                            f"single {type(params).__name__} (wrap it in a list)")
        if isinstance(params, set):
            raise TypeError(f"{name}: params must be an ordered collection, not a set "
                            "(a set's order changes between runs, and state_dict numbers parameters)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyper-parameters (defaults fill the rest)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}: a param group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: params must be an ordered collection, not a set "
                            "(a set's order changes between runs)")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, but param {i} is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (param {i})")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating point Tensors, param {i} is {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a param group contains a parameter twice")
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required "
                                 f"optimization parameter {key}")
            group.setdefault(key, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing & {id(p) for p in params}:
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Drop every parameter's gradient (or zero it in place with ``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    backend.drop_grad(p)   # its memory reused by the next backward
                else:
                    p.grad.array[...] = 0
                    p.grad._version_counter.n += 1      # PyTorch's p.grad.zero_()

    def step(self, closure=None):
        raise NotImplementedError

    def _run_closure(self, closure):
        if closure is None:
            return None
        if not is_grad_enabled():
            raise RuntimeError(f"{type(self).__name__}.step: the closure needs grad mode enabled")
        return closure()

    # ------------------------------------------------------------------ state_dict

    def state_dict(self):
        """``{"state": {index: {name: array}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are numbered 0, 1, ... through the groups in order (as PyTorch
        does); arrays are CPU NumPy copies.
        """
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: _cpu_copy(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()``: hyper-parameters per group, and each parameter's state
        cast to its dtype and placed on its device.  The groups must have the same sizes."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has {len(saved_groups)} parameter "
                             f"groups, the optimizer has {len(self.param_groups)}")
        by_index = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has {len(saved['params'])} "
                                 f"parameters in the loaded state dict, {len(group['params'])} here")
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        new_state = {}
        for idx, entries in state_dict["state"].items():
            idx = int(idx)
            if idx not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {idx}, which no group lists")
            p = by_index[idx]
            new_state[p] = {k: self._state_value(k, v, p, idx) for k, v in entries.items()}
        self.state = new_state
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)

    def _state_value(self, key, value, p, idx):
        """A copy of a saved state entry for parameter ``p``: arrays of p's shape go to p's
        dtype and device (like PyTorch's cast of floating state); ``step`` becomes a 0-d
        float32 CPU array, as PyTorch keeps it (a number from an old checkpoint works too);
        other values are copied."""
        if isinstance(value, Tensor):
            value = value.array
        if key == "step":
            return _step_count(value)
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            return copy.deepcopy(value)
        if value.dtype.kind == "f" and tuple(value.shape) != p.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state {key!r} of parameter {idx} "
                             f"has shape {tuple(value.shape)}, the parameter has shape {p.shape}")
        if value.dtype.kind == "f":
            value = value.astype(p.dtype, copy=False)
        moved = backend.to_device(value, p.device)
        return moved.copy() if moved is value else moved

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


def _step_count(value=0.0):
    """A step counter as PyTorch stores it: a 0-d float32 array on the CPU."""
    return np.array(float(value), dtype=np.float32)


def check_hyper(op, name, value, low=0.0, high=None, closed=False):
    """PyTorch's check of a hyper-parameter: ``ValueError("Invalid <name>: <value>")`` unless
    ``low <= value`` (and ``value < high``, or ``<= high`` when ``closed``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    inside = low <= value and (high is None or (value <= high if closed else value < high))
    if not inside:
        raise ValueError(f"{op}: Invalid {name}: {value}")
    return value


class ElementwiseOptimizer(Optimizer):
    """The loop every elementwise optimizer (Adam, RMSprop, ...) shares.

    ``step()`` visits each parameter that has a gradient, creates its state on the first
    visit (``init_state``), moves the state along if the parameter was cast or moved,
    counts the step (``state["step"]``, a 0-d float32 CPU array as in PyTorch) and then
    applies the update rule in place: the fast kernel ``kernel("optim", update_name, p)``
    where one is written and the parameter is C-contiguous, else ``update_reference``.

    A subclass names its rule and says what it needs:

    * ``update_name``: the kernel name; ``update_reference``: the NumPy rule (a
      ``staticmethod``), called as ``rule(p, g, *update_args(state, group))``.
    * ``init_state(p, group)``: the arrays of a fresh state (``step`` is added here).
    * ``update_args(state, group)``: the state arrays and hyper-parameters, in the rule's order.
    """

    update_name = None
    update_reference = None

    def init_state(self, p, group):
        raise NotImplementedError

    def update_args(self, state, group):
        raise NotImplementedError

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns the closure's loss if given."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._parameter_state(p, group)
                state["step"] += 1
                g = array_module(p.array).ascontiguousarray(p.grad.array)
                fast = kernel("optim", self.update_name, p.array) if p.array.flags.c_contiguous else None
                (fast or self.update_reference)(p.array, g, *self.update_args(state, group))
                p._version_counter.n += self.writes(group)
        return loss

    def writes(self, group):
        """How many in-place writes one step makes to each parameter (its version counter's
        bump): one, as PyTorch's ``p.add_`` / ``p.addcdiv_``."""
        return 1

    def _parameter_state(self, p, group):
        state = self.state.setdefault(p, {})
        if not state:
            state["step"] = _step_count()
            state.update(self.init_state(p, group))
        for k, v in state.items():       # the model was cast or moved after the state was made
            if k != "step" and hasattr(v, "dtype") and (v.dtype != p.dtype or device_of(v) != p.device):
                state[k] = to_device(v.astype(p.dtype), p.device)
        return state
