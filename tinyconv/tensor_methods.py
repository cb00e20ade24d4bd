"""The methods of ``Tensor`` that do math: operators, reductions, shape and in-place ops.

Each method here is one line that hands the work to the op that defines it, with its
forward and backward: arithmetic and shape ops in :mod:`tinyconv.math_ops` and
:mod:`tinyconv.shape_ops`, pointwise math in :mod:`tinyconv.pointwise`, reductions and
sorting in :mod:`tinyconv.reductions`.

The dependency goes one way: :mod:`tinyconv.autograd` defines ``Tensor`` and knows no op;
the op modules build on it; this module imports both and binds the methods below onto
``Tensor`` once, when tinyconv is imported (``_bind`` at the bottom; ``tinyconv/__init__.py``
imports this module first), as Chainer's ``install_variable_arithmetics``.  So no operator
call runs an import (tests/test_layering.py checks both).

In-place ops (``add_``, ``x += y``, ``t[i] = v``, ...) follow PyTorch: the result is
computed by the out-of-place op and written into the tensor's own memory (its views
and ``.data`` see it), the version counter goes up, and when the op was recorded the
tensor becomes that op's output (``Tensor._write``).
"""
import numpy as np

from . import dtypes, math_ops, pointwise, random, reductions, shape_ops
from .autograd import Tensor
from .backend import device as as_device


