"""Tensor arithmetic, casts, comparisons, matmul, the view ops (reshape, permute, getitem) and
the in-place helpers: each a Function with forward and backward (reductions are in
:mod:`tinyconv.reductions`, the other shape ops in :mod:`tinyconv.shape_ops`).

Broadcasting and type promotion follow PyTorch: a Python scalar takes the
tensor's dtype (a float scalar with an integer tensor gives float32), a float
tensor beats an integer one, otherwise the wider dtype wins, and a 0-d tensor
yields to a dimensioned one of the same kind.  Inputs are cast (differentiably)
before the op, so each Function sees one dtype.
"""
import functools
import math
import numbers
import warnings

import numpy as np

from . import backend
from .autograd import Function, Tensor, _address, is_grad_enabled, wrap_dim
from .backends.cuda import matmul as matmul_flags
from .dtypes import TYPE_NAMES
from .kernels.gemm import blas_matrix, gemm
from .creation import tensor

# --------------------------------------------------------------------------- out=


def accepts_out(fn):
    """Give ``fn`` PyTorch's ``out=`` keyword (``torch.mul(a, b, out=c)``): see ``write_out``."""
    @functools.wraps(fn)
    def with_out(*args, out=None, **kwargs):
        y = fn(*args, **kwargs)
        return y if out is None else write_out(y, out, fn.__name__)
    return with_out


def write_out(y, out, op):
    """Write the result ``y`` into ``out`` and return ``out``, as PyTorch's ``out=``.

    Not recorded by autograd (an input that requires grad is refused, as in PyTorch); an
    ``out`` of another shape is resized (with PyTorch's warning unless it was empty); the
    result must be castable to ``out``'s dtype.
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"{op}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if y.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{op}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    if out.shape != y.shape:
        if out._base is not None:
            raise RuntimeError(f"{op}(): out= of shape {list(out.shape)} is a view and cannot be "
                               f"resized to {list(y.shape)}")
        if out.numel():
            warnings.warn(f"An output with one or more elements was resized since it had shape "
                          f"{list(out.shape)}, which does not match the required output shape "
                          f"{list(y.shape)}. This behavior is deprecated, and in a future PyTorch "
                          "release outputs will not be resized unless they have zero elements. "
                          "You can explicitly reuse an out tensor t by resizing it, inplace, to "
                          "zero elements with t.resize_(0).", UserWarning, stacklevel=3)
        out.array = backend.array_module(out.array).empty(y.shape, out.dtype)
    return out._write(y, op)


# --------------------------------------------------------------------------- helpers


def sum_to(g, shape):
    """Sum gradient ``g`` down to ``shape``: undo broadcasting (the adjoint of it)."""
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


_KIND = {"b": 0, "u": 1, "i": 1, "f": 2}


def result_type(a, b):
    """PyTorch's promotion for two tensors."""
    ka, kb = _KIND[a.dtype.kind], _KIND[b.dtype.kind]
    if ka != kb:
        return a.dtype if ka > kb else b.dtype
    if (a.ndim == 0) != (b.ndim == 0):   # a 0-d tensor yields to a dimensioned one
        return b.dtype if a.ndim == 0 else a.dtype
    return np.promote_types(a.dtype, b.dtype)


def _as_tensor(x, like):
    """Turn a Python scalar or array into a tensor on ``like``'s device (scalars weakly typed)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        kind = "b" if isinstance(x, bool) else "i" if isinstance(x, int) else "f"
        if _KIND[kind] <= _KIND[like.dtype.kind]:
            dtype = like.dtype
        else:
            dtype = np.float32 if kind == "f" else np.int64
        return tensor(x, dtype=dtype, device=like.device)
    return tensor(x, device=like.device)


def _binary(fn_class, a, b, floating=False):
    like = a if isinstance(a, Tensor) else b
    a, b = _as_tensor(a, like), _as_tensor(b, like)
    dt = result_type(a, b)
    if floating and dt.kind != "f":
        dt = np.dtype(np.float32)     # true division of integers gives float32
    return fn_class()(a.to(dt), b.to(dt))


# --------------------------------------------------------------------------- elementwise


class Add(Function):
    """y = a + b;  da = dy, db = dy (each summed back to its shape)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        sa, sb = self.shapes
        return sum_to(gy, sa), sum_to(gy, sb)


