"""``Module``, ``Parameter`` and the containers ``Sequential`` and ``ModuleList``, as in PyTorch.

A ``Module`` is a tree: assigning a ``Parameter`` or another ``Module`` to an
attribute registers it (``__setattr__``), so ``named_parameters()`` and
``state_dict()`` can walk the tree and name everything with dotted paths
(``features.0.weight``), exactly the keys PyTorch gives the same model.  That is
what lets weights move between tinyconv and PyTorch (``tinyconv.load`` reads a
PyTorch ``.pth``; ``tinyconv.save(sd, "m.safetensors")`` writes what PyTorch reads).

Buffers (``register_buffer``) are tensors that belong to the model but are not
trained, such as BatchNorm's running statistics; persistent ones are saved in
``state_dict`` too.
"""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A Tensor that is a module's learnable weight: ``requires_grad=True`` by default.

    Assigning one to a module attribute registers it in ``parameters()``.
    """

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.array
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            raise TypeError(f"Parameter: expected an array or a Tensor, got {type(data).__name__}")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


#: what ``load_state_dict`` returns (as PyTorch): keys it did not find and keys it did not use
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """What ``register_forward_hook`` and friends return: ``remove()`` unregisters the hook
    (also on leaving a ``with handle:`` block), as ``torch.utils.hooks.RemovableHandle``."""

    _next_id = 0

    def __init__(self, hooks):
        self.hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _shape_of(value):
    return tuple(value.shape)


def _to_cpu_copy(a):
    """A CPU NumPy copy of a raw array (never a view of the module's own memory)."""
    cpu = backend.to_device(a, "cpu")
    return cpu.copy() if cpu is a else np.asarray(cpu)


def _parse_to_args(op, args, kwargs):
    """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or keywords -> (device, dtype)."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"{op}: unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, (str, backend.device)):
            device = a
        elif isinstance(a, Tensor):        # to(other_tensor): its device and dtype
            device, dtype = a.device, a.dtype
        else:
            dtype = a
    if device is not None:
        device = backend.device(device)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{op}: a module can only be cast to a floating point dtype, got {dtype}")
    return device, dtype


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, then assign their parameters,
    buffers and submodules as attributes, and define ``forward``.  Calling the
    module calls ``forward``.
    """

    def __init__(self):
        # set through object.__setattr__: our own __setattr__ needs these to exist
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward() defined")

    def __call__(self, *args, **kwargs):
        """``forward`` between the forward pre-hooks and the forward hooks, as PyTorch."""
        pre, post = self.__dict__.get("_forward_pre_hooks"), self.__dict__.get("_forward_hooks")
        if not pre and not post:
            return self.forward(*args, **kwargs)
        for hook, with_kwargs in list(pre.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook, with_kwargs in list(post.values()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ------------------------------------------------------------------ hooks

    def _add_hook(self, registry, hook, prepend, with_kwargs):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__[registry]
        handle = RemovableHandle(hooks)
        hooks[handle.id] = (hook, bool(with_kwargs))
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before each forward; a non-None result replaces the
        positional arguments (a non-tuple is wrapped in one).  With ``with_kwargs``:
        ``hook(module, args, kwargs)`` returning None or ``(args, kwargs)``.
        Returns a handle whose ``remove()`` unregisters the hook."""
        return self._add_hook("_forward_pre_hooks", hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args, output)`` after each forward (``hook(module, args, kwargs,
        output)`` with ``with_kwargs``); a non-None result replaces the output.
        Returns a handle whose ``remove()`` unregisters the hook."""
        return self._add_hook("_forward_hooks", hook, prepend, with_kwargs)

    # ------------------------------------------------------------------ registration

    def _check_init(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call "
                                 f"(call super().__init__() first in {type(self).__name__}.__init__)")

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self._forget(name, keep=params)
            params[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} of "
                                f"{type(self).__name__} (expected a Parameter or None)")
            params[name] = None
        elif isinstance(value, Module):
            self._check_init("child modules")
            self._forget(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} of "
                                f"{type(self).__name__} (expected a Module or None)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} of "
                                f"{type(self).__name__} (expected a Tensor or None)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Remove ``name`` from the plain attributes and every registry but ``keep``.

        Re-registering a name in the registry it already lives in keeps its place, so
        ``state_dict`` key order does not change when a layer's weight is replaced.
        """
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        if keep is not self._buffers:
            self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    @staticmethod
    def _check_name(kind, name):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name must be non-empty and contain no '.', got {name!r}")

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter, or None for an absent one such as ``bias=False``)."""
        self._check_init("parameters")
        self._check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register a non-trained tensor; persistent buffers are part of ``state_dict``.

        ``tensor`` may be a Tensor, a raw array (wrapped in a Tensor) or None.
        """
        self._check_init("buffers")
        self._check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            if not hasattr(tensor, "shape"):
                raise TypeError(f"register_buffer: {name!r} must be a Tensor, an array or None, "
                                f"got {type(tensor).__name__}")
            tensor = Tensor(tensor)
        self._forget(name, keep=self._buffers)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Register ``module`` as child ``name`` (the way containers name children "0", "1", ...)."""
        self._check_init("child modules")
        self._check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        self._forget(name, keep=self._modules)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at dotted path ``target`` (``""`` is the module itself)."""
        mod = self
        for part in target.split(".") if target else ():
            if part not in mod._modules or mod._modules[part] is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} "
                                     f"(looking up {target!r})")
            mod = mod._modules[part]
        return mod

    # ------------------------------------------------------------------ traversal

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """``(dotted name, module)`` for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, c in self.named_children():
            yield c

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, mod in modules:
            for name, t in getattr(mod, registry).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, Parameter)`` pairs; a parameter shared by two layers comes once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ------------------------------------------------------------------ modes and grads

    def train(self, mode=True):
        """Set training mode (Dropout drops, BatchNorm uses batch statistics) here and below."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Drop every parameter's gradient (or zero it in place with ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                backend.drop_grad(p)   # its memory reused by the next backward
            else:
                p.grad.array[...] = 0
                p.grad._version_counter.n += 1      # PyTorch's p.grad.zero_()

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on this module; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ devices and dtypes

    def _apply_to_arrays(self, convert, floating_only):
        """Replace every parameter's and buffer's ``.data`` (and grad) by ``convert(data)``.

        The Parameter objects stay the same, so an optimizer built before still holds them.
        """
        seen = set()
        for m in self.modules():
            for registry in (m._parameters, m._buffers):
                for t in registry.values():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    if floating_only and t.dtype.kind != "f":
                        continue
                    t.array = convert(t.array)
                    if t.grad is not None:
                        t.grad.array = convert(t.grad.array)
        return self

    def to(self, *args, **kwargs):
        """``to(device)``, ``to(dtype)`` or both, in place; returns self.

        A dtype casts floating point parameters and buffers only (integer buffers
        such as ``num_batches_tracked`` keep theirs), as in PyTorch.
        """
        device, dtype = _parse_to_args("Module.to", args, kwargs)
        if dtype is not None:
            self._apply_to_arrays(lambda a: a.astype(dtype, copy=False), floating_only=True)
        if device is not None:
            self._apply_to_arrays(lambda a: backend.to_device(a, device), floating_only=False)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(backend.device("cuda", 0 if device is None else device))

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ------------------------------------------------------------------ state_dict

    def _state_items(self):
        """``(dotted key, tensor)`` for everything ``state_dict`` saves, in PyTorch's order:
        each module's parameters, then its persistent buffers, then its children's."""
        for prefix, m in self.named_modules(remove_duplicate=False):
            dot = f"{prefix}." if prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    yield dot + name, p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent_buffers:
                    yield dot + name, b

    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """An OrderedDict of dotted key -> Tensor, as PyTorch names them (``sd[k].size()``).

        Unlike PyTorch, whose state_dict tensors share memory with the parameters (on their
        device), each value is a detached CPU *copy*: saving a "best so far" state_dict needs
        no ``copy.deepcopy``, and ``tinyconv.save`` can write it as is.  ``keep_vars=True``
        gives the Parameters and buffers themselves instead; ``prefix`` is put before every
        key, and ``destination`` (a dict) receives the entries and is returned.
        """
        out = OrderedDict() if destination is None else destination
        for k, t in self._state_items():
            out[prefix + k] = t if keep_vars else Tensor(_to_cpu_copy(t.array))
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values from ``state_dict`` into the parameters and buffers: Tensors (what
        ``state_dict()`` and ``tinyconv.load`` return, of a tinyconv, PyTorch or safetensors
        file), NumPy or CuPy arrays, or anything ``numpy.asarray`` takes.

        Values are cast to each parameter's dtype and copied onto its device; the
        Parameter objects stay the same.  A shape mismatch is always an error; missing
        and unexpected keys are errors when ``strict``.  One ValueError lists every
        problem.  Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        if assign:
            raise NotImplementedError("load_state_dict: assign=True is not supported (values are "
                                      "always copied into the existing parameters)")
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of key -> array, "
                            f"got {type(state_dict).__name__}")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mis_shaped, bad_type = [], []
        values = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            if isinstance(v, Tensor):
                v = v.array
            elif not (isinstance(v, np.ndarray) or backend.is_cuda_array(v)):
                v = np.asarray(v)          # lists, scalars, anything with __array__

            if getattr(v.dtype, "kind", "O") not in "biuf":
                bad_type.append(f"{k} (dtype {v.dtype})")
            elif _shape_of(v) != t.shape:
                mis_shaped.append(f"{k}: expected shape {t.shape}, got {_shape_of(v)}")
            else:
                values[k] = v
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if mis_shaped:
            problems.append(f"mis-shaped keys: {'; '.join(mis_shaped)}")
        if bad_type:
            problems.append(f"keys whose values are not numeric arrays: {', '.join(bad_type)}")
        if problems:
            raise ValueError(f"load_state_dict: error(s) loading state_dict into "
                             f"{type(self).__name__}: " + " | ".join(problems))
        for k, v in values.items():
            t = own[k]
            # copy in place (like PyTorch's param.copy_): cast on the source device, then move
            t.array[...] = backend.to_device(v.astype(t.dtype, copy=False), t.device)
            t._version_counter.n += 1
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing

    def summary(self, input_shape=None, **kwargs):
        """Print and return each layer's output shape, parameters and FLOPs (``nn/summary.py``)."""
        from .summary import summary
        return summary(self, input_shape, **kwargs)

    def extra_repr(self):
        """The text inside this module's parentheses in ``repr`` (a layer's hyper-parameters)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        # PyTorch's layout: a leaf on one line, a container with one indented line per child
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                       for name, child in self._modules.items()]
        lines = extra_lines + child_lines
        if len(extra_lines) == 1 and not child_lines:
            return f"{self._get_name()}({extra_lines[0]})"
        if not lines:
            return f"{self._get_name()}()"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"


# --------------------------------------------------------------------------- containers


def _index(container, idx):
    """A non-negative position from an int index (negative counts from the end)."""
    return _index_n(container, len(container._modules), idx)


def _index_n(container, n, idx):
    if not isinstance(idx, (int, np.integer)):
        raise TypeError(f"{type(container).__name__}: indices must be int or slice, "
                        f"got {type(idx).__name__}")
    if not -n <= idx < n:
        raise IndexError(f"{type(container).__name__}: index {idx} out of range for {n} entries")
    return int(idx) % n


class Sequential(Module):
    """Modules applied one after another; children are named "0", "1", ... (or by an OrderedDict).

    ``Sequential(conv, relu)`` or ``Sequential(OrderedDict(conv1=conv, relu1=relu))``;
    supports ``len``, iteration, indexing (``seq[-1]``) and slicing (a new Sequential).
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} must be a Module, got {type(m).__name__}")
                self.add_module(str(i), m)

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return type(self)(OrderedDict(items[idx]))
        return items[_index(self, idx)][1]

    def __setitem__(self, idx, module):
        key = list(self._modules)[_index(self, idx)]
        self.add_module(key, module)   # same key: keeps its place

    def __delitem__(self, idx):
        keys = list(self._modules)
        for k in (keys[idx] if isinstance(idx, slice) else [keys[_index(self, idx)]]):
            del self._modules[k]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters are registered (children named "0", "1", ...)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_index(self, idx)]

    def __setitem__(self, idx, module):
        self.add_module(str(_index(self, idx)), module)

    def __delitem__(self, idx):
        mods = list(self._modules.values())
        del mods[idx if isinstance(idx, slice) else _index(self, idx)]
        self._renumber(mods)

    def _renumber(self, mods):
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)



