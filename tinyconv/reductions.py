"""Reductions and indices, as PyTorch returns them.

sum, mean, std/var, prod, logsumexp, amax/amin, max/min, argmax/argmin, sort, topk, all/any.

* Every ``dim`` argument goes through one helper, :func:`_dims`: negative dims count from
  the end, a 0-d tensor takes ``dim=0`` or ``dim=-1``, a tuple may not name a dim twice,
  and the errors are PyTorch's (``IndexError: Dimension out of range ...``), prefixed by the op.
* ``max(dim)``/``min(dim)``/``sort``/``topk`` return a named tuple ``(values, indices)``
  (:data:`return_types`), as ``torch.return_types``; ``max()`` without a dim returns the
  value; ``max(a, b)`` with a tensor ``b`` is the elementwise :func:`maximum`.
* Each differentiable op is one Function (forward and backward together); index outputs
  are int64 tensors outside the graph.  The NumPy-style ``axis=``/``keepdims=`` keywords
  are accepted as aliases of ``dim=``/``keepdim=`` (PyTorch accepts them too).

Deliberate differences: ``sort(stable=False)`` and ``topk`` are always stable (ties keep
their order: a valid answer PyTorch may also give, but its topk breaks ties its own way),
``topk(sorted=False)`` returns the values sorted, and ``std``/``var`` over ``dim=()``
(every dim) have the true gradient where PyTorch 2.13's is inf.  The named tuples print
as ``tinyconv.return_types.max(values=..., indices=...)``.
"""
import builtins
import collections
import types
import warnings

import numpy as np

from . import backend
from .autograd import Function, Tensor
from .math_ops import _binary, sum_to

# --------------------------------------------------------------------------- named tuples


def _return_type(name):
    """A named tuple ``(values, indices)`` printed like ``torch.return_types.<name>``."""
    base = collections.namedtuple(name, ["values", "indices"])

    def __repr__(self):
        return f"tinyconv.return_types.{name}(\nvalues={self.values!r},\nindices={self.indices!r})"

    cls = type(name, (base,), {"__slots__": (), "__repr__": __repr__, "__str__": __repr__,
                               "__module__": "tinyconv.return_types"})
    return cls


#: ``tinyconv.return_types.max`` etc., as ``torch.return_types``
return_types = types.SimpleNamespace(**{n: _return_type(n) for n in ("max", "min", "sort", "topk")})

# --------------------------------------------------------------------------- dims


def _dims(op, x, dim, multi=True, nonempty=False):
    """``dim`` (None, an int, or a tuple/list if ``multi``) -> sorted tuple of axes, or None for all.

    As PyTorch: ``-ndim <= d < ndim`` (a 0-d tensor accepts 0 and -1, which name no axis),
    no dim twice, and with ``nonempty`` (max-like ops) no reduction over nothing.
    ``()`` is returned as is: each op says what an empty tuple means.
    """
    if dim is None:
        axes = None
    else:
        items = tuple(dim) if multi and isinstance(dim, (tuple, list)) else (dim,)
        n = builtins.max(x.ndim, 1)
        axes = []
        for d in items:
            if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
                kind = "tuple of ints" if multi else "int"
                raise TypeError(f"{op}(): argument 'dim' must be {kind}, not {type(dim).__name__}")
            if not -n <= d < n:
                raise IndexError(f"{op}(): Dimension out of range (expected to be in range of "
                                 f"[{-n}, {n - 1}], but got {d})")
            axes.append(int(d) % n)
    if nonempty:
        _check_nonempty(op, x, axes if x.ndim else None)
    if axes is None:
        return None
    for i, a in enumerate(axes):
        if a in axes[:i]:
            raise RuntimeError(f"{op}(): dim {a} appears multiple times in the list of dims")
    return tuple(sorted(axes)) if x.ndim else ()


def _dim(op, x, dim, nonempty=False):
    """One dim (an int) -> its axis; a 0-d tensor is seen as shape (1,), so its axis is 0."""
    axes = _dims(op, x, dim, multi=False, nonempty=nonempty)
    return axes[0] if axes else 0