class Sub(Function):
    """y = a - b;  da = dy, db = -dy."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        sa, sb = self.shapes
        return sum_to(gy, sa), sum_to(-gy, sb)


class Mul(Function):
    """y = a * b;  da = dy * b, db = dy * a."""

    def forward(self, a, b):
        # keep only what backward reads: b for da, a for db (so x.mul_(2) keeps nothing of x)
        self.shapes = a.shape, b.shape
        self.save_for_backward(a if self.needs_input_grad[1] else None,
                               b if self.needs_input_grad[0] else None)
        return a * b

    def backward(self, gy):
        a, b = self.saved_tensors
        sa, sb = self.shapes
        ga = sum_to(gy * b, sa) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, sb) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  da = dy / b, db = -dy * a / b^2."""

    def forward(self, a, b):
        self.a_shape = a.shape
        self.save_for_backward(a if self.needs_input_grad[1] else None, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = sum_to(gy / b, self.a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """y = a ** b;  da = dy * b * a^(b-1),  db = dy * y * log(a), at the edges as PyTorch:

    da = 0 where b == 0 (so 0**0 gives 0, not 0 * 0^-1 = NaN); db = 0 where a == 0 and
    b >= 0, and otherwise y * log(a) as it falls: -inf times y at a = 0 (0**-1 gives
    -inf), NaN at a negative base.  Neither warns.  A Python-number exponent of +-0.5 is
    PyTorch's sqrt / rsqrt, with their signs at -0 and NaN at -inf (``_power``).
    """

    def __init__(self, scalar_exponent=None):
        self.scalar_exponent = scalar_exponent

    def _power(self, a, e):
        """a ** e; for a Python-number exponent with e = +-0.5 (also b - 1 = 0.5) sqrt, as PyTorch."""
        if self.scalar_exponent is not None and float(e) in (0.5, -0.5):
            r = backend.array_module(a).sqrt(a)
            return r if float(e) > 0 else 1 / r
        return a ** e

    def forward(self, a, b):
        ints = np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)
        if ints and (b < 0).any():
            raise RuntimeError("pow: Integers to negative integer powers are not allowed.")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = self._power(a, b)
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved_tensors
        xp = backend.array_module(a)
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.needs_input_grad[0]:
                da = b * self._power(a, b - 1)
                ga = sum_to(xp.where(b == 0, 0, gy * da).astype(gy.dtype, copy=False), a.shape)
            if self.needs_input_grad[1]:
                log_a = xp.where((a == 0) & (b >= 0), 0, y * xp.log(a))
                gb = sum_to((gy * log_a).astype(gy.dtype, copy=False), b.shape)
        return ga, gb


class Neg(Function):
    """y = -x;  dx = -dy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Cast(Function):
    """y = x as another dtype;  dx = dy cast back."""

    same_dtype = False

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.src)


class ToDevice(Function):
    """y = x copied to another device;  dx = dy copied back."""

    def __init__(self, device):
        self.target = device

    def forward(self, x):
        self.src = backend.device_of(x)
        return backend.to_device(x, self.target)

    def backward(self, gy):
        return backend.to_device(gy, self.src)


def add(a, b):
    return _binary(Add, a, b)


def sub(a, b):
    return _binary(Sub, a, b)


def mul(a, b):
    return _binary(Mul, a, b)


def div(a, b):
    return _binary(Div, a, b, floating=True)


def pow(a, b):
    scalar = b if isinstance(a, Tensor) and not isinstance(b, (Tensor, bool)) and np.ndim(b) == 0 else None
    return _binary(lambda: Pow(scalar), a, b)


class Clamp(Function):
    """y = min(max(x, lo), hi);  dx = dy where lo <= x <= hi (PyTorch's choice at the edges)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = backend.array_module(x)
        y = x
        if self.lo is not None:
            y = xp.maximum(y, x.dtype.type(self.lo))
        if self.hi is not None:
            y = xp.minimum(y, x.dtype.type(self.hi))
        self.save_for_backward(x)
        return y if y is not x else x.copy()

    def backward(self, gy):
        (x,) = self.saved_tensors
        xp = backend.array_module(x)
        keep = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            keep &= x >= self.lo
        if self.hi is not None:
            keep &= x <= self.hi        # NaN compares false: no gradient, as in PyTorch
        return xp.where(keep, gy, gy.dtype.type(0))


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    if x.dtype.kind != "f" and any(isinstance(v, float) for v in (min, max)):
        x = x.to(np.float32)           # a float bound with an integer tensor gives float32
    return Clamp(min, max)(x)


class Clone(Function):
    """y = a copy of x in new memory;  dx = dy."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


# --------------------------------------------------------------------------- in-place helpers
# Each computes, out of place, what an in-place op writes into its tensor (Tensor._write).


class SetItem(Function):
    """y = x with y[index] = v;  dx = dy with dx[index] = 0,  dv = dy[index] summed to v's shape."""

    def __init__(self, index):
        self.index = index

    def forward(self, x, v):
        y = x.copy()
        _assign(y, self.index, v)
        self.v_shape = v.shape
        return y

    def backward(self, gy):
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = backend.array_module(gy).array(gy)      # a copy (and an array, if gy is 0-d)
            gx[self.index] = 0
        if self.needs_input_grad[1]:
            gv = sum_to(gy[self.index], self.v_shape)
        return gx, gv


def _assign(y, index, v):
    try:
        y[index] = v
    except (ValueError, IndexError) as e:
        raise type(e)(f"__setitem__: cannot assign a value of shape {v.shape} to index "
                      f"{index!r} of a tensor of shape {y.shape}: {e}") from None


def _setitem_args(x, index, value):
    def raw(i):
        return i.array if isinstance(i, Tensor) else i
    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    value = _as_tensor(value, x)
    return index, value if value.dtype == x.dtype else value.to(x.dtype)


def setitem(x, index, value):
    """``x`` with ``x[index] = value``, out of place (recorded when either needs a gradient)."""
    index, value = _setitem_args(x, index, value)
    return SetItem(index)(x, value)


def setitem_(x, index, value):
    """``x[index] = value`` in place.  Recorded, it goes through :class:`SetItem` and
    ``Tensor._write``; otherwise straight into x's memory, so a loop filling a tensor
    row by row does not copy the whole tensor each time."""
    index, value = _setitem_args(x, index, value)
    if is_grad_enabled() and (x.requires_grad or value.requires_grad):
        return x._write(SetItem(index)(x, value), "__setitem__")
    _assign(x.array, index, value.array)
    x._version_counter.n += 1
    return x


class CopyInto(Function):
    """y = src broadcast to x's shape (x's values are dropped);  dx = 0,  dsrc = dy summed back."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x, src):
        self.src_shape = src.shape
        return backend.array_module(src).broadcast_to(src, self.shape).copy()

    def backward(self, gy):
        xp = backend.array_module(gy)
        return xp.zeros_like(gy), sum_to(gy, self.src_shape)


def copy_into(x, src):
    """What ``x.copy_(src)`` writes: ``src`` cast to x's dtype, moved to x's device, broadcast."""
    src = _as_tensor(src, x)
    try:
        np.broadcast_shapes(src.shape, x.shape)
    except ValueError:
        raise RuntimeError(f"copy_: the source of shape {list(src.shape)} cannot be broadcast to "
                           f"the tensor's shape {list(x.shape)}") from None
    return CopyInto(x.shape)(x, src.to(x.dtype).to(x.device))


class Overwrite(Function):
    """y = a constant of x's shape (``fill_``, ``zero_``, ``normal_``);  dx = 0."""

    def __init__(self, value):
        self.value = value

    def forward(self, x):
        xp = backend.array_module(x)
        return xp.broadcast_to(xp.asarray(self.value, dtype=x.dtype), x.shape).copy()

    def backward(self, gy):
        return backend.array_module(gy).zeros_like(gy)


def overwrite(x, value, op="fill_"):
    """What ``fill_(value)``, ``zero_()``, ``normal_()`` write: ``value`` cast to x's dtype."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise RuntimeError(f"{op}: only supports 0-dimension value tensor but got tensor with "
                               f"{value.ndim} dimensions")
        value = value.item()
    return Overwrite(backend.to_device(np.asarray(value), x.device))(x)


# --------------------------------------------------------------------------- comparisons

_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
            "gt": np.greater, "ge": np.greater_equal}


def compare(op, a, b):
    """``a == b`` and friends: a bool tensor, broadcast, never part of the graph."""
    if isinstance(b, Tensor):
        b = b.array
    elif not isinstance(b, (numbers.Number, np.ndarray, list, tuple)) and not backend.is_cuda_array(b):
        return NotImplemented
    xp = backend.array_module(a.array)
    fn = getattr(xp, _COMPARE[op].__name__)
    try:
        return Tensor(xp.asarray(fn(a.array, b)))
    except ValueError as e:
        raise RuntimeError(f"{op}: cannot compare a tensor of shape {list(a.shape)} with "
                           f"{getattr(b, 'shape', type(b).__name__)}: {e}") from None


# --------------------------------------------------------------------------- matmul


def _product(a, b):
    """``a @ b``.  On CUDA a 2-d float32 product is one cuBLAS GEMM of :mod:`kernels/gemm.py
    <tinyconv.kernels.gemm>` (no operand copied), in TF32 exactly when
    ``tinyconv.backends.cuda.matmul.allow_tf32`` is True, as PyTorch's; CuPy's own ``@``
    would follow its ``CUPY_TF32`` variable instead.  Other products are NumPy's / CuPy's."""
    if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype == np.float32 and backend.is_cuda_array(a):
        out = backend.array_module(a).empty((a.shape[0], b.shape[1]), dtype=a.dtype)
        return gemm(blas_matrix(a), blas_matrix(b), out, tf32=matmul_flags.allow_tf32)
    return a @ b


class MatMul(Function):
    """y = a @ b (NumPy's rules for 1-d and batched operands).

    da = dy @ b^T,  db = a^T @ dy, each summed over broadcast batch dimensions.
    On CUDA, 2-d float32 products follow ``backends.cuda.matmul.allow_tf32`` (:func:`_product`).
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both operands need at least one dimension, got shapes "
                             f"{a.shape} and {b.shape}")
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                             f"a's last dimension {a.shape[-1]} != b's contracted dimension {k_b}")
        self.save_for_backward(a, b)
        return _product(a, b)

    def backward(self, gy):
        a, b = self.saved_tensors
        xp = backend.array_module(a)
        a2 = a[None, :] if a.ndim == 1 else a            # treat vectors as 1xK / Kx1
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy = gy.reshape(batch + (a2.shape[-2], b2.shape[-1]))   # restore the dropped 1-dims
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(_product(gy, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(_product(xp.swapaxes(a2, -1, -2), gy), b2.shape).reshape(b.shape)
        return ga, gb


@accepts_out
def matmul(a, b):
    return _binary(MatMul, a, b)


# --------------------------------------------------------------------------- shape ops


class Reshape(Function):
    """y = x with a new shape;  dx = dy with the old shape."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.src = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.src)


class View(Function):
    """y = x seen with a new shape and strides, in x's memory (PyTorch's ``view``);
    dx = dy with the old shape.  :func:`view` finds the strides, or refuses."""

    def __init__(self, shape, strides):
        self.shape, self.strides = shape, strides

    def forward(self, x):
        self.src = x.shape
        xp = backend.array_module(x)
        y = x.reshape(self.shape)             # NumPy's / CuPy's view, where it finds one
        if y.size and not xp.may_share_memory(y, x):    # it copied: the strides PyTorch found
            y = xp.lib.stride_tricks.as_strided(x, self.shape, tuple(s * x.itemsize for s in self.strides))
        return y

    def backward(self, gy):
        return gy.reshape(self.src)


def infer_size(shape, numel):
    """``shape`` with its -1 (at most one) worked out for ``numel`` elements, as PyTorch's
    ``infer_size``; PyTorch's errors for a shape that does not fit."""
    shape, infer, known = list(shape), None, 1
    for i, n in enumerate(shape):
        if n == -1:
            if infer is not None:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif n >= 0:
            known *= n
        else:
            raise RuntimeError(f"invalid shape dimension {n}")
    if numel == known or (infer is not None and known > 0 and numel % known == 0):
        if infer is not None:
            if known == 0:
                raise RuntimeError(f"cannot reshape tensor of 0 elements into shape {shape} because "
                                   "the unspecified dimension size -1 can be any value and is ambiguous")
            shape[infer] = numel // known
        return tuple(shape)
    raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")


def view_strides(old_shape, old_strides, new_shape):
    """The strides (in elements) that show memory laid out as ``old_shape``/``old_strides`` with
    ``new_shape``, or None where no strides can (PyTorch's ``computeStride``).

    The old dimensions fall into chunks, each a run of dimensions that is one evenly strided
    block of memory (dimension d-1's stride is dimension d's stride times its size; size-1
    dimensions join any chunk).  A view is possible exactly when the new dimensions split the
    same way: each run of new dimensions covers one chunk, strided from that chunk's innermost
    stride.  ``x.t().view(-1)`` is not: the transpose's two dimensions are two chunks.
    """
    if not old_shape:
        return (1,) * len(new_shape)
    numel = math.prod(old_shape)
    if numel == 0:
        if tuple(old_shape) == tuple(new_shape):
            return tuple(old_strides)
        strides, step = [], 1                 # any strides do: the contiguous ones
        for n in reversed(new_shape):
            strides.append(step)
            step *= max(n, 1)
        return tuple(reversed(strides))
    new = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    base_stride, tensor_numel, view_numel = old_strides[-1], 1, 1
    for d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[d]
        if d == 0 or (old_shape[d - 1] != 1 and old_strides[d - 1] != tensor_numel * base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new[view_d] = view_numel * base_stride
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                base_stride, tensor_numel, view_numel = old_strides[d - 1], 1, 1
    return tuple(new) if view_d == -1 else None


def view(x, *shape):
    """``x.view(*shape)``: the same memory with a new shape (a view: writes go both ways), as
    PyTorch; a RuntimeError where x's strides cannot show that shape (``reshape`` copies)."""
    shape = infer_size(_shape_arg(shape), x.array.size)
    strides = view_strides(x.shape, tuple(s // x.array.itemsize for s in x.array.strides), shape)
    if strides is None:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at "
                           "least one dimension spans across two contiguous subspaces). Use "
                           ".reshape(...) instead.")
    return View(shape, strides)(x)


def _scalar_type(dt):
    return TYPE_NAMES[dt].removesuffix("Tensor") if dt in TYPE_NAMES else dt.name   # Float, Long


def view_dtype(x, dtype):
    """``x.view(dtype)``: the same memory read as ``dtype``, as PyTorch (not differentiable; it
    shares ``x``'s version counter).  With a different element size the last dimension must
    be contiguous and is rescaled; PyTorch's checks and messages."""
    dtype = np.dtype(dtype)
    a, old = x.array, x.dtype
    names = f"{_scalar_type(old)} as {_scalar_type(dtype)} (different element sizes)"
    if dtype.itemsize != old.itemsize:
        ratio = max(dtype.itemsize, old.itemsize) // min(dtype.itemsize, old.itemsize)
        strides = [s // old.itemsize for s in a.strides]
        if a.ndim == 0:
            raise RuntimeError(f"self.dim() cannot be 0 to view {names}")
        if strides[-1] != 1:
            raise RuntimeError(f"self.stride(-1) must be 1 to view {names}, but got {strides[-1]}")
        if dtype.itemsize > old.itemsize:
            root = x._base.array if x._base is not None else a
            offset = (_address(a) - _address(root)) // old.itemsize
            if a.shape[-1] % ratio:
                raise RuntimeError(f"self.size(-1) must be divisible by {ratio} to view {names}, but "
                                   f"got {a.shape[-1]}")
            if offset % ratio:
                raise RuntimeError(f"self.storage_offset() must be divisible by {ratio} to view "
                                   f"{names}, but got {offset}")
            for i, s in enumerate(strides[:-1]):
                if s % ratio:
                    raise RuntimeError(f"self.stride({i}) must be divisible by {ratio} to view "
                                       f"{names}, but got {s}")
    out = Tensor(a.view(dtype))
    out._version_counter = x._version_counter
    return out


class Permute(Function):
    """y = x with its dimensions reordered;  dx = dy with the inverse order."""

    def __init__(self, dims):
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        return gy.transpose(np.argsort(self.dims))


class GetItem(Function):
    """y = x[index];  dx = zeros with dy scattered back (summed where indices repeat)."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape = x.shape
        y = x[self.index]
        if isinstance(y, np.generic):     # NumPy gives a scalar copy for x[i, j]; PyTorch a
            y = x[_with_ellipsis(self.index)]   # 0-d view: x[i, j, ...] is NumPy's 0-d view
        return y

    def backward(self, gy):
        xp = backend.array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy
        else:
            xp.add.at(gx, self.index, gy)
        return gx


def _with_ellipsis(index):
    return (index if isinstance(index, tuple) else (index,)) + (Ellipsis,)


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def reshape(x, *shape):
    return Reshape(_shape_arg(shape))(x)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim..end_dim`` into one, as ``torch.flatten``."""
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    n = int(np.prod(x.shape[s:e + 1]))
    return reshape(x, *x.shape[:s], n, *x.shape[e + 1:])


def permute(x, *dims):
    if not dims:
        raise TypeError('permute() missing 1 required positional arguments: "dims"')
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute(): number of dimensions in the tensor input does not match "
                           f"the length of the desired ordering of dimensions i.e. input.dim() = "
                           f"{x.ndim} is not equal to len(dims) = {len(dims)}")
    wrapped = []
    for d in dims:                            # checked in order, as PyTorch
        wrapped.append(wrap_dim(d, x.ndim))
        if wrapped[-1] in wrapped[:-1]:
            raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute(tuple(wrapped))(x)


def transpose(x, dim0, dim1):
    """Swap two dimensions (a view), as ``torch.transpose``; a 0-d tensor takes dims 0 and -1."""
    dim0, dim1 = wrap_dim(dim0, x.ndim), wrap_dim(dim1, x.ndim)
    dims = list(range(x.ndim))
    if dims:
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute(tuple(dims))(x)


def getitem(x, index):
    def raw(i):
        return i.array if isinstance(i, Tensor) else i
    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    return GetItem(index)(x)
