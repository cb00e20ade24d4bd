"""Pointwise math as PyTorch's ``torch.X`` / ``Tensor.X``: one table of unary ops, and the
binary and selection ops of the everyday API (``where``, ``masked_fill``, ``isclose``, ...).

Each unary op is one row of :data:`UNARY`: its name, its forward ``f(x)`` and its
derivative ``f'(x)`` written with ``x`` and the output ``y``; :class:`Unary` is the one
Function that runs any row (``dx = dy * f'(x)``).  As in PyTorch, an op that only makes
sense on real numbers (``sqrt``, ``exp``, ``sin``, ...) turns an integer tensor into
float32 first; ``abs``, ``neg``, ``sign``, ``square`` and the roundings keep integers.
"""
import math

import numpy as np

from . import backend, math_ops, reductions
from .autograd import Function, Tensor
from .dtypes import dtype_name
from .functional import activation, loss
from .math_ops import _as_tensor, _binary, result_type, sum_to


def _erf(xp, x):
    if xp is np:
        return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()
    import cupyx.scipy.special
    return cupyx.scipy.special.erf(x)


def _sigmoid(xp, x):
    return xp.where(x >= 0, 1 / (1 + xp.exp(-xp.abs(x))), xp.exp(-xp.abs(x)) / (1 + xp.exp(-xp.abs(x))))


# name: (forward f(xp, x), derivative f'(xp, x, y), what f' reads, keeps integer dtypes).
# Backward saves only what f' reads ("x", "y" or nothing), as PyTorch's nodes, so an in-place
# write to the other one after the op is no error.
UNARY = {
    "abs":        (lambda xp, x: xp.abs(x),      lambda xp, x, y: xp.sign(x), "x", True),
    "neg":        (lambda xp, x: -x,             lambda xp, x, y: -1, "", True),
    "square":     (lambda xp, x: x * x,          lambda xp, x, y: 2 * x, "x", True),
    "sign":       (lambda xp, x: xp.sign(x),     lambda xp, x, y: 0, "", True),
    "floor":      (lambda xp, x: xp.floor(x),    lambda xp, x, y: 0, "", True),
    "ceil":       (lambda xp, x: xp.ceil(x),     lambda xp, x, y: 0, "", True),
    "round":      (lambda xp, x: xp.round(x),    lambda xp, x, y: 0, "", True),   # half to even
    "trunc":      (lambda xp, x: xp.trunc(x),    lambda xp, x, y: 0, "", True),
    "frac":       (lambda xp, x: x - xp.trunc(x), lambda xp, x, y: 1, "", False),
    "reciprocal": (lambda xp, x: 1 / x,          lambda xp, x, y: -y * y, "y", False),
    "sqrt":       (lambda xp, x: xp.sqrt(x),     lambda xp, x, y: 0.5 / y, "y", False),
    "rsqrt":      (lambda xp, x: 1 / xp.sqrt(x), lambda xp, x, y: -0.5 * y ** 3, "y", False),
    "exp":        (lambda xp, x: xp.exp(x),      lambda xp, x, y: y, "y", False),
    "exp2":       (lambda xp, x: xp.exp2(x),     lambda xp, x, y: y * math.log(2), "y", False),
    "expm1":      (lambda xp, x: xp.expm1(x),    lambda xp, x, y: y + 1, "y", False),
    "log":        (lambda xp, x: xp.log(x),      lambda xp, x, y: 1 / x, "x", False),
    "log2":       (lambda xp, x: xp.log2(x),     lambda xp, x, y: 1 / (x * math.log(2)), "x", False),
    "log10":      (lambda xp, x: xp.log10(x),    lambda xp, x, y: 1 / (x * math.log(10)), "x", False),
    "log1p":      (lambda xp, x: xp.log1p(x),    lambda xp, x, y: 1 / (1 + x), "x", False),
    "sin":        (lambda xp, x: xp.sin(x),      lambda xp, x, y: xp.cos(x), "x", False),
    "cos":        (lambda xp, x: xp.cos(x),      lambda xp, x, y: -xp.sin(x), "x", False),
    "tan":        (lambda xp, x: xp.tan(x),      lambda xp, x, y: 1 + y * y, "y", False),
    "asin":       (lambda xp, x: xp.arcsin(x),   lambda xp, x, y: 1 / xp.sqrt(1 - x * x), "x", False),
    "acos":       (lambda xp, x: xp.arccos(x),   lambda xp, x, y: -1 / xp.sqrt(1 - x * x), "x", False),
    "atan":       (lambda xp, x: xp.arctan(x),   lambda xp, x, y: 1 / (1 + x * x), "x", False),
    "sinh":       (lambda xp, x: xp.sinh(x),     lambda xp, x, y: xp.cosh(x), "x", False),
    "cosh":       (lambda xp, x: xp.cosh(x),     lambda xp, x, y: xp.sinh(x), "x", False),
    "tanh":       (lambda xp, x: xp.tanh(x),     lambda xp, x, y: 1 - y * y, "y", False),
    "sigmoid":    (_sigmoid,                     lambda xp, x, y: y * (1 - y), "y", False),
    "erf":        (_erf, lambda xp, x, y: 2 / math.sqrt(math.pi) * xp.exp(-x * x), "x", False),
}

