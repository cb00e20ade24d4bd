"""The autograd core: ``Tensor``, ``Function`` and reverse-mode ``backward``.

The whole graph machinery is here, and it knows no layer.

* A ``Tensor`` wraps one raw array (``numpy.ndarray`` on the CPU, ``cupy.ndarray``
  on CUDA) in ``.array``.  (``.data`` is PyTorch's: the same memory as a Tensor that
  autograd does not track.)  A tensor made by an op remembers the ``Function`` that
  made it (``.grad_fn``); a tensor the user made is a *leaf*.
* A ``Function`` is one node of the graph.  A subclass writes ``forward`` on raw
  arrays (saving what backward needs with ``save_for_backward``) and ``backward``,
  which maps the gradient of the output to one gradient per input.  Calling the
  function on tensors runs forward and links the node into the graph.
* ``Tensor.backward()`` runs the nodes reachable from the output in reverse
  topological order (Kahn's algorithm): a node runs once *every* node that consumes
  its output has handed it a gradient, so a tensor used twice gets the sum of both
  uses before its node runs.  Leaves are vertices too: each gets the total of its
  gradients once, through its hooks, into ``.grad``.  Saved buffers are freed as each
  node is done, unless ``retain_graph=True``.
* Every tensor has a version counter, bumped by each in-place write (shared with its
  views).  A node records the versions of the tensors whose memory it saved; backward
  refuses to use a saved buffer that was modified since, as PyTorch does.  An in-place
  op is the out-of-place op written back into the tensor's memory (``Tensor._write``);
  into a view, it rewrites the view's base, and the view then follows the new base.

The graph links nodes to nodes (and to leaves), never to intermediate tensors, so
an activation no backward needs is freed as soon as the user drops it.
"""
import threading

import numpy as np

from . import backend
from .dtypes import get_default_dtype
from .grad_mode import (_grad_mode, enable_grad, is_grad_enabled, no_grad,  # noqa: F401
                        set_grad_enabled)
from .tensor_protocols import TensorProtocols

# --------------------------------------------------------------------------- Function


class Function:
    """A node of the graph.  Subclasses define ``forward`` and ``backward`` on arrays.

    ``forward(*arrays) -> array`` computes the output and may call
    ``self.save_for_backward(...)``.  ``backward(grad_output) -> tuple`` returns one
    gradient (an array, or None) per input.  ``self.needs_input_grad`` tells which
    inputs want a gradient, so backward can skip work.  Non-tensor arguments
    (stride, padding, ...) are given to ``__init__``.
    """

    #: dtypes of all tensor inputs must match (arithmetic promotes before calling)
    same_dtype = True

    def __call__(self, *inputs):
        name = type(self).__name__
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: input {i} must be a Tensor, got {type(t).__name__}")
        devices = {str(t.device) for t in inputs}
        if len(devices) > 1:
            raise ValueError(f"{name}: all inputs must be on one device, got {sorted(devices)}")
        if self.same_dtype and len({t.dtype for t in inputs}) > 1:
            raise TypeError(f"{name}: all inputs must have one dtype, got "
                            f"{[str(t.dtype) for t in inputs]}")
        self.needs_input_grad = tuple(t.requires_grad for t in inputs)
        self.saved_tensors = ()
        y = self.forward(*(t.array for t in inputs))
        if isinstance(y, np.generic):    # NumPy makes 0-d results scalars: keep an array, writable
            y = np.asarray(y)
        out = Tensor(y)
        for t in inputs:              # a view of an input shares its memory and version counter
            if _shares_memory(y, t.array):
                out._version_counter = t._version_counter
                out._base = t._base if t._base is not None else t
                break
        if _grad_mode.enabled and any(self.needs_input_grad):
            # A parent is the node that made an input, the input itself if it is a
            # leaf that wants a gradient, or None if no gradient flows there.
            self.parents = tuple((t.grad_fn or t) if t.requires_grad else None for t in inputs)
            # the versions of the tensors whose memory backward reads (checked before it runs)
            self.saved_versions = [(t._version_counter, t._version, t.array) for t in inputs + (out,)
                                   if any(_shares_memory(a, t.array) for a in self.saved_tensors)]
            self.tensor_hooks, self.retains = [], None
            out._rebase(self)
        else:
            self.saved_tensors = ()
        return out

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def release(self):
        """Free the saved buffers once backward is done with them."""
        self.saved_tensors, self.saved_versions = None, ()

    def name(self):
        """The node's name: its class name plus ``Backward``, e.g. ``MulBackward``.

        PyTorch's names carry an overload number and are printed with an address
        (``<MulBackward0 object at 0x...>``); tinyconv keeps its Function class names
        (``ReLUFn`` -> ``ReLUFnBackward``), without the number and the address, so a
        printed graph is short and the same on every run.
        """
        return f"{type(self).__name__}Backward"

    def __repr__(self):
        return f"<{self.name()}>"

    @property
    def next_functions(self):
        """``((node, 0), ...)`` per input, as PyTorch: a leaf's node is its ``AccumulateGrad``."""
        return tuple((p if isinstance(p, Function) or p is None else AccumulateGrad.of(p), 0)
                     for p in self.parents)

    def _checked_backward(self, gy):
        if self.saved_tensors is None:
            raise RuntimeError(
                f"backward: trying to backward through {type(self).__name__} a second time; its "
                "saved buffers were freed.  Pass retain_graph=True to the first backward.")
        for version, saved, array in self.saved_versions:
            if version.n != saved:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: the {array.dtype} tensor of shape {list(array.shape)} saved by "
                    f"{self.name()} is at version {version.n}; expected version {saved} instead.")
        gxs = self.backward(gy)
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        if len(gxs) != len(self.parents):
            raise RuntimeError(f"{type(self).__name__}.backward returned {len(gxs)} gradients "
                               f"for {len(self.parents)} inputs")
        return gxs