class ModuleDict(Module):
    """An ordered dict of named modules whose parameters are registered (keys are the child names).

    ``ModuleDict({"conv": Conv2d(...), "act": ReLU()})``; supports ``md[key]``, assignment,
    ``del``, ``len``, ``in``, iteration over the keys, ``keys()``, ``values()``, ``items()``,
    ``update``, ``pop`` and ``clear``.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        m = self._modules[key]
        del self._modules[key]
        return m

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        """Add the modules of a mapping, or of an iterable of (key, module) pairs."""
        items = modules.items() if isinstance(modules, Mapping) else modules
        for j, pair in enumerate(items):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: element #{j} should be a (key, module) pair, "
                                f"got {pair!r}")
            self[pair[0]] = pair[1]


def _as_parameter(value, op):
    """A Parameter for ``value``: itself if it is one, a Tensor wrapped (as PyTorch) otherwise."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value.array)
    raise TypeError(f"{op}: expected a Parameter or a Tensor, got {type(value).__name__}")


def _parameter_line(key, p):
    size = "x".join(str(n) for n in p.shape)
    device = "" if p.device == backend.CPU else f" ({p.device})"
    return f"({key}): Parameter containing: [{p.dtype} of size {size}{device}]"


def _parameters_repr(container):
    lines = [_parameter_line(k, p) for k, p in container._parameters.items()]
    if not lines:
        return f"{container._get_name()}()"
    return f"{container._get_name()}(\n    " + "\n    ".join(lines) + "\n)"


