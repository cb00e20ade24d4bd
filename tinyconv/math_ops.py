"""Tensor arithmetic, reductions and shape ops: each a Function with forward and backward.

Broadcasting and type promotion follow PyTorch: a Python scalar takes the
tensor's dtype (a float scalar with an integer tensor gives float32), a float
tensor beats an integer one, otherwise the wider dtype wins, and a 0-d tensor
yields to a dimensioned one of the same kind.  Inputs are cast (differentiably)
before the op, so each Function sees one dtype.
"""
import numpy as np

from . import backend
from .autograd import Function, Tensor, tensor

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
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  da = dy / b, db = -dy * a / b^2."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """y = a ** b;  da = dy * b * a^(b-1),  db = dy * y * log(a)."""

    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved_tensors
        xp = backend.array_module(a)
        ga = sum_to(gy * b * a ** (b - 1), a.shape) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = xp.where(a > 0, xp.log(xp.where(a > 0, a, 1)), 0)
            gb = sum_to(gy * y * log_a, b.shape)
        return ga, gb


class Neg(Function):
    """y = -x;  dx = -dy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    """y = exp(x);  dx = dy * y."""

    def forward(self, x):
        y = backend.array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return gy * y


class Log(Function):
    """y = log(x);  dx = dy / x."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.array_module(x).log(x)

    def backward(self, gy):
        (x,) = self.saved_tensors
        return gy / x


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
    return _binary(Pow, a, b)


# --------------------------------------------------------------------------- matmul


class MatMul(Function):
    """y = a @ b (NumPy's rules for 1-d and batched operands).

    da = dy @ b^T,  db = a^T @ dy, each summed over broadcast batch dimensions.
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
        return a @ b

    def backward(self, gy):
        a, b = self.saved_tensors
        xp = backend.array_module(a)
        a2 = a[None, :] if a.ndim == 1 else a            # treat vectors as 1xK / Kx1
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy = gy.reshape(batch + (a2.shape[-2], b2.shape[-1]))   # restore the dropped 1-dims
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(xp.swapaxes(a2, -1, -2) @ gy, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    return _binary(MatMul, a, b)


# --------------------------------------------------------------------------- reductions


def _normalize_axes(axis, ndim, op):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: dim {a} out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out)))


class Sum(Function):
    """y = sum of x over axes;  dx = dy broadcast back over those axes."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.array_module(gy)
        if not self.keepdims and self.axes is not None:
            gy = xp.expand_dims(gy, self.axes)
        return xp.broadcast_to(gy, self.shape).copy()


class Mean(Sum):
    """y = mean of x over axes;  dx = dy / n broadcast back."""

    def forward(self, x):
        y = super().forward(x)
        self.n = x.size // max(y.size, 1) if x.size else 0
        return y / x.dtype.type(self.n) if x.dtype.kind == "f" else y / self.n

    def backward(self, gy):
        return super().backward(gy) / gy.dtype.type(max(self.n, 1))


class Max(Function):
    """y = max of x over axes;  dx = dy at the maxima (shared equally between ties)."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError("max: the tensor is empty")
        y = x.max(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if self.keepdims else (y.reshape(()) if self.axes is None else y.squeeze(self.axes))

    def backward(self, gy):
        x, y = self.saved_tensors
        xp = backend.array_module(x)
        if not self.keepdims:
            gy = gy.reshape(y.shape)
        mask = (x == y)
        count = mask.sum(axis=self.axes, keepdims=True)
        return xp.where(mask, gy / count.astype(gy.dtype), xp.zeros((), dtype=gy.dtype))


_REDUCTIONS = {"sum": Sum, "mean": Mean, "max": Max}


def reduce(op, x, axis, dim, keepdims, keepdim):
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    axes = _normalize_axes(axis, x.ndim, op)
    if op == "mean" and x.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating point tensor, got {x.dtype}")
    return _REDUCTIONS[op](axes, bool(keepdims))(x)


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
        return x[self.index]

    def backward(self, gy):
        xp = backend.array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy
        else:
            xp.add.at(gx, self.index, gy)
        return gx


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
    dims = _shape_arg(dims)
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dimensions "
                         f"of a tensor of shape {x.shape}")
    return Permute(tuple(d % x.ndim for d in dims))(x)


def transpose(x, dim0, dim1):
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute(tuple(dims))(x)


def getitem(x, index):
    def raw(i):
        return i.data if isinstance(i, Tensor) else i
    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    return GetItem(index)(x)