class AccumulateGrad:
    """The node PyTorch shows for a leaf in ``next_functions``: it adds into ``variable.grad``."""

    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    @classmethod
    def of(cls, leaf):
        if leaf._accumulator is None:
            leaf._accumulator = cls(leaf)
        return leaf._accumulator

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad>"


def _shares_memory(a, b):
    if not hasattr(a, "shape"):
        return False
    if a is b:
        return True
    if getattr(a, "base", None) is None and getattr(b, "base", None) is None:
        return False           # two arrays that own their memory never overlap
    return backend.array_module(b).may_share_memory(a, b)


class _Version:
    """A tensor's version counter: how many in-place writes its memory has seen."""

    __slots__ = ("n",)

    def __init__(self):
        self.n = 0


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` takes the hook off again."""

    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


# --------------------------------------------------------------------------- the engine


def _vertex(t):
    """Where a tensor's gradient goes: the node that made it, or the tensor itself if a leaf."""
    return t.grad_fn or t


def _apply_hooks(hooks, g):
    for hook in hooks:
        out = hook(Tensor(g))
        if out is not None:
            g = out.array if isinstance(out, Tensor) else out
    return g


_engine = threading.local()     # .callbacks: the list queue_callback appends to, during a backward


def queue_callback(callback):
    """Run ``callback()`` once the backward pass now running has finished.

    PyTorch's ``Variable._execution_engine.queue_callback``: a gradient hook calls it to
    act after every gradient is in (DistributedDataParallel waits for its all-reduces).
    """
    callbacks = getattr(_engine, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_callback: no backward pass is running (call it from a gradient hook)")
    callbacks.append(callback)


def _backward_pass(roots, seeds, retain_graph, capture=None):
    """``_run_backward``, then the callbacks its hooks queued (:func:`queue_callback`), in order."""
    outer, _engine.callbacks = getattr(_engine, "callbacks", None), []
    try:
        captured = _run_backward(roots, seeds, retain_graph, capture)
        callbacks = _engine.callbacks
    finally:
        _engine.callbacks = outer
    for callback in callbacks:
        callback()
    return captured


def _run_backward(roots, seeds, retain_graph, capture=None):
    """Propagate ``seeds`` (one gradient array per root tensor) back through the graph.

    Kahn's algorithm: count, for each vertex, the edges from the vertices that consume
    it; a vertex runs when the last of them has handed it its gradient, so it runs once,
    with the sum of all of them.  ``capture`` maps ``id(vertex)`` to a slot: those
    vertices' total gradients are returned in a dict instead of going into ``.grad``
    (``autograd.grad``); without it every leaf's gradient is accumulated.
    """
    starts, pending, grads = [], {}, {}       # grads: id -> [array, owned]
    for t, g in zip(roots, seeds):
        v = _vertex(t)
        if id(v) in grads:
            grads[id(v)] = [grads[id(v)][0] + g, True]
        else:
            grads[id(v)], pending[id(v)] = [g, False], 0
            starts.append(v)
    stack = list(starts)
    while stack:                               # count the consumers of every vertex
        v = stack.pop()
        for p in getattr(v, "parents", ()):
            if p is not None:
                if id(p) not in pending:
                    pending[id(p)] = 0
                    stack.append(p)
                pending[id(p)] += 1
    captured = {}
    ready = [v for v in starts if pending[id(v)] == 0]
    while ready:
        v = ready.pop()
        g, owned = grads.pop(id(v), (None, False))
        if isinstance(v, Tensor):              # a leaf: its gradient is complete
            if g is not None:
                g = _apply_hooks(v._hooks, g)
                if capture is None:
                    _accumulate_leaf(v, g, owned)
                    for hook in v._post_accumulate_hooks:
                        hook(v)
                else:
                    captured.update((i, g) for i in capture.get(id(v), ()))
            continue
        gxs = (None,) * len(v.parents)
        if g is not None:
            g = _apply_hooks(v.tensor_hooks, g)
            if capture is None and v.retains is not None:
                _accumulate_leaf(v.retains, g)
            elif capture is not None:
                captured.update((i, g) for i in capture.get(id(v), ()))
            gxs = v._checked_backward(g)
            if not retain_graph:
                v.release()
        for p, gx in zip(v.parents, gxs):
            if p is None:
                continue
            if gx is not None:
                if id(p) in grads and grads[id(p)][0] is not None:
                    grads[id(p)] = [grads[id(p)][0] + gx, True]
                else:   # fresh: not the incoming gradient, not a view, not handed to two inputs
                    grads[id(p)] = [gx, gx is not g and getattr(gx, "base", None) is None
                                    and sum(x is gx for x in gxs) == 1]
            pending[id(p)] -= 1
            if pending[id(p)] == 0:
                ready.append(p)
    return captured


def _accumulate_leaf(leaf, g, owned=False):
    """Add gradient ``g`` into ``leaf.grad``.

    The first gradient becomes ``.grad`` as it is when ``owned`` (a fresh array that no
    one else holds), else as a copy, so ``.grad`` never aliases another array.  Later
    gradients are added in place into a leaf's ``.grad``, as PyTorch's AccumulateGrad (a
    reference ``g = p.grad`` taken before sees the sum); a non-leaf's retained ``.grad``
    is replaced by the sum, as PyTorch's ``retain_grad``.
    """
    if g.shape != leaf.shape:
        raise RuntimeError(f"autograd: gradient of shape {g.shape} for a tensor of shape {leaf.shape}")
    if g.dtype != leaf.dtype:
        g, owned = g.astype(leaf.dtype), True
    if leaf.grad is None:
        leaf.grad = Tensor(g if owned else g.copy())
    elif leaf.is_leaf and getattr(getattr(leaf.grad.array, "flags", None), "writeable", True):
        leaf.grad.array += g
        leaf.grad._version_counter.n += 1
    else:
        leaf.grad = Tensor(leaf.grad.array + g)


def _seeds(outputs, grad_outputs, op):
    """The starting gradient of each output: ``grad_outputs``, or ones for a scalar."""
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(out, Tensor):
            raise TypeError(f"{op}: output {i} must be a Tensor, got {type(out).__name__}")
        if not out.requires_grad:
            raise RuntimeError(f"{op}: element {i} of tensors does not require grad and does not "
                               "have a grad_fn")
        xp = backend.array_module(out.array)
        if g is None:
            if out.array.size != 1:
                raise RuntimeError(f"{op}: grad can be implicitly created only for scalar outputs, "
                                   f"got shape {out.shape}")
            seeds.append(xp.ones_like(out.array))
            continue
        g = g.array if isinstance(g, Tensor) else xp.asarray(g)
        if g.shape != out.shape:
            raise RuntimeError(f"{op}: Mismatch in shape: grad_output[{i}] has a shape of "
                               f"{g.shape} and output[{i}] has a shape of {out.shape}")
        seeds.append(g.astype(out.dtype, copy=False))
    return seeds


def _as_list(x):
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaf) into ``.grad`` of every leaf (or of ``inputs``) they need."""
    if create_graph:
        raise NotImplementedError("backward: create_graph=True (higher-order gradients) is not "
                                  "supported by tinyconv")
    tensors = _as_list(tensors)
    grads = _as_list(grad_tensors) or [None] * len(tensors)
    if len(grads) != len(tensors):
        raise RuntimeError(f"backward: got {len(grads)} gradients for {len(tensors)} tensors")
    seeds = _seeds(tensors, grads, "backward")
    if inputs is None:
        _backward_pass(tensors, seeds, bool(retain_graph))
        return
    inputs = _as_list(inputs)
    found = _backward_pass(tensors, seeds, bool(retain_graph), _capture(inputs, "backward"))
    for i, t in enumerate(inputs):
        if i in found:
            _accumulate_leaf(t, found[i])


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, as a tuple (``.grad`` untouched)."""
    if create_graph:
        raise NotImplementedError("autograd.grad: create_graph=True (higher-order gradients) is "
                                  "not supported by tinyconv")
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    grads = _as_list(grad_outputs) or [None] * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"autograd.grad: got {len(grads)} grad_outputs for {len(outputs)} outputs")
    found = _backward_pass(outputs, _seeds(outputs, grads, "autograd.grad"), bool(retain_graph),
                           _capture(inputs, "autograd.grad"))
    result = []
    for i, t in enumerate(inputs):
        if i not in found and not allow_unused:
            raise RuntimeError("autograd.grad: one of the differentiated Tensors appears to not "
                               f"have been used in the graph (input {i}, shape {t.shape}). Set "
                               "allow_unused=True if this is the desired behavior.")
        result.append(Tensor(found[i].copy()) if i in found else None)
    return tuple(result)


def _capture(inputs, op):
    capture = {}
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"{op}: input {i} does not require grad")
        capture.setdefault(id(_vertex(t)), []).append(i)
    return capture


# --------------------------------------------------------------------------- Tensor


def _float_dtype(dt):
    return np.dtype(dt).kind == "f"


def wrap_dim(dim, ndim):
    """``dim`` as an index in ``range(ndim)`` (negative counts from the end), as PyTorch's check."""
    n = max(ndim, 1)                  # a 0-d tensor takes dims 0 and -1
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"a dimension must be an int, got {type(dim).__name__} {dim!r}")
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return int(dim) % n


def view_index(base, view):
    """Where the elements of ``view`` (an array viewing ``base``'s memory) sit in ``base``.

    An index such that ``base[index]`` has ``view``'s elements in ``view``'s shape, read off
    the memory: a grid laid out as ``base`` and numbering its elements is viewed with
    ``view``'s offset and strides.  It lets a write into a view go into its base, as
    PyTorch's ``CopySlices``.  None when ``base`` is not one dense block of memory.
    """
    xp = backend.array_module(base)
    grid = xp.empty_like(base, dtype=np.int64)         # same layout as base, if it is dense
    steps = [(a // base.itemsize, b // 8) for a, b, n in zip(base.strides, grid.strides,
                                                            base.shape) if n > 1]
    if any(a != b for a, b in steps) or view.dtype != base.dtype:
        return None
    grid[...] = xp.arange(base.size).reshape(base.shape)
    offset = (_address(view) - _address(base)) // base.itemsize
    strides = tuple(s // base.itemsize * 8 for s in view.strides)
    flat = xp.lib.stride_tricks.as_strided(grid.ravel(order="K")[offset:], view.shape, strides)
    return xp.unravel_index(flat.copy(), base.shape)


def _address(a):
    return a.data.ptr if backend.is_cuda_array(a) else a.__array_interface__["data"][0]


class Tensor(TensorProtocols):
    """An n-dimensional array with a place in the autograd graph.

    ``.array`` is the raw array (numpy or cupy); ``.grad`` is a Tensor filled by
    ``backward``.  Build one with :func:`tinyconv.tensor`.  The Python protocols (``len``,
    ``bool``, ``repr``...) are inherited from :class:`~tinyconv.tensor_protocols.TensorProtocols`.
    The math (operators, reductions, shape and in-place ops) is bound onto this class once, when
    tinyconv is imported, by :mod:`tinyconv.tensor_methods`, which imports the ops: the
    dependency goes one way, ops on this core, and no operator call runs an import.
    """

    __array_ufunc__ = None   # make NumPy hand ``ndarray * Tensor`` to Tensor.__rmul__

    def __init__(self, *data, requires_grad=False):
        array = data[0] if len(data) == 1 else None
        if not (hasattr(array, "shape") and hasattr(array, "dtype")):
            array = _legacy_array(data)       # torch.Tensor(2, 3), Tensor([1, 2]), Tensor()
        self.array = np.asarray(array) if isinstance(array, np.generic) else array   # 0-d, not a scalar
        self.grad = None
        self._grad_fn = None
        self._requires_grad = False
        self._version_counter = _Version()
        self._base = None              # the tensor whose memory this one views, if any
        self._view_version = 0         # the version the view's grad_fn was made at
        self._hooks, self._post_accumulate_hooks, self._accumulator = [], [], None
        if requires_grad:
            self.requires_grad_(True)

    # -- properties ----------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.array.shape)

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return backend.device_of(self.array)

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def data(self):
        """PyTorch's ``.data``: the same memory as a tensor autograd does not track."""
        return Tensor(self.array)

    @data.setter
    def data(self, value):
        self.array = value.array if isinstance(value, Tensor) else value

    @property
    def _version(self):
        return self._version_counter.n

    def dim(self):
        return self.array.ndim

    def size(self, dim=None):
        if dim is None:
            return self.shape
        if self.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return self.shape[wrap_dim(dim, self.ndim)]

    def numel(self):
        return int(self.array.size)

    __hash__ = object.__hash__

    # -- autograd ------------------------------------------------------------
    @property
    def grad_fn(self):
        """The node that made this tensor (None for a leaf)."""
        self._refresh_view()
        return self._grad_fn

    @property
    def requires_grad(self):
        self._refresh_view()
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not _float_dtype(self.dtype):
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, "
                               f"got {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        self._requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Fill ``.grad`` of every leaf this tensor depends on with d(self)/d(leaf)."""
        backward(self, gradient, retain_graph, create_graph, inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` whenever this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        hooks = self._hooks if self.grad_fn is None else self.grad_fn.tensor_hooks
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after this leaf's ``.grad`` has been accumulated."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        self._post_accumulate_hooks.append(hook)
        return RemovableHandle(self._post_accumulate_hooks, hook)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor too (learners use it to look inside)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self.grad_fn.retains = self

    @property
    def retains_grad(self):
        return self.grad_fn is not None and self.grad_fn.retains is self

    def detach(self):
        """The same memory (and version counter), cut from the graph."""
        out = Tensor(self.array)
        out._version_counter = self._version_counter
        return out

    def detach_(self):
        self._grad_fn, self._requires_grad = None, False
        return self

    def _write(self, out, op):
        """Make ``self`` hold ``out`` in place: the memory, its views and ``.data`` see it.

        ``out`` is the result of the out-of-place op.  When it was recorded, ``self``
        becomes the output of its node (its ``grad_fn`` is rebased), as in PyTorch, and
        what that node saved of ``self``'s old values is copied first, as the write is
        about to overwrite them.  A recorded write into a view goes through its base
        (PyTorch's ``CopySlices``): the base becomes ``base[index] = out``, and the view,
        whose base has changed, views the new base (``_refresh_view``).
        """
        self._check_write(out, op)
        node = out.grad_fn
        if node is not None:
            node.saved_tensors = tuple(a.copy() if _shares_memory(a, self.array) else a
                                       for a in node.saved_tensors)
            node.saved_versions = [(v, n, a) for v, n, a in node.saved_versions   # copies are safe
                                   if any(_shares_memory(s, a) for s in node.saved_tensors)]
        if node is not None and self._base is not None:
            self._base._write(self._base._setitem(self._index_in_base(), out), op)
            return self
        self.array[...] = out.array
        self._version_counter.n += 1
        if node is not None:
            self._rebase(node)
        return self

    def _rebase(self, node):
        """Make ``node`` the one that made this tensor (``retain_grad`` moves along)."""
        old = self._grad_fn
        if old is not None and old.retains is self:
            old.retains, node.retains = None, self
        self._grad_fn, self._requires_grad, self._view_version = node, True, self._version

    def _refresh_view(self):
        """A view whose base was written in place since it was made views the new base.

        As PyTorch: ``v = y[0]; y.mul_(2)`` makes ``v`` the first row of the new ``y``
        (in values and in the graph), so gradients through ``v`` see the ``mul_``.
        """
        base = self._base
        if base is None or self._view_version == self._version:
            return
        self._view_version = self._version
        if base.requires_grad:
            with enable_grad():
                self._rebase(base[self._index_in_base()]._grad_fn)

    def _index_in_base(self):
        index = view_index(self._base.array, self.array)
        if index is None:
            raise RuntimeError("in-place: a view of a tensor whose memory is not one dense block "
                               "cannot follow writes through autograd; clone() the view first")
        return index

    def _check_write(self, out, op):
        if out.grad_fn is not None and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        base = self._base
        multi = getattr(self, "_multi_view", None)        # (i, "Split"): set by split/unbind/chunk
        if out.grad_fn is not None and multi is not None and base is not None and base.requires_grad:
            raise RuntimeError(f"Output {multi[0]} of {multi[1]} is a view and is being modified "
                               "inplace. This view is the output of a function that returns multiple "
                               "views. Such functions do not allow the output views to be modified "
                               "inplace. You should replace the inplace operation by an out-of-place "
                               "one.")
        if out.grad_fn is not None and base is not None and base.requires_grad and base.is_leaf:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used "
                               "in an in-place operation.")
        if _KIND[out.dtype.kind] > _KIND[self.dtype.kind]:
            raise RuntimeError(f"{op}: result type {out.dtype} can't be cast to the desired output "
                               f"type {self.dtype}")
        if out.shape != self.shape:
            raise RuntimeError(f"{op}: output with shape {list(self.shape)} doesn't match the "
                               f"broadcast shape {list(out.shape)}")
        if not getattr(getattr(self.array, "flags", None), "writeable", True):
            raise RuntimeError(f"{op}: the tensor's memory is read-only (an expand() or a "
                               "broadcast view); clone() it first")