def _alias(dim, keepdim, axis, keepdims):
    """Merge NumPy's ``axis=``/``keepdims=`` into PyTorch's ``dim``/``keepdim``."""
    return (dim if axis is None else axis), bool(keepdim if keepdims is None else keepdims)


def _all_axes(x, axes):
    """None or ``()`` -> every axis (what most reductions mean by them)."""
    return tuple(range(x.ndim)) if not axes else axes


def _count(x, axes):
    """How many elements each output of a reduction over ``axes`` sees."""
    return int(np.prod([x.shape[a] for a in axes], dtype=np.int64))


def _squeeze(y, axes, keepdim):
    """The result of a keepdims=True reduction, with the reduced axes dropped unless ``keepdim``."""
    return y if keepdim else y.squeeze(axis=axes)


def _unsqueeze(gy, axes, keepdim):
    """A gradient with the reduced axes back as size-1 dims, ready to broadcast."""
    return gy if keepdim else backend.array_module(gy).expand_dims(gy, axes)


def _check_nonempty(op, x, axes):
    """PyTorch's errors for max-like ops over nothing (``axes`` None or ``()``: all of them)."""
    if not axes:
        if x.numel() == 0:
            raise RuntimeError(f"{op}(): Expected reduction dim to be specified for input.numel() "
                               "== 0. Specify the reduction dim with the 'dim' argument.")
        return
    for a in axes:
        if x.shape[a] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {a} to have non-zero size.")


_TORCH_NAMES = {"b1": "Bool", "u1": "Byte", "i1": "Char", "i2": "Short", "i4": "Int", "i8": "Long"}


def _torch_dtype_name(dtype):
    """PyTorch's name for a dtype in its messages: int64 -> Long, bool -> Bool, ..."""
    return _TORCH_NAMES.get(np.dtype(dtype).str[1:], str(dtype))


def _integer_sum_dtype(x):
    """Sums and products of bool/integer tensors are int64, as in PyTorch."""
    return np.dtype(np.int64) if x.dtype.kind in "biu" else x.dtype


# --------------------------------------------------------------------------- sum, mean