class TensorMethods:
    """Bound onto :class:`~tinyconv.autograd.Tensor` (``_bind``); see each op's Function for the math."""

    # -- arithmetic --------------------------------------------------------------
    def __add__(self, other):
        return math_ops.add(self, other)

    def __radd__(self, other):
        return math_ops.add(other, self)

    def __sub__(self, other):
        return math_ops.sub(self, other)

    def __rsub__(self, other):
        return math_ops.sub(other, self)

    def __mul__(self, other):
        return math_ops.mul(self, other)

    def __rmul__(self, other):
        return math_ops.mul(other, self)

    def __truediv__(self, other):
        return math_ops.div(self, other)

    def __rtruediv__(self, other):
        return math_ops.div(other, self)

    def __pow__(self, other):
        return math_ops.pow(self, other)

    def __rpow__(self, other):
        return math_ops.pow(other, self)

    def pow(self, exponent):
        return math_ops.pow(self, exponent)

    def __neg__(self):
        return math_ops.Neg()(self)

    def __matmul__(self, other):
        return math_ops.matmul(self, other)

    def __rmatmul__(self, other):
        return math_ops.matmul(other, self)

    def clamp(self, min=None, max=None):
        return math_ops.clamp(self, min, max)

    clip = clamp

    # -- comparisons: bool tensors, no gradient, as in PyTorch ----------------------
    def __eq__(self, other):
        return math_ops.compare("eq", self, other)

    def __ne__(self, other):
        return math_ops.compare("ne", self, other)

    def __lt__(self, other):
        return math_ops.compare("lt", self, other)

    def __le__(self, other):
        return math_ops.compare("le", self, other)

    def __gt__(self, other):
        return math_ops.compare("gt", self, other)

    def __ge__(self, other):
        return math_ops.compare("ge", self, other)

    __hash__ = object.__hash__

    # -- reductions and indices (tinyconv/reductions.py) ----------------------------
    def sum(self, *args, **kwargs):
        return reductions.sum(self, *args, **kwargs)

    def mean(self, *args, **kwargs):
        return reductions.mean(self, *args, **kwargs)

    def max(self, *args, **kwargs):
        return reductions.max(self, *args, **kwargs)

    def min(self, *args, **kwargs):
        return reductions.min(self, *args, **kwargs)

    def amax(self, *args, **kwargs):
        return reductions.amax(self, *args, **kwargs)

    def amin(self, *args, **kwargs):
        return reductions.amin(self, *args, **kwargs)

    def argmax(self, *args, **kwargs):
        return reductions.argmax(self, *args, **kwargs)

    def argmin(self, *args, **kwargs):
        return reductions.argmin(self, *args, **kwargs)

    def sort(self, *args, **kwargs):
        return reductions.sort(self, *args, **kwargs)

    def topk(self, *args, **kwargs):
        return reductions.topk(self, *args, **kwargs)

    def all(self, *args, **kwargs):
        return reductions.all(self, *args, **kwargs)

    def any(self, *args, **kwargs):
        return reductions.any(self, *args, **kwargs)

    def std(self, *args, **kwargs):
        return reductions.std(self, *args, **kwargs)

    def var(self, *args, **kwargs):
        return reductions.var(self, *args, **kwargs)

    def prod(self, *args, **kwargs):
        return reductions.prod(self, *args, **kwargs)

    def logsumexp(self, *args, **kwargs):
        return reductions.logsumexp(self, *args, **kwargs)

    def maximum(self, other):
        return reductions.maximum(self, other)

    def minimum(self, other):
        return reductions.minimum(self, other)

    # -- shape ----------------------------------------------------------------------
    def __getitem__(self, index):
        return math_ops.getitem(self, index)

    def __setitem__(self, index, value):
        """``t[index] = value`` in place; differentiable in ``t`` and ``value``."""
        math_ops.setitem_(self, index, value)

    def _setitem(self, index, value):
        """``self`` with ``self[index] = value``, out of place (``Tensor._write`` into a view)."""
        return math_ops.setitem(self, index, value)

    def reshape(self, *shape):
        return math_ops.reshape(self, *shape)

    def view(self, *shape):
        """The same memory with a new shape (or read as another dtype), as PyTorch's ``view``."""
        if len(shape) == 1 and (isinstance(shape[0], np.dtype)
                                or isinstance(shape[0], type) and issubclass(shape[0], np.generic)):
            return math_ops.view_dtype(self, shape[0])
        return math_ops.view(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return math_ops.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        return math_ops.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return math_ops.transpose(self, dim0, dim1)

    @property
    def T(self):
        return math_ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    def clone(self):
        """A copy in new memory, differentiable (gradient flows back unchanged)."""
        return math_ops.Clone()(self)

    # -- shape, indexing and products (tinyconv/shape_ops.py) -------------------------
    def nelement(self):
        return self.numel()

    def ndimension(self):
        return self.dim()

    def _restride_(self, view, op):
        """In-place shape ops (``t_``, ``squeeze_``...): ``self`` becomes ``view``, a view of
        its own memory with new shape and strides (and, when recorded, ``view``'s node)."""
        node = view.grad_fn
        if node is not None and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        self.array = view.array
        self._version_counter.n += 1
        if node is not None:
            self._rebase(node)
        return self

    def t_(self):
        return self._restride_(shape_ops.t(self), "t_")

    def transpose_(self, dim0, dim1):
        return self._restride_(self.transpose(dim0, dim1), "transpose_")

    def squeeze_(self, dim=None):
        return self._restride_(self.squeeze(dim), "squeeze_")

    def unsqueeze_(self, dim):
        return self._restride_(self.unsqueeze(dim), "unsqueeze_")

    def squeeze(self, dim=None):
        return shape_ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return shape_ops.unsqueeze(self, dim)

    def expand(self, *sizes):
        return shape_ops.expand(self, *sizes)

    def expand_as(self, other):
        return shape_ops.expand(self, other.shape)

    def repeat(self, *sizes):
        return shape_ops.repeat(self, *sizes)

    def tile(self, *dims):
        return shape_ops.tile(self, dims[0] if len(dims) == 1 else dims)

    def view_as(self, other):
        return shape_ops.view_as(self, other)

    def reshape_as(self, other):
        return shape_ops.reshape_as(self, other)

    def unflatten(self, dim, sizes):
        return shape_ops.unflatten(self, dim, sizes)

    def t(self):
        return shape_ops.t(self)

    @property
    def mT(self):
        return shape_ops.mT(self)

    def contiguous(self, memory_format=None):
        return shape_ops.contiguous(self)

    def is_contiguous(self, memory_format=None):
        return bool(getattr(getattr(self.array, "flags", None), "c_contiguous", True))

    def narrow(self, dim, start, length):
        return shape_ops.narrow(self, dim, start, length)

    def movedim(self, source, destination):
        return shape_ops.movedim(self, source, destination)

    moveaxis = movedim

    def swapaxes(self, axis0, axis1):
        return shape_ops.swapaxes(self, axis0, axis1)

    swapdims = swapaxes

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return shape_ops.diagonal(self, offset, dim1, dim2)

    def diag(self, diagonal=0):
        return shape_ops.diag(self, diagonal)

    def chunk(self, chunks, dim=0):
        return shape_ops.chunk(self, chunks, dim)

    def split(self, split_size, dim=0):
        return shape_ops.split(self, split_size, dim)

    def unbind(self, dim=0):
        return shape_ops.unbind(self, dim)

    def flip(self, *dims):
        return shape_ops.flip(self, *dims)

    def roll(self, shifts, dims=None):
        return shape_ops.roll(self, shifts, dims)

    def gather(self, dim, index, *, sparse_grad=False):
        return shape_ops.gather(self, dim, index)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return shape_ops.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        return self._write(self.scatter(dim, index, src, value=value, reduce=reduce), "scatter_")

    def scatter_add(self, dim, index, src):
        return shape_ops.scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return self._write(self.scatter_add(dim, index, src), "scatter_add_")

    def index_select(self, dim, index):
        return shape_ops.index_select(self, dim, index)

    def masked_select(self, mask):
        return shape_ops.masked_select(self, mask)

    def take(self, index):
        return shape_ops.take(self, index)

    def nonzero(self, *, as_tuple=False):
        return shape_ops.nonzero(self, as_tuple=as_tuple)

    def tril(self, diagonal=0):
        return shape_ops.tril(self, diagonal)

    def triu(self, diagonal=0):
        return shape_ops.triu(self, diagonal)

    def tril_(self, diagonal=0):
        return self._write(self.tril(diagonal), "tril_")

    def triu_(self, diagonal=0):
        return self._write(self.triu(diagonal), "triu_")

    def cumsum(self, dim, *, dtype=None):
        return shape_ops.cumsum(self, dim, dtype=dtype)

    def cumprod(self, dim, *, dtype=None):
        return shape_ops.cumprod(self, dim, dtype=dtype)

    def argsort(self, dim=-1, descending=False, stable=False):
        return shape_ops.argsort(self, dim, descending, stable)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return shape_ops.norm(self, p, dim, keepdim, dtype)

    def mm(self, mat2):
        return shape_ops.mm(self, mat2)

    def bmm(self, mat2):
        return shape_ops.bmm(self, mat2)

    def dot(self, other):
        return shape_ops.dot(self, other)

    def outer(self, vec2):
        return shape_ops.outer(self, vec2)

    ger = outer

    # -- in-place ops: out-of-place result written into self (Tensor._write) --------
    def add_(self, other, *, alpha=1):
        return self._write(self + (other if alpha == 1 else other * alpha), "add_")

    def sub_(self, other, *, alpha=1):
        return self._write(self - (other if alpha == 1 else other * alpha), "sub_")

    def mul_(self, other):
        return self._write(self * other, "mul_")

    def div_(self, other, *, rounding_mode=None):
        return self._write(self.div(other, rounding_mode=rounding_mode), "div_")

    def pow_(self, exponent):
        return self._write(self ** exponent, "pow_")

    def clamp_(self, min=None, max=None):
        return self._write(self.clamp(min, max), "clamp_")

    def copy_(self, src, non_blocking=False):
        return self._write(math_ops.copy_into(self, src), "copy_")

    def fill_(self, value):
        return self._write(math_ops.overwrite(self, value, "fill_"), "fill_")

    def zero_(self):
        return self._write(math_ops.overwrite(self, 0, "zero_"), "zero_")

    def normal_(self, mean=0.0, std=1.0):
        """Fill with draws from N(mean, std^2), from tinyconv's seeded generator."""
        draws = random.generator().normal(mean, std, self.shape)
        return self._write(math_ops.overwrite(self, draws, "normal_"), "normal_")

    def uniform_(self, a=0.0, b=1.0):
        """Fill with draws from U[a, b), from tinyconv's seeded generator."""
        draws = random.generator().uniform(a, b, self.shape)
        return self._write(math_ops.overwrite(self, draws, "uniform_"), "uniform_")

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __ipow__(self, other):
        return self.pow_(other)

    # -- conversion -------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other)``; differentiable.

        As PyTorch: positional bools after them are ``non_blocking`` and ``copy``, and
        ``copy=True`` gives new memory even when nothing changes.
        """
        flags = []
        for a in args:
            if isinstance(a, bool):
                flags.append(a)
            elif flags:
                raise TypeError(f"to(): unexpected argument {a!r} after the boolean flags")
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype          # to(other): other's device and dtype
            elif isinstance(a, str) or type(a).__name__ == "device":
                device = a
            else:
                try:
                    dtype = np.dtype(a)
                except TypeError:
                    raise TypeError(f"to(): expected a device, a dtype or a tensor, got "
                                    f"{type(a).__name__} {a!r}") from None
        if len(flags) > 2:
            raise TypeError(f"to(): at most two flags (non_blocking, copy), got {len(flags)}")
        copy = flags[1] if len(flags) > 1 else copy
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = math_ops.Cast(np.dtype(dtype))(out)
        if device is not None and as_device(device) != self.device:
            out = math_ops.ToDevice(as_device(device))(out)
        return out.clone() if copy and out is self else out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(as_device("cuda", index))


# ------------------------------------------------------------------------------------------
# The everyday tensor API (issue 12): pointwise math, comparisons, selection, dtype methods.
# Each method hands the work to tinyconv/pointwise.py (one table of unary ops, UNARY) or
# tinyconv/dtypes.py; an in-place ``x.op_()`` is ``x._write(x.op())``, as the ops above.


def _unary_method(name):
    def method(self):
        return pointwise.unary(name, self)
    method.__name__ = name
    method.__doc__ = f"``torch.{name}(self)`` (see ``tinyconv.pointwise.UNARY``)."
    return method


def _inplace(name):
    def method(self, *args, **kwargs):
        return self._write(getattr(self, name)(*args, **kwargs), name + "_")
    method.__name__ = name + "_"
    method.__doc__ = f"``{name}`` in place."
    return method


def _cast_method(name, dtype):
    def method(self):
        return self.to(dtype)
    method.__name__ = name
    method.__doc__ = f"``self.to({np.dtype(dtype).name})``, as ``torch.Tensor.{name}``."
    return method


#: x.half(), x.float(), ...: a cast to the dtype PyTorch's method names
_CASTS = {"half": np.float16, "float": np.float32, "double": np.float64, "char": np.int8,
          "short": np.int16, "int": np.int32, "long": np.int64, "byte": np.uint8, "bool": np.bool_}


def _compare_method(op):
    def method(self, other):
        return math_ops.compare(op, self, other)
    method.__name__ = op
    return method


_UNARY_METHODS = ("abs", "neg", "square", "sign", "floor", "ceil", "round", "trunc", "frac",
                  "reciprocal", "sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10",
                  "log1p", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
                  "sigmoid", "erf")


class _EverydayAPI:
    """The methods of the everyday API (mixed into TensorMethods below)."""

    def relu(self):
        return pointwise.relu(self)

    def softmax(self, dim, dtype=None):
        return pointwise.softmax(self, dim, dtype)

    def log_softmax(self, dim, dtype=None):
        return pointwise.log_softmax(self, dim, dtype)

    def add(self, other, *, alpha=1):
        return pointwise.add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1):
        return pointwise.sub(self, other, alpha=alpha)

    def mul(self, other):
        return pointwise.mul(self, other)

    def div(self, other, *, rounding_mode=None):
        return pointwise.div(self, other, rounding_mode=rounding_mode)

    def atan2(self, other):
        return pointwise.atan2(self, other)

    def remainder(self, other):
        return pointwise.remainder(self, other)

    def fmod(self, other):
        return pointwise.fmod(self, other)

    def floor_divide(self, other):
        return pointwise.floor_divide(self, other)

    def __abs__(self):
        return self.abs()

    def __floordiv__(self, other):
        return pointwise.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return pointwise.floor_divide(math_ops._as_tensor(other, self), self)

    def __mod__(self, other):
        return pointwise.remainder(self, other)

    def __rmod__(self, other):
        return pointwise.remainder(math_ops._as_tensor(other, self), self)

    def __invert__(self):
        return pointwise.bitwise_not(self)

    def __and__(self, other):
        return pointwise.bitwise_and(self, other)

    def __or__(self, other):
        return pointwise.bitwise_or(self, other)

    def __xor__(self, other):
        return pointwise.bitwise_xor(self, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __iand__(self, other):
        return self._write(self & other, "__iand__")

    def __ior__(self, other):
        return self._write(self | other, "__ior__")

    def matmul(self, other):
        return math_ops.matmul(self, other)

    def where(self, condition, other):
        """``x.where(cond, y)`` is ``torch.where(cond, x, y)``."""
        return pointwise.where(condition, self, other)

    def masked_fill(self, mask, value):
        return pointwise.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return self._write(pointwise.masked_fill(self, mask, value), "masked_fill_")


    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return pointwise.isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return pointwise.allclose(self, other, rtol, atol, equal_nan)

    def equal(self, other):
        return pointwise.equal(self, other)

    def isnan(self):
        return pointwise.isnan(self)

    def isinf(self):
        return pointwise.isinf(self)

    def isfinite(self):
        return pointwise.isfinite(self)

    # -- dtypes (tinyconv/dtypes.py); x.float(), x.long(), ... are _CASTS below -----
    def is_floating_point(self):
        return self.dtype.kind == "f"

    def type(self, dtype=None, non_blocking=False):
        """``x.type()`` is PyTorch's type name ('torch.FloatTensor'); ``x.type(t)`` casts."""
        if dtype is None:
            return dtypes.type_name(self.dtype, self.device.type)
        return self.to(dtypes.parse_type(dtype))


for _name in _UNARY_METHODS:
    setattr(_EverydayAPI, _name, _unary_method(_name))
for _name, _dtype in _CASTS.items():
    setattr(_EverydayAPI, _name, _cast_method(_name, _dtype))
for _name in _UNARY_METHODS + ("relu", "clamp", "clip", "atan2"):
    if _name not in ("neg",):
        setattr(_EverydayAPI, _name + "_", _inplace(_name))
_EverydayAPI.neg_ = _inplace("neg")
for _name in ("logical_not", "logical_and", "logical_or", "logical_xor", "bitwise_not",
              "bitwise_and", "bitwise_or", "bitwise_xor"):
    setattr(_EverydayAPI, _name, (lambda n: lambda self, *a: getattr(pointwise, n)(self, *a))(_name))
for _name in ("remainder", "fmod", "floor_divide", "logical_not"):
    setattr(_EverydayAPI, _name + "_", _inplace(_name))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(_EverydayAPI, _name, _compare_method(_name))
    setattr(_EverydayAPI, _name + "_", _inplace(_name))
_EverydayAPI.absolute, _EverydayAPI.negative = _EverydayAPI.abs, _EverydayAPI.neg
_EverydayAPI.multiply, _EverydayAPI.divide, _EverydayAPI.subtract = (
    _EverydayAPI.mul, _EverydayAPI.div, _EverydayAPI.sub)
_EverydayAPI.greater, _EverydayAPI.less = _EverydayAPI.gt, _EverydayAPI.lt

_NOT_METHODS = ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__")


def _bind():
    """Put the methods above onto ``Tensor``, once (the ops of TensorMethods win over the
    everyday API's; the core's own attributes are never replaced)."""
    methods = {**vars(_EverydayAPI), **vars(TensorMethods)}
    for name, method in methods.items():
        if name not in _NOT_METHODS and name not in vars(Tensor):
            setattr(Tensor, name, method)


_bind()