_NOT_FOR_BOOL = ("abs", "floor", "ceil", "round", "trunc", "frac")


class Unary(Function):
    """y = f(x) for a row of :data:`UNARY`;  dx = dy * f'(x)."""

    def __init__(self, name):
        self.op = name
        self.f, self.df, self.reads, _ = UNARY[name]

    def forward(self, x):
        xp = backend.array_module(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = xp.asarray(self.f(xp, x), dtype=x.dtype)
        self.save_for_backward(x if "x" in self.reads else None, y if "y" in self.reads else None)
        return y

    def backward(self, gy):
        x, y = self.saved_tensors
        xp = backend.array_module(gy)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            d = self.df(xp, x, y)
            if isinstance(d, (int, float)) and d == 0:
                return xp.zeros_like(gy)       # a step function: zero, even where dy is inf
            return (gy * d).astype(gy.dtype, copy=False)

    def name(self):
        return f"{self.op.capitalize()}Backward"


def _check(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")


def unary(name, x):
    """``torch.<name>(x)``: the op of row ``name`` in :data:`UNARY`."""
    _check(x, name)
    keeps_int = UNARY[name][3]
    kind = x.dtype.kind
    if kind == "b" and name == "neg":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or "
                           "`logical_not()` operator instead.")
    if (kind == "b" and name in _NOT_FOR_BOOL) or (kind in "iu" and name == "frac"):
        raise NotImplementedError(f'"{name}" not implemented for '
                                  f"'{'Bool' if kind == 'b' else x.dtype.name}'")
    if kind == "b" and name == "square":
        x = x.to(np.int64)
    elif kind != "f" and not keeps_int:
        x = x.to(np.float32)
    elif (kind != "f" and name in ("floor", "ceil", "round", "trunc")) or (kind == "b"
                                                                           and name == "sign"):
        return x.clone()                # already whole numbers (a bool's sign is itself)
    return Unary(name)(x)


def _make_unary(name):
    def op(input):
        return unary(name, input)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``torch.{name}``: elementwise, differentiable (see ``UNARY['{name}']``)."
    return math_ops.accepts_out(op)


globals().update({n: _make_unary(n) for n in UNARY})
negative = globals()["neg"]
absolute = globals()["abs"]
arcsin, arccos, arctan = globals()["asin"], globals()["acos"], globals()["atan"]
fix = globals()["trunc"]


def relu(input):
    """max(x, 0) elementwise, as ``torch.relu`` (the fast kernel of ``functional.relu``)."""
    _check(input, "relu")
    return activation.relu(input)


def softmax(input, dim=None, dtype=None):
    """``torch.softmax(x, dim)``: ``functional.softmax`` (``dim`` is required, as PyTorch's)."""
    _check(input, "softmax")
    if dim is None:
        raise TypeError("softmax() missing 1 required positional argument: 'dim'")
    return loss.softmax(input if dtype is None else input.to(dtype), dim)


def log_softmax(input, dim=None, dtype=None):
    _check(input, "log_softmax")
    if dim is None:
        raise TypeError("log_softmax() missing 1 required positional argument: 'dim'")
    return loss.log_softmax(input if dtype is None else input.to(dtype), dim)


# --------------------------------------------------------------------------- binary


@math_ops.accepts_out
def add(input, other, *, alpha=1):
    """input + alpha * other, as ``torch.add``."""
    return math_ops.add(input, other if alpha == 1 else _scaled(other, alpha, "add"))


@math_ops.accepts_out
def sub(input, other, *, alpha=1):
    """input - alpha * other, as ``torch.sub``."""
    return math_ops.sub(input, other if alpha == 1 else _scaled(other, alpha, "sub"))


subtract = sub


def _scaled(other, alpha, op):
    if isinstance(alpha, float) and isinstance(other, Tensor) and other.dtype.kind != "f":
        raise RuntimeError(f"{op}: for integral input tensors, argument alpha must not be a "
                           "floating point number.")
    return other * alpha


@math_ops.accepts_out
def mul(input, other):
    return math_ops.mul(input, other)


multiply = mul


@math_ops.accepts_out
def div(input, other, *, rounding_mode=None):
    """input / other, as ``torch.div``: true division, or ``'trunc'`` / ``'floor'`` rounded.

    Rounded division has zero gradient (as PyTorch's) and keeps integer dtypes.
    """
    if rounding_mode is None:
        return math_ops.div(input, other)
    if rounding_mode not in ("trunc", "floor"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                           f"but found '{rounding_mode}'")
    return _binary(lambda: RoundedDiv(rounding_mode), input, other)


divide = true_divide = div


@math_ops.accepts_out
def floor_divide(input, other):
    return div(input, other, rounding_mode="floor")


class RoundedDiv(Function):
    """y = trunc(a / b) or floor(a / b);  da = db = 0 (a step function)."""

    def __init__(self, mode):
        self.mode = mode

    def forward(self, a, b):
        xp = backend.array_module(a)
        self.shapes = a.shape, b.shape
        if a.dtype.kind in "iu":
            if (b == 0).any():
                raise RuntimeError("ZeroDivisionError")
            q = a // b
            if self.mode == "trunc":
                q = q + ((q < 0) & (q * b != a))
            return q.astype(a.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = a / b
            return (xp.trunc(q) if self.mode == "trunc" else xp.floor_divide(a, b)).astype(a.dtype)

    def backward(self, gy):
        xp = backend.array_module(gy)
        return tuple(xp.zeros(s, gy.dtype) if n else None
                     for s, n in zip(self.shapes, self.needs_input_grad))


class Remainder(Function):
    """y = a - b * floor(a / b) (``remainder``, the sign of b) or a - b * trunc(a / b) (``fmod``);
    da = dy,  db = -dy * floor(a / b) (or trunc)."""

    def __init__(self, rounding):
        self.rounding = rounding

    def forward(self, a, b):
        xp = backend.array_module(a)
        if a.dtype.kind in "iu" and (b == 0).any():
            raise RuntimeError("ZeroDivisionError")
        self.save_for_backward(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (xp.remainder(a, b) if self.rounding == "floor" else xp.fmod(a, b)).astype(a.dtype)

    def backward(self, gy):
        a, b = self.saved_tensors
        xp = backend.array_module(a)
        q = xp.floor(a / b) if self.rounding == "floor" else xp.trunc(a / b)
        return sum_to(gy, a.shape), sum_to(-gy * q, b.shape)


@math_ops.accepts_out
def remainder(input, other):
    """Python's ``%``: the remainder with the sign of ``other``, as ``torch.remainder``."""
    return _binary(lambda: Remainder("floor"), input, other)


@math_ops.accepts_out
def fmod(input, other):
    """C's ``fmod``: the remainder with the sign of ``input``, as ``torch.fmod``."""
    return _binary(lambda: Remainder("trunc"), input, other)


@math_ops.accepts_out
def pow(input, exponent):
    return math_ops.pow(input, exponent)


class Atan2(Function):
    """y = atan2(a, b);  da = dy * b / (a^2 + b^2),  db = -dy * a / (a^2 + b^2)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return backend.array_module(a).arctan2(a, b)

    def backward(self, gy):
        a, b = self.saved_tensors
        r2 = a * a + b * b
        return sum_to(gy * b / r2, a.shape), sum_to(-gy * a / r2, b.shape)


@math_ops.accepts_out
def atan2(input, other):
    _check(input, "atan2")
    return _binary(Atan2, input, other, floating=True)


arctan2 = atan2


def _compare(op):
    def fn(input, other):
        _check(input, op)
        return math_ops.compare(op, input, other)
    fn.__name__ = op
    fn.__doc__ = f"``torch.{op}``: a bool tensor, broadcast, no gradient."
    return fn


eq, ne, lt, le, gt, ge = (_compare(op) for op in ("eq", "ne", "lt", "le", "gt", "ge"))
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def _no_float(name, a):
    kind = {"float16": "Half", "float32": "Float", "float64": "Double"}[a.dtype.name]
    raise NotImplementedError(f'"{name}_cpu" not implemented for \'{kind}\'')


def _logical(name, fn, bitwise=None):
    def op(input, other=None):
        _check(input, name)
        xp = backend.array_module(input.array)
        if other is None:
            a = input.array
            if bitwise is not None and a.dtype.kind == "f":
                _no_float(name, a)
            out = fn(xp, a) if bitwise is None or a.dtype.kind == "b" else bitwise(xp, a)
            return Tensor(xp.asarray(out))
        other = _as_tensor(other, input)
        a, b = input.array, other.array
        if bitwise is not None:
            if a.dtype.kind not in "biu" or b.dtype.kind not in "biu":
                _no_float(name, a if a.dtype.kind == "f" else b)
            return Tensor(xp.asarray(bitwise(xp, a, b.astype(result_type(input, other)))))
        return Tensor(xp.asarray(fn(xp, a, b)))
    op.__name__ = name
    op.__doc__ = f"``torch.{name}``: no gradient."
    return op


logical_not = _logical("logical_not", lambda xp, a: xp.logical_not(a))
logical_and = _logical("logical_and", lambda xp, a, b: xp.logical_and(a, b))
logical_or = _logical("logical_or", lambda xp, a, b: xp.logical_or(a, b))
logical_xor = _logical("logical_xor", lambda xp, a, b: xp.logical_xor(a, b))
bitwise_not = _logical("bitwise_not", lambda xp, a: xp.logical_not(a), lambda xp, a: xp.invert(a))
bitwise_and = _logical("bitwise_and", None, lambda xp, a, b: xp.bitwise_and(a, b))
bitwise_or = _logical("bitwise_or", None, lambda xp, a, b: xp.bitwise_or(a, b))
bitwise_xor = _logical("bitwise_xor", None, lambda xp, a, b: xp.bitwise_xor(a, b))


# --------------------------------------------------------------------------- selection


class Where(Function):
    """y = x where cond else z;  dx = dy where cond (else 0),  dz = dy where not cond."""

    def __init__(self, cond):
        self.cond = cond

    def forward(self, x, z):
        self.shapes = x.shape, z.shape
        return backend.array_module(x).where(self.cond, x, z)

    def backward(self, gy):
        xp = backend.array_module(gy)
        zero = gy.dtype.type(0)
        gx = sum_to(xp.where(self.cond, gy, zero), self.shapes[0]) if self.needs_input_grad[0] else None
        gz = sum_to(xp.where(self.cond, zero, gy), self.shapes[1]) if self.needs_input_grad[1] else None
        return gx, gz


def where(condition, input=None, other=None):
    """``torch.where(cond, x, y)`` (differentiable in x and y; scalars allowed), or
    ``torch.where(cond)``: ``cond.nonzero(as_tuple=True)``, a tuple of index tensors."""
    if not isinstance(condition, Tensor):
        raise TypeError(f"where(): argument 'condition' (position 1) must be Tensor, not "
                        f"{type(condition).__name__}")
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if input is None or other is None:
        raise TypeError("where() takes either 1 or 3 arguments: where(condition) or "
                        "where(condition, input, other)")
    if condition.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {_torch_dtype_name(condition.dtype)}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        like = condition.to(np.float32 if isinstance(input, float) or isinstance(other, float)
                            else np.int64)
        input, other = _as_tensor(input, like), _as_tensor(other, like)
    like = input if isinstance(input, Tensor) else other
    x, z = _as_tensor(input, like), _as_tensor(other, like)
    dt = result_type(x, z)
    try:
        shape = np.broadcast_shapes(condition.shape, x.shape, z.shape)
    except ValueError:
        raise RuntimeError(f"where: the shapes of condition {list(condition.shape)}, input "
                           f"{list(x.shape)} and other {list(z.shape)} cannot be broadcast "
                           f"together") from None
    xp = backend.array_module(condition.array)
    cond = xp.broadcast_to(condition.array, shape)
    x, z = x.to(dt), z.to(dt)
    if x.shape != shape:          # Where's forward broadcasts x and z against cond
        x = x + xp.zeros(shape, dt) if x.requires_grad else Tensor(xp.broadcast_to(x.array, shape))
    return Where(cond)(x, z)


def masked_fill(input, mask, value):
    """``input`` with ``value`` where ``mask`` is True, as ``torch.masked_fill``;
    dinput = dy where not mask (dvalue = the sum of dy under the mask, for a 0-d tensor value)."""
    _check(input, "masked_fill")
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        got = _torch_dtype_name(mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {got}")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got "
                           f"tensor with {value.ndim} dimension(s).")
    try:
        np.broadcast_shapes(mask.shape, input.shape)
    except ValueError:
        raise RuntimeError(f"The size of the mask {list(mask.shape)} must be broadcastable to "
                           f"the tensor's shape {list(input.shape)}") from None
    if isinstance(value, Tensor):
        value = value.to(input.dtype)
    else:
        value = Tensor(backend.to_device(np.asarray(value, dtype=input.dtype), input.device))
    return where(mask, value, input)


@math_ops.accepts_out
def clamp(input, min=None, max=None):
    """``torch.clamp`` (``torch.clip``): the method's op as a function; tensor bounds allowed."""
    _check(input, "clamp")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = reductions.maximum(out, _as_tensor(min, input))
        if max is not None:
            out = reductions.minimum(out, _as_tensor(max, input))
        return out
    return math_ops.clamp(input, min, max)


clip = clamp


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| elementwise, as ``torch.isclose`` (bool)."""
    _check(input, "isclose")
    other = _as_tensor(other, input)
    if input.dtype != other.dtype:
        raise RuntimeError(f"{_torch_dtype_name(input.dtype)} did not match "
                           f"{_torch_dtype_name(other.dtype)}")
    xp = backend.array_module(input.array)
    return Tensor(xp.asarray(xp.isclose(input.array, other.array, rtol=rtol, atol=atol,
                                        equal_nan=equal_nan)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when every pair is close (:func:`isclose`), as ``torch.allclose``."""
    return bool(isclose(input, other, rtol, atol, equal_nan).array.all())


def equal(input, other):
    """True when both have the same shape and the same values, as ``torch.equal``."""
    _check(input, "equal")
    if not isinstance(other, Tensor):
        raise TypeError(f"equal(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(other).__name__}")
    return input.shape == other.shape and bool((input.array == other.array).all())


def _classify(name, fn):
    def op(input):
        _check(input, name)
        xp = backend.array_module(input.array)
        return Tensor(xp.asarray(getattr(xp, fn)(input.array)))
    op.__name__ = name
    op.__doc__ = f"``torch.{name}``: a bool tensor, elementwise."
    return op


isnan, isinf, isfinite = (_classify(n, f) for n, f in
                          (("isnan", "isnan"), ("isinf", "isinf"), ("isfinite", "isfinite")))


def is_nonzero(input):
    if input.numel() != 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(input.item())


def _torch_dtype_name(dt):
    return dtype_name(dt)