class Sum(Function):
    """y = sum of x over the axes;  dx = dy broadcast back over them."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim, dtype=_integer_sum_dtype(x))

    def backward(self, gy):
        xp = backend.array_module(gy)
        return xp.broadcast_to(_unsqueeze(gy, self.axes, self.keepdim), self.shape).copy()


class Mean(Sum):
    """y = sum(x) / n over the axes (n elements each; nan when n = 0);  dx = dy / n broadcast."""

    def forward(self, x):
        y = super().forward(x)
        self.n = _count(x, self.axes)
        with np.errstate(invalid="ignore", divide="ignore"):
            return y / x.dtype.type(self.n)

    def backward(self, gy):
        return super().backward(gy) / gy.dtype.type(builtins.max(self.n, 1))


def _cast(x, dtype):
    return x if dtype is None or np.dtype(dtype) == x.dtype else x.to(dtype=np.dtype(dtype))


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Sum over ``dim`` (int or tuple; None or ``()``: all); bool/int tensors sum to int64."""
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    input = _cast(input, dtype)
    return Sum(_all_axes(input, _dims("sum", input, dim)), keepdim)(input)


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Mean over ``dim`` (int or tuple; None or ``()``: all); needs a floating point tensor."""
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    out_dtype = np.dtype(dtype) if dtype is not None else input.dtype
    if out_dtype.kind != "f":
        which = "Input" if dtype is None else "Optional"
        raise RuntimeError(f"mean(): could not infer output dtype. {which} dtype must be either a "
                           f"floating point or complex dtype. Got: {_torch_dtype_name(out_dtype)}")
    input = _cast(input, dtype)
    return Mean(_all_axes(input, _dims("mean", input, dim)), keepdim)(input)


# --------------------------------------------------------------------------- std, var


class Var(Function):
    """v = sum((x - mean)^2) / max(0, n - c) (c = correction);  dv/dx = 2 (x - mean) / (n - c).

    With ``sqrt``: s = sqrt(v), ds/dx = dv/dx / (2 s) (0 where s = 0).  As PyTorch's, a
    whole-tensor reduction with n <= c has gradient inf (nan where x = mean).
    """

    def __init__(self, axes, correction, keepdim, sqrt, whole):
        self.axes, self.correction, self.keepdim = axes, correction, keepdim
        self.sqrt, self.whole = sqrt, whole

    def forward(self, x):
        xp = backend.array_module(x)
        n = _count(x, self.axes)
        self.n_minus_c = x.dtype.type(n - self.correction)
        self.at_mean = None
        if self.n_minus_c <= 0:
            warnings.warn(f"{'std' if self.sqrt else 'var'}(): degrees of freedom is <= 0. "
                          "Correction should be strictly less than the reduction factor (input "
                          "numel divided by output numel).", UserWarning, stacklevel=4)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = x.sum(axis=self.axes, keepdims=True) / x.dtype.type(n)
            centred = x - mean
            if self.whole and self.n_minus_c <= 0:
                self.at_mean = x == mean
            y = (centred * centred).sum(axis=self.axes, keepdims=True) / \
                builtins.max(self.n_minus_c, x.dtype.type(0))
            if self.sqrt:
                y = xp.sqrt(y)
        self.save_for_backward(centred, y)
        return _squeeze(y, self.axes, self.keepdim)

    def backward(self, gy):
        centred, y = self.saved_tensors
        xp = backend.array_module(gy)
        g = gy.reshape(y.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.sqrt:
                g = xp.where(y == 0, 0, g / (2 * y)).astype(gy.dtype)
            if self.whole and self.n_minus_c <= 0:
                return g * xp.where(self.at_mean, np.nan, np.inf).astype(gy.dtype)
            return g * centred * (2 / self.n_minus_c)


def _var(op, sqrt, input, dim, unbiased, keepdim, correction, axis, keepdims):
    if isinstance(dim, bool):                      # std(True): the old unbiased-only overload
        dim, unbiased = None, dim
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}(): give either unbiased or correction, not both")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}(): std and var only support floating point and complex dtypes, "
                           f"got {input.dtype}")
    correction = correction if correction is not None else (1 if unbiased is None else int(unbiased))
    axes = _dims(op, input, dim)
    return Var(_all_axes(input, axes), correction, keepdim, sqrt, not axes)(input)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    """Variance over ``dim``, dividing by n - correction (default 1; ``unbiased=False``: 0)."""
    return _var("var", False, input, dim, unbiased, keepdim, correction, axis, keepdims)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    """Standard deviation over ``dim``: sqrt of :func:`var`."""
    return _var("std", True, input, dim, unbiased, keepdim, correction, axis, keepdims)


# --------------------------------------------------------------------------- prod, logsumexp


class Prod(Function):
    """y = prod of x along one axis (None: all);  dx_i = dy * prod_{j != i} x_j.

    That is dy * y / x_i when no x is zero (as PyTorch, so nan/inf behave the same); with
    zeros, the product of the elements before i times the product of those after i.
    """

    def __init__(self, axis, keepdim):
        self.axis, self.keepdim = axis, keepdim

    def forward(self, x):
        with np.errstate(invalid="ignore", over="ignore"):       # inf * 0 is nan, silently
            y = x.prod(axis=self.axis, keepdims=True, dtype=_integer_sum_dtype(x))
        self.save_for_backward(x, y)
        return y.reshape(()) if self.axis is None else _squeeze(y, (self.axis,), self.keepdim)

    def backward(self, gy):
        x, y = self.saved_tensors
        g = gy.reshape(y.shape)
        if x.ndim == 0:
            return g
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return g * (y / x if not (x == 0).any() else _prod_of_others(x, self.axis))


def _prod_of_others(x, axis):
    """prod_{j != i} x_j along ``axis`` (None: the flattened x), by exclusive cumulative products."""
    xp = backend.array_module(x)
    m = xp.moveaxis(x.reshape(-1) if axis is None else x, 0 if axis is None else axis, -1)
    ones = xp.ones(m.shape[:-1] + (1,), dtype=m.dtype)
    before = xp.cumprod(xp.concatenate([ones, m], axis=-1), axis=-1)[..., :-1]
    after = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(m, -1)], axis=-1), axis=-1)[..., :-1], -1)
    return xp.moveaxis(before * after, -1, 0 if axis is None else axis).reshape(x.shape)


def prod(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Product over one ``dim`` (None: all); bool/int tensors multiply in int64."""
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    input = _cast(input, dtype)
    axis = None if dim is None else _dim("prod", input, dim)
    return Prod(axis if input.ndim else None, keepdim)(input)


