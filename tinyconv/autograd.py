"""The autograd core: ``Tensor``, ``Function`` and reverse-mode ``backward``.

The whole graph machinery is here, and it knows no layer.

* A ``Tensor`` wraps one raw array (``numpy.ndarray`` on the CPU, ``cupy.ndarray``
  on CUDA) in ``.data``.  A tensor made by an op remembers the ``Function`` that
  made it (``._creator``); a tensor the user made is a *leaf*.
* A ``Function`` is one node of the graph.  A subclass writes ``forward`` on raw
  arrays (saving what backward needs with ``save_for_backward``) and ``backward``,
  which maps the gradient of the output to one gradient per input.  Calling the
  function on tensors runs forward and links the node into the graph.
* ``Tensor.backward()`` sorts the nodes reachable from the output topologically
  and walks them from the output back, summing the gradients that reach each node
  (a tensor used twice gets the sum of both uses) and accumulating them into the
  leaves' ``.grad``.  Saved buffers are freed as each node is done, unless
  ``retain_graph=True``.

The graph links nodes to nodes (and to leaves), never to intermediate tensors, so
an activation no backward needs is freed as soon as the user drops it.
"""
import numpy as np

from . import backend

# --------------------------------------------------------------------------- grad mode


class _GradMode:
    enabled = True


class no_grad:
    """Context manager (or decorator) that records no graph, as ``torch.no_grad``."""

    def __enter__(self):
        self.previous, _GradMode.enabled = _GradMode.enabled, False

    def __exit__(self, *exc):
        _GradMode.enabled = self.previous

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
        return wrapped


def is_grad_enabled():
    return _GradMode.enabled


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
        y = self.forward(*(t.data for t in inputs))
        out = Tensor(y)
        if _GradMode.enabled and any(self.needs_input_grad):
            # A parent is the node that made an input, the input itself if it is a
            # leaf that wants a gradient, or None if no gradient flows there.
            self.parents = tuple(
                (t._creator if t._creator is not None else t) if t.requires_grad else None
                for t in inputs)
            out.requires_grad = True
            out._creator = self
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
        self.saved_tensors = None