_KIND = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _legacy_array(data):
    """The array of PyTorch's legacy constructor ``torch.Tensor(...)`` (default dtype).

    ``Tensor(2, 3)`` (or ``Tensor(size)``) is an uninitialised 2x3 tensor, ``Tensor([1, 2])``
    a copy of the data, ``Tensor()`` an empty one.  A raw array (``Tensor(ndarray)``) does not
    come here: it is wrapped as it is, sharing memory and dtype (tinyconv's own construction;
    PyTorch would copy it to float32, see docs/pytorch.md).
    """
    dt = get_default_dtype()
    if not data:
        return np.empty((0,), dt)
    if all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in data):
        return np.empty(tuple(int(d) for d in data), dt)
    if len(data) == 1 and isinstance(data[0], Tensor):
        return data[0].array
    if len(data) == 1 and isinstance(data[0], (list, tuple)):
        if type(data[0]).__name__ == "Size":
            return np.empty(tuple(data[0]), dt)
        return np.array([d.item() if isinstance(d, Tensor) else d for d in data[0]]
                        if data[0] and isinstance(data[0][0], Tensor) else data[0], dtype=dt)
    raise TypeError(f"new(): data must be a sequence (got {type(data[0]).__name__})"
                    if len(data) == 1 else
                    f"new() received an invalid combination of arguments - got "
                    f"({', '.join(type(d).__name__ for d in data)})")