class LogSumExp(Function):
    """y = log(sum(exp(x))) over the axes, computed as m + log(sum(exp(x - m))) with m = max(x);
    dx = dy * exp(x - y) (the softmax)."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        xp = backend.array_module(x)
        if x.size:
            m = xp.max(x, axis=self.axes, keepdims=True)
            m = xp.where(xp.isinf(m), 0, m).astype(x.dtype)      # inf - inf would give nan
        else:
            m = xp.zeros(tuple(1 if i in self.axes else n for i, n in enumerate(x.shape)), x.dtype)
        with np.errstate(divide="ignore"):
            y = m + xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        self.save_for_backward(x, y)
        return _squeeze(y, self.axes, self.keepdim)

    def backward(self, gy):
        x, y = self.saved_tensors
        xp = backend.array_module(x)
        with np.errstate(invalid="ignore"):
            return gy.reshape(y.shape) * xp.exp(x - y)


def logsumexp(input, dim, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))) over ``dim`` (int or tuple, required), without overflow."""
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    if dim is None:
        raise TypeError("logsumexp(): argument 'dim' must be tuple of ints, not NoneType")
    axes = _dims("logsumexp", input, dim)
    if axes == () and input.ndim:
        raise RuntimeError("logsumexp(): dim=() is not supported (PyTorch 2.13 raises too); "
                           "name the dims to reduce")
    if input.dtype.kind != "f":
        input = input.to(dtype=np.dtype(np.float32))
    return LogSumExp(axes, keepdim)(input)


# --------------------------------------------------------------------------- amax, amin, max, min