def _topological_order(root):
    """Nodes reachable from ``root``, each after every node that consumes its output."""
    order, seen, stack = [], {id(root)}, [(root, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        stack.append((fn, True))
        for p in fn.parents:
            if isinstance(p, Function) and id(p) not in seen:
                seen.add(id(p))
                stack.append((p, False))
    return order[::-1]  # the output's node first


def _accumulate_leaf(leaf, g, owned=False):
    """Add gradient ``g`` into ``leaf.grad``.

    The first gradient becomes ``.grad`` as it is when ``owned`` (a fresh array that no
    one else holds), else as a copy, so ``.grad`` never aliases another array.  Later
    gradients are added out of place.
    """
    if g.shape != leaf.shape:
        raise RuntimeError(f"autograd: gradient of shape {g.shape} for a leaf of shape {leaf.shape}")
    if g.dtype != leaf.dtype:
        g, owned = g.astype(leaf.dtype), True
    if leaf.grad is None:
        leaf.grad = Tensor(g if owned else g.copy())
    else:
        leaf.grad.data = leaf.grad.data + g


def backward(output, grad=None, retain_graph=False):
    """Reverse-mode differentiation from ``output`` into every leaf that requires grad."""
    if not output.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no graph")
    xp = backend.array_module(output.data)
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for a scalar "
                               f"output, got shape {output.shape}")
        gy = xp.ones_like(output.data)
    else:
        gy = grad.data if isinstance(grad, Tensor) else xp.asarray(grad)
        if gy.shape != output.shape:
            raise ValueError(f"backward: grad has shape {gy.shape}, output has shape {output.shape}")
        gy = gy.astype(output.dtype, copy=False)
    if output._creator is None:          # a leaf: its gradient is the seed itself
        _accumulate_leaf(output, gy)
        return
    grads = {id(output._creator): gy}
    for fn in _topological_order(output._creator):
        gy = grads.pop(id(fn), None)
        if gy is None:
            continue
        if fn.saved_tensors is None:
            raise RuntimeError(
                f"backward: trying to backward through {type(fn).__name__} a second time; its "
                "saved buffers were freed.  Pass retain_graph=True to the first backward.")
        retained = getattr(fn, "retained_output", None)
        if retained is not None:
            retained.grad = Tensor(gy)
        gxs = fn.backward(gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn.parents):
            raise RuntimeError(f"{type(fn).__name__}.backward returned {len(gxs)} gradients "
                               f"for {len(fn.parents)} inputs")
        for parent, gx in zip(fn.parents, gxs):
            if parent is None or gx is None:
                continue
            if isinstance(parent, Tensor):
                # fresh: not the incoming gradient, not a view, not handed to two inputs
                owned = gx is not gy and gx.base is None and sum(g is gx for g in gxs) == 1
                _accumulate_leaf(parent, gx, owned)
            else:
                key = id(parent)
                grads[key] = gx if key not in grads else grads[key] + gx
        if not retain_graph:
            fn.release()


# --------------------------------------------------------------------------- Tensor


def _float_dtype(dt):
    return np.dtype(dt).kind == "f"


class Tensor:
    """An n-dimensional array with a place in the autograd graph.

    ``.data`` is the raw array (numpy or cupy); ``.grad`` is a Tensor filled by
    ``backward``.  Build one with :func:`tinyconv.tensor`.
    """

    __array_ufunc__ = None   # make NumPy hand ``ndarray * Tensor`` to Tensor.__rmul__

    def __init__(self, data, requires_grad=False):
        self.data = data
        self.grad = None
        self._creator = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- properties ----------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self._creator is None

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    # -- autograd ------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not _float_dtype(self.dtype):
            raise RuntimeError(f"only floating point tensors can require gradients, got {self.dtype}")
        if not requires_grad and self._creator is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, grad=None, retain_graph=False):
        """Fill ``.grad`` of every leaf this tensor depends on with d(self)/d(leaf)."""
        backward(self, grad, retain_graph)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor too (learners use it to look inside)."""
        if self._creator is not None:
            self._creator.retained_output = self

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    # -- conversion ----------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array (shares memory on the CPU)."""
        if self.requires_grad:
            raise RuntimeError("numpy(): the tensor requires grad; call .detach().numpy()")
        if self.device.type != "cpu":
            raise TypeError(f"numpy(): the tensor is on {self.device}; call .cpu() first")
        return self.data

    def __dlpack__(self, *args, **kwargs):
        """Zero-copy export (DLPack), e.g. ``torch.from_dlpack(t)``; the data is shared, not copied."""
        if self.requires_grad:
            raise RuntimeError("__dlpack__: the tensor requires grad; export t.detach() instead")
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def __array__(self, dtype=None, copy=None):
        if self.device.type != "cpu":
            raise TypeError(f"cannot convert a tensor on {self.device} to NumPy; call .cpu() first")
        return self.data if dtype is None else self.data.astype(dtype)

    def tolist(self):
        return backend.to_device(self.data, "cpu").tolist()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors, got shape {self.shape}")
        return self.data.reshape(()).item()

    def to(self, *args, dtype=None, device=None):
        """``to(device)``, ``to(dtype)`` or both; differentiable, as in PyTorch."""
        for a in args:
            if isinstance(a, (str, backend.device)):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = _ops().Cast(np.dtype(dtype))(out)
        if device is not None and backend.device(device) != self.device:
            out = _ops().ToDevice(backend.device(device))(out)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(backend.device("cuda", index))

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def __repr__(self):
        body = np.array2string(backend.to_device(self.data, "cpu"), separator=", ", prefix="tensor(")
        extra = "" if self.dtype in (np.float32, np.int64, np.bool_) else f", dtype={self.dtype}"
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self._creator is not None:
            extra += f", grad_fn=<{type(self._creator).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -- math: see math_ops.py for each op's forward and backward --------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, other):
        return _ops().pow(self, other)

    def __rpow__(self, other):
        return _ops().pow(other, self)

    def __neg__(self):
        return _ops().Neg()(self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __getitem__(self, index):
        return _ops().getitem(self, index)

    def exp(self):
        return _ops().Exp()(self)

    def log(self):
        return _ops().Log()(self)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().reduce("sum", self, axis, dim, keepdims, keepdim)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().reduce("mean", self, axis, dim, keepdims, keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Largest values (like ``torch.amax``: ties share the gradient equally)."""
        return _ops().reduce("max", self, axis, dim, keepdims, keepdim)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis = axis if dim is None else dim
        keep = keepdims if keepdim is None else keepdim
        xp = backend.array_module(self.data)
        out = xp.argmax(self.data, axis=axis)
        if keep and axis is not None:
            out = xp.expand_dims(out, axis)
        return Tensor(out)

    def reshape(self, *shape):
        return _ops().reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops().flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        return _ops().permute(self, *dims)

    def transpose(self, dim0, dim1):
        return _ops().transpose(self, dim0, dim1)

    @property
    def T(self):
        return _ops().permute(self, *range(self.ndim - 1, -1, -1))

    # comparisons give bool tensors and no gradient, as in PyTorch
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__


def _ops():
    from . import math_ops   # imported late: math_ops builds on Tensor and Function
    return math_ops


# --------------------------------------------------------------------------- tensor()


def default_dtype_for(data):
    """The dtype PyTorch would infer: arrays keep theirs, Python floats -> float32."""
    if hasattr(data, "dtype") and hasattr(data, "shape"):
        return np.dtype(data.dtype)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return np.dtype(np.float32)
    if arr.dtype.kind in "iu":
        return np.dtype(np.int64)
    if arr.dtype.kind == "b":
        return np.dtype(np.bool_)
    raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} "
                    f"(NumPy sees dtype {arr.dtype})")


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor holding a copy of ``data`` (list, scalar, array or Tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    dtype = np.dtype(dtype) if dtype is not None else default_dtype_for(data)
    dev = backend.device(device) if device is not None else (
        backend.device_of(data) if backend.is_cuda_array(data) else backend.CPU)
    if backend.is_cuda_array(data) or dev.type == "cuda":
        xp = backend.module_for(dev)
        with xp.cuda.Device(dev.index):
            arr = xp.array(data, dtype=dtype)
    else:
        arr = np.array(data, dtype=dtype)
    return Tensor(arr, requires_grad=requires_grad)


_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST = 1, 2, 3


def from_dlpack(obj):
    """A leaf tensor sharing memory with ``obj`` (a PyTorch/CuPy/NumPy/JAX array), zero-copy.

    Anything with ``__dlpack__`` and ``__dlpack_device__`` works: a CPU array becomes a
    NumPy-backed tensor, a CUDA array a CuPy-backed one (which needs CuPy and the GPU).
    """
    if not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and __dlpack_device__, "
                        f"got {type(obj).__name__}")
    dev_type, _ = obj.__dlpack_device__()
    if dev_type in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
        return Tensor(np.from_dlpack(obj))
    if dev_type == _DLPACK_CUDA:
        return Tensor(backend._import_cupy().from_dlpack(obj))
    raise ValueError(f"from_dlpack: unsupported DLPack device type {dev_type} (expected CPU or CUDA)")