class ParameterList(Module):
    """A list of Parameters, registered under "0", "1", ... (a Tensor is wrapped in a Parameter)."""

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def __getitem__(self, idx):
        params = list(self._parameters.values())
        if isinstance(idx, slice):
            return ParameterList(params[idx])
        return params[_index_n(self, len(params), idx)]

    def __setitem__(self, idx, param):
        self.register_parameter(str(_index_n(self, len(self), idx)), _as_parameter(param, "ParameterList"))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __iadd__(self, params):
        return self.extend(params)

    def append(self, value):
        self.register_parameter(str(len(self)), _as_parameter(value, "ParameterList.append"))
        return self

    def extend(self, values):
        for v in values:
            self.append(v)
        return self

    def __repr__(self):
        return _parameters_repr(self)


class ParameterDict(Module):
    """An ordered dict of named Parameters (a Tensor is wrapped in a Parameter)."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        self.register_parameter(key, _as_parameter(value, "ParameterDict"))

    def __delitem__(self, key):
        del self._parameters[key]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def get(self, key, default=None):
        return self._parameters.get(key, default)

    def pop(self, key):
        p = self._parameters[key]
        del self._parameters[key]
        return p

    def clear(self):
        self._parameters.clear()

    def update(self, parameters):
        """Add the parameters of a mapping, or of an iterable of (key, parameter) pairs."""
        items = parameters.items() if isinstance(parameters, Mapping) else parameters
        for j, pair in enumerate(items):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ParameterDict.update: element #{j} should be a (key, parameter) "
                                f"pair, got {pair!r}")
            self[pair[0]] = pair[1]

    def __repr__(self):
        return _parameters_repr(self)