class AMax(Function):
    """y = max (or min) of x over the axes;  dx = dy shared equally between the elements equal to y.

    ``nan_aware``: a nan result sends its gradient to the nans (``max()``, as PyTorch);
    otherwise, as PyTorch's ``amax``, a nan result gives nan gradients.
    """

    def __init__(self, axes, keepdim, largest, nan_aware=False):
        self.axes, self.keepdim, self.largest, self.nan_aware = axes, keepdim, largest, nan_aware

    def forward(self, x):
        xp = backend.array_module(x)
        y = (xp.max if self.largest else xp.min)(x, axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return _squeeze(y, self.axes, self.keepdim)

    def backward(self, gy):
        x, y = self.saved_tensors
        xp = backend.array_module(x)
        mask = x == y
        if self.nan_aware:
            mask = xp.where(xp.isnan(y), xp.isnan(x), mask)
        count = mask.sum(axis=self.axes, keepdims=True).astype(gy.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (gy.reshape(y.shape) / count) * mask


def _amax(op, largest, input, dim, keepdim, axis, keepdims):
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    axes = _dims(op, input, dim, nonempty=True)
    return AMax(_all_axes(input, axes), keepdim, largest)(input)


def amax(input, dim=(), keepdim=False, *, axis=None, keepdims=None):
    """Max over ``dim`` (int or tuple; ``()``: all); the gradient is shared between ties."""
    return _amax("amax", True, input, dim, keepdim, axis, keepdims)


def amin(input, dim=(), keepdim=False, *, axis=None, keepdims=None):
    """Min over ``dim`` (int or tuple; ``()``: all); the gradient is shared between ties."""
    return _amax("amin", False, input, dim, keepdim, axis, keepdims)


def _arg(x, axis, largest):
    """Index of the first max (min) along ``axis``; a nan wins, as in PyTorch."""
    xp = backend.array_module(x)
    return (xp.argmax if largest else xp.argmin)(x, axis=axis, keepdims=True).astype(np.int64, copy=False)


class MaxDim(Function):
    """values = x at the index of the max (min) along one axis;  dx = dy at that index only."""

    def __init__(self, axis, keepdim, largest):
        self.axis, self.keepdim, self.largest = axis, keepdim, largest

    def forward(self, x):
        xp = backend.array_module(x)
        x1 = x.reshape(1) if x.ndim == 0 else x        # a 0-d tensor: its one element
        self.shape, self.n, self.index = x.shape, x1.shape[self.axis], _arg(x1, self.axis, self.largest)
        values = xp.take_along_axis(x1, self.index, axis=self.axis)
        out = x.shape if x.ndim == 0 else _squeeze(values, (self.axis,), self.keepdim).shape
        self.indices = self.index.reshape(out)
        return values.reshape(out)

    def backward(self, gy):
        xp = backend.array_module(gy)
        at = xp.arange(self.n).reshape((self.n,) + (1,) * (self.index.ndim - self.axis - 1))
        gx = xp.where(at == self.index, gy.reshape(self.index.shape), 0)
        return gx.astype(gy.dtype).reshape(self.shape)


class Maximum(Function):
    """y = max(a, b) elementwise (nan if either is);  dy goes to the larger (half each on a tie)."""

    largest = True

    def forward(self, a, b):
        self.save_for_backward(a, b)
        xp = backend.array_module(a)
        return (xp.maximum if self.largest else xp.minimum)(a, b)

    def backward(self, gy):
        a, b = self.saved_tensors
        xp = backend.array_module(gy)
        share = xp.where(a == b, gy / 2, gy)
        a_loses, b_loses = (a < b, a > b) if self.largest else (a > b, a < b)
        return (sum_to(xp.where(a_loses, 0, share).astype(gy.dtype), a.shape),
                sum_to(xp.where(b_loses, 0, share).astype(gy.dtype), b.shape))


class Minimum(Maximum):
    """y = min(a, b) elementwise (nan if either is);  dy goes to the smaller (half each on a tie)."""

    largest = False


def maximum(input, other):
    """Elementwise max of two tensors (broadcast, promoted); nan wins."""
    _require_tensor("maximum", other)
    return _binary(Maximum, input, other)


def minimum(input, other):
    """Elementwise min of two tensors (broadcast, promoted); nan wins."""
    _require_tensor("minimum", other)
    return _binary(Minimum, input, other)


def _require_tensor(op, other):
    if not isinstance(other, Tensor):
        raise TypeError(f"{op}(): argument 'other' must be Tensor, not {type(other).__name__}")


def _max(op, largest, input, dim, keepdim, other, axis, keepdims):
    """``max()``: the value;  ``max(dim)``: (values, indices);  ``max(other)``: elementwise."""
    if isinstance(dim, Tensor) or other is not None:
        return (maximum if largest else minimum)(input, dim if other is None else other)
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    if dim is None:
        if keepdim:
            raise TypeError(f"{op}(): keepdim=True needs a dim (as in PyTorch)")
        _check_nonempty(op, input, None)
        return AMax(tuple(range(input.ndim)), False, largest, nan_aware=True)(input)
    fn = MaxDim(_dim(op, input, dim, nonempty=True), keepdim, largest)
    values = fn(input)
    return getattr(return_types, op)(values, Tensor(fn.indices))


def max(input, dim=None, keepdim=False, *, other=None, axis=None, keepdims=None):
    """``max()`` -> the max;  ``max(dim, keepdim)`` -> (values, indices);  ``max(tensor)`` -> maximum.

    The gradient of ``max(dim)`` flows to the returned index only; that of ``max()`` is
    shared between ties (as PyTorch's).
    """
    return _max("max", True, input, dim, keepdim, other, axis, keepdims)


def min(input, dim=None, keepdim=False, *, other=None, axis=None, keepdims=None):
    """``min()`` -> the min;  ``min(dim, keepdim)`` -> (values, indices);  ``min(tensor)`` -> minimum."""
    return _max("min", False, input, dim, keepdim, other, axis, keepdims)


# --------------------------------------------------------------------------- argmax, argmin


def _argmax(op, largest, input, dim, keepdim, axis, keepdims):
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    x = input.array
    if dim is None:                            # an index into the flattened tensor
        if x.size == 0:                        # (an IndexError here, in PyTorch)
            raise IndexError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0.")
        return Tensor(_arg(x.reshape(-1), 0, largest).reshape((1,) * x.ndim if keepdim else ()))
    axis = _dim(op, input, dim, nonempty=True)
    idx = _arg(x.reshape(1) if x.ndim == 0 else x, axis, largest)
    return Tensor(idx.reshape(x.shape) if x.ndim == 0 else _squeeze(idx, (axis,), keepdim))


def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the first max along ``dim`` (None: into the flattened tensor); an int64 tensor."""
    return _argmax("argmax", True, input, dim, keepdim, axis, keepdims)


def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the first min along ``dim`` (None: into the flattened tensor); an int64 tensor."""
    return _argmax("argmin", False, input, dim, keepdim, axis, keepdims)


# --------------------------------------------------------------------------- sort, topk


def _order(x, axis, descending):
    """A stable ordering along ``axis``; nan sorts as the largest value (as PyTorch).

    Descending order is the ascending order of the flipped array, flipped back, so
    equal elements keep their original order in both directions.
    """
    xp = backend.array_module(x)
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable")
    flipped = xp.argsort(xp.flip(x, axis), axis=axis, kind="stable")
    return x.shape[axis] - 1 - xp.flip(flipped, axis)


class Sort(Function):
    """values = x permuted along one axis by a stable order (its first ``k``, for topk);
    dx = dy (zero-padded to the full length) sent back through the inverse permutation."""

    def __init__(self, axis, descending, k=None):
        self.axis, self.descending, self.k = axis, descending, k

    def forward(self, x):
        xp = backend.array_module(x)
        x1 = x.reshape(1) if x.ndim == 0 else x        # a 0-d tensor: its one element
        self.shape, self.full = x.shape, _order(x1, self.axis, self.descending)
        k = x1.shape[self.axis] if self.k is None else self.k
        self.order = xp.take(self.full, xp.arange(k), axis=self.axis)
        values = xp.take_along_axis(x1, self.order, axis=self.axis)
        return values.reshape(x.shape) if x.ndim == 0 else values

    def backward(self, gy):
        xp = backend.array_module(gy)
        gy = gy.reshape(self.order.shape)
        pad = list(gy.shape)
        pad[self.axis] = self.full.shape[self.axis] - pad[self.axis]
        padded = xp.concatenate([gy, xp.zeros(pad, dtype=gy.dtype)], axis=self.axis)
        inverse = xp.argsort(self.full, axis=self.axis)
        return xp.take_along_axis(padded, inverse, axis=self.axis).reshape(self.shape)


def _sorted(op, input, axis, descending, k=None):
    fn = Sort(axis, descending, k)
    values = fn(input)
    indices = fn.order.reshape(values.shape).astype(np.int64, copy=False)
    return getattr(return_types, op)(values, Tensor(indices))


def sort(input, dim=-1, descending=False, stable=False, *, axis=None):
    """(values, indices) sorted along ``dim``; nan counts as the largest.  Always stable."""
    dim = dim if axis is None else axis
    return _sorted("sort", input, _dim("sort", input, dim), bool(descending))


def topk(input, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the ``k`` largest (``largest=False``: smallest) along ``dim``.

    Ties keep their order; the values are always sorted (``sorted=False`` too).
    """
    axis = _dim("topk", input, dim)
    n = input.shape[axis] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk(): selected index k out of range (k={k}, dim {dim} has size {n})")
    return _sorted("topk", input, axis, bool(largest), builtins.max(k, 1) if input.ndim == 0 else k)


# --------------------------------------------------------------------------- all, any


def _all(op, input, dim, keepdim, axis, keepdims):
    dim, keepdim = _alias(dim, keepdim, axis, keepdims)
    x = input.array
    xp = backend.array_module(x)
    axes = _dims(op, input, dim)             # () reduces nothing here, as in PyTorch
    out = getattr(xp, op)(x, axis=axes, keepdims=keepdim)
    return Tensor(xp.asarray(out).astype(np.uint8 if x.dtype == np.uint8 else np.bool_))


def all(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """True where every element along ``dim`` (int or tuple; None: all) is nonzero; a bool tensor."""
    return _all("all", input, dim, keepdim, axis, keepdims)


def any(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """True where some element along ``dim`` (int or tuple; None: all) is nonzero; a bool tensor."""
    return _all("any", input, dim, keepdim, axis, keepdims)
