"""Activations and dropout: ReLU, tanh, sigmoid, inverted dropout; GELU, SiLU, ELU, softplus, hardtanh.

ReLU and dropout have fast kernels (``tinyconv/kernels/activation_numba.py`` on the CPU,
``activation_cuda.py`` on CUDA) chosen through :func:`tinyconv.backend.kernel`; the NumPy
references below define what those kernels compute::

    relu_forward(x) -> y                                relu_backward(gy, y) -> gx
    dropout_forward(x, p, seed, offset) -> (y, mask)    dropout_backward(gy, mask, p) -> gx

tanh and sigmoid are plain NumPy/CuPy Functions (tanh is there for the paper's
Figure 1 experiment, ReLU against tanh).

Dropout is *inverted*: during training kept units are scaled by ``1/(1-p)`` so the
expected activation is unchanged and evaluation is the identity.  The op hands the
randomness in: :class:`DropoutFn` draws ``seed, offset = tinyconv.random.philox_seed_offset(x.size)``
once per call and passes them to whichever implementation runs (fast kernel or reference).
Every ``dropout_forward`` is a pure function of ``(x, p, seed, offset)``: the same call
twice gives the same mask, ``tinyconv.manual_seed`` makes masks reproducible, and
successive calls differ because the offset advances.  The implementations map one
``(seed, offset)`` to different (equally distributed) masks: the reference uses
``np.random.default_rng([seed, offset])``, the Numba kernel a splitmix64 hash keyed by
``seed`` with counter ``offset + i``, the CUDA kernel Philox4x32-10.  So the kernels import
nothing of tinyconv.  The op never looks inside ``mask``: it only hands it back to backward.
"""
import math
import numbers
import warnings

import numpy as np

from .. import random
from ..autograd import Function
from ..backend import array_module, kernel
from ._checks import check_float, check_tensor

# --------------------------------------------------------------------------- ReLU


def relu_forward_reference(x):
    """y = 0 where x < 0, else x: max(x, 0) with NaN and -0 passing through, as in PyTorch."""
    xp = array_module(x)
    return xp.where(x < 0, 0, x).astype(x.dtype, copy=False)


def relu_backward_reference(gy, y):
    """gx = 0 where y <= 0, else gy: 0 at the kink x = 0, and gy at a NaN (as PyTorch)."""
    xp = array_module(gy)
    return xp.where(y <= 0, 0, gy).astype(gy.dtype, copy=False)


class ReLUFn(Function):
    """y = max(x, 0);  dx = dy * [not y <= 0]  (so a NaN passes dy, as in PyTorch).

    Saves the output ``y`` rather than ``x``: y <= 0 exactly where x <= 0.
    """

    def forward(self, x):
        y = (kernel("activation", "relu_forward", x) or relu_forward_reference)(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return ((kernel("activation", "relu_backward", gy) or relu_backward_reference)(gy, y),)


# --------------------------------------------------------------------------- tanh, sigmoid


class TanhFn(Function):
    """y = tanh(x);  dx = dy * (1 - y^2)."""

    def forward(self, x):
        y = array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return (gy * (1 - y * y),)


def _sigmoid(x):
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class SigmoidFn(Function):
    """y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y).

    Computed from e = exp(-|x|) <= 1, which never overflows:
    y = 1 / (1 + e) for x >= 0 and y = e / (1 + e) for x < 0.
    """

    def forward(self, x):
        y = _sigmoid(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return (gy * y * (1 - y),)


# --------------------------------------------------------------------------- dropout


def dropout_forward_reference(x, p, seed, offset):
    """(y, mask) with mask = [u >= p], u ~ U[0, 1) from ``np.random.default_rng([seed, offset])``.

    y = x * mask / (1 - p).  Called by the op for 0 < p < 1 only, with ``(seed, offset)``
    from ``tinyconv.random.philox_seed_offset``.  The uniforms are always drawn in float64
    on the CPU (and the mask moved to the GPU for a CuPy ``x``), so one (seed, offset)
    gives one mask whatever the dtype or device.
    """
    xp = array_module(x)
    keep = np.random.default_rng([int(seed), int(offset)]).random(x.shape) >= p
    mask = xp.asarray(keep)
    return x * mask * x.dtype.type(1.0 / (1.0 - p)), mask


def dropout_backward_reference(gy, mask, p):
    """gx = gy * mask / (1 - p): the same mask and scale as the forward."""
    return gy * mask * gy.dtype.type(1.0 / (1.0 - p))


class DropoutFn(Function):
    """Inverted dropout for 0 < p <= 1:  y = x * m / (1 - p),  dx = dy * m / (1 - p).

    m is a fixed random 0/1 mask (keep probability 1 - p), drawn in forward and reused
    by backward.  p = 1 drops everything with no draw, as PyTorch's ``x * 0``:
    y = x * 0 (a NaN or inf stays NaN, -1 gives -0) and dx = dy * 0.
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        if self.p == 1:
            with np.errstate(invalid="ignore"):                # inf * 0 = NaN, as in PyTorch
                return x * x.dtype.type(0)
        seed, offset = random.philox_seed_offset(x.size)      # the op owns the randomness
        fwd = kernel("activation", "dropout_forward", x) or dropout_forward_reference
        y, mask = fwd(x, self.p, seed, offset)
        self.save_for_backward(mask)
        return y

    def backward(self, gy):
        if self.p == 1:
            with np.errstate(invalid="ignore"):
                return (gy * gy.dtype.type(0),)
        (mask,) = self.saved_tensors
        bwd = kernel("activation", "dropout_backward", gy) or dropout_backward_reference
        return (bwd(gy, mask, self.p),)


# --------------------------------------------------------------------------- functional API


def _check_input(input, op):
    check_tensor(input, op)
    check_float(input, op)
    return input


def relu(input, inplace=False):
    """max(input, 0) elementwise, as ``torch.nn.functional.relu``.

    ``inplace=True`` writes the result into ``input`` (which must then not be a leaf that
    requires grad, as in PyTorch) and returns it.
    """
    y = ReLUFn()(_check_input(input, "relu"))
    return input._write(y, "relu_") if inplace else y


def relu_(input):
    """``relu(input, inplace=True)``, as ``torch.nn.functional.relu_``."""
    return relu(input, inplace=True)


def tanh(input):
    """Hyperbolic tangent elementwise, as ``torch.tanh``."""
    return TanhFn()(_check_input(input, "tanh"))


def sigmoid(input):
    """1 / (1 + exp(-input)) elementwise, as ``torch.sigmoid``."""
    return SigmoidFn()(_check_input(input, "sigmoid"))


def check_dropout_p(p, op):
    """``p`` as a float in [0, 1], or PyTorch's error."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a real number, got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout, as ``torch.nn.functional.dropout``.

    In training each element is zeroed with probability ``p`` and the rest are scaled
    by ``1/(1-p)``; backward reuses the same mask.  ``training=False`` or ``p=0``
    returns ``input`` itself (in place or not); ``p=1`` gives ``input * 0``.  Masks come
    from tinyconv's generator, so ``tinyconv.manual_seed`` makes them reproducible.
    ``inplace=True`` writes the result into ``input`` and returns it.
    """
    op = "dropout"
    _check_input(input, op)
    p = check_dropout_p(p, op)
    if not training or p == 0:
        return input
    y = DropoutFn(p)(input)
    return input._write(y, "dropout_") if inplace else y


# --------------------------------------------------------------------------- leaky ReLU


class LeakyReLUFn(Function):
    """y = x if x > 0 else slope * x;   dx = dy if x > 0 else slope * dy  (PyTorch's choice at 0).

    Saves the mask [x > 0] rather than x, so an in-place call (which overwrites x) and
    any slope, negative ones included, keep a correct backward.
    """

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = array_module(x)
        self.positive = x > 0
        return xp.where(self.positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, gy):
        xp = array_module(gy)
        return (xp.where(self.positive, gy, gy * gy.dtype.type(self.negative_slope)),)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """max(0, x) + negative_slope * min(0, x) elementwise, as ``torch.nn.functional.leaky_relu``.

    ``inplace=True`` writes the result into ``input`` (which must then not be a leaf that
    requires grad, as in PyTorch) and returns it.
    """
    op = "leaky_relu"
    _check_input(input, op)
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(f"{op}: negative_slope must be a real number, got {negative_slope!r}")
    y = LeakyReLUFn(float(negative_slope))(input)
    return input._write(y, "leaky_relu_") if inplace else y


# --------------------------------------------------------------------------- channel dropout


class FeatureDropoutFn(Function):
    """Channel dropout: y = x * m, dx = dy * m, with m (N, C, 1, 1, ...) of 0 and 1/(1 - p).

    One draw per (sample, channel) zeroes a whole feature map at once.  The scaled mask m
    comes from the ``dropout_forward`` seam applied to ones of that small shape, so it is
    the same generator, seeding and kernels as :class:`DropoutFn`; p = 1 gives m = 0.
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        xp = array_module(x)
        ones = xp.ones(x.shape[:2] + (1,) * (x.ndim - 2), dtype=x.dtype)
        if self.p == 1:
            self.m = ones * 0
        else:
            seed, offset = random.philox_seed_offset(ones.size)
            self.m, _ = (kernel("activation", "dropout_forward", ones) or dropout_forward_reference)(
                ones, self.p, seed, offset)
        return x * self.m

    def backward(self, gy):
        return (gy * self.m,)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Randomly zero whole channels, as ``torch.nn.functional.dropout2d`` (PyTorch 2.13's behaviour).

    ``input`` (N, C, H, W): each channel ``input[n, c]`` is zeroed with probability ``p``
    and the kept ones are scaled by 1/(1 - p).  Like PyTorch, a 3-d input is taken as
    (N, C, L) (1-d channel dropout, with PyTorch's warning), other ranks of at least 2
    work with a deprecation warning, and a 0-d or 1-d input is an error.
    ``inplace=True`` writes the result into ``input``.
    """
    op = "dropout2d"
    _check_input(input, op)
    p = check_dropout_p(p, op)
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated "
                      "and will result in an error in a future release. To retain the behavior and "
                      "silence this warning, please use dropout instead.", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
                      "dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
                      "is the channel dim.", stacklevel=2)
    if not training or p == 0:
        return input
    if input.ndim < 2:
        raise ValueError(f"{op}: Feature dropout requires at least 2 dimensions in the input, "
                         f"got shape {input.shape}")
    y = FeatureDropoutFn(p)(input)
    return input._write(y, "dropout2d_") if inplace else y


# --------------------------------------------------------------------------- smooth activations
#
# gelu, silu, elu, softplus, hardtanh (and relu6): y = f(x) elementwise.  Each is a small
# subclass of _ElementwiseFn giving f and its derivative; ``inplace=True`` goes through
# ``Tensor._write`` (which copies what the node saved of the overwritten input first).


def _erf(x):
    """The error function elementwise (NumPy has none: ``math.erf`` per element on the CPU,
    ``cupyx.scipy.special.erf`` on CUDA)."""
    xp = array_module(x)
    if xp is np:
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    import cupyx.scipy.special
    return cupyx.scipy.special.erf(x)


class _ElementwiseFn(Function):
    """y = f(x);  dx = dy * f'(x).  A subclass gives ``f(x)`` and ``df(x, y)`` (f' from x and y)."""

    def f(self, x):
        raise NotImplementedError

    def df(self, x, y):
        raise NotImplementedError

    def forward(self, x):
        with np.errstate(invalid="ignore", over="ignore"):      # +-inf in: NaN or inf out, quietly
            y = self.f(x)
        self.save_for_backward(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved_tensors
        with np.errstate(invalid="ignore", over="ignore"):
            return (gy * self.df(x, y).astype(gy.dtype, copy=False),)


class GELUFn(_ElementwiseFn):
    """Gaussian error linear unit, y = x Phi(x) with Phi the standard normal CDF.

        approximate='none':  Phi(x) = (1 + erf(x / sqrt 2)) / 2,   dy/dx = Phi(x) + x phi(x),
                             phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
        approximate='tanh':  y = x (1 + tanh u) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3),
                             dy/dx = (1 + tanh u) / 2 + x (1 - tanh^2 u) u' / 2,
                             u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """

    _K = math.sqrt(2 / math.pi)

    def __init__(self, approximate):
        self.approximate = approximate

    def f(self, x):
        xp = array_module(x)
        if self.approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(self._K * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + _erf(x * (1 / math.sqrt(2))))

    def df(self, x, y):
        xp = array_module(x)
        if self.approximate == "tanh":
            t = xp.tanh(self._K * (x + 0.044715 * x ** 3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self._K * (1 + 3 * 0.044715 * x * x)
        cdf = 0.5 * (1 + _erf(x * (1 / math.sqrt(2))))
        return cdf + x * xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))


class SiLUFn(_ElementwiseFn):
    """SiLU (swish), y = x sigmoid(x);  dy/dx = s (1 + x (1 - s)),  s = sigmoid(x)."""

    def f(self, x):
        return x * _sigmoid(x)

    def df(self, x, y):
        s = _sigmoid(x)
        return s * (1 + x * (1 - s))


class ELUFn(_ElementwiseFn):
    """y = x for x > 0, alpha (exp(x) - 1) otherwise;  dy/dx = 1 for x > 0, y + alpha otherwise."""

    def __init__(self, alpha):
        self.alpha = alpha

    def f(self, x):
        xp = array_module(x)
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype, copy=False)

    def df(self, x, y):
        xp = array_module(x)
        return xp.where(x > 0, 1, y + self.alpha)


class SoftplusFn(_ElementwiseFn):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (PyTorch's switch back
    to linear, for stability);  dy/dx = sigmoid(beta x), 1 where beta x > threshold."""

    def __init__(self, beta, threshold):
        self.beta, self.threshold = beta, threshold

    def f(self, x):
        xp = array_module(x)
        bx = x * self.beta
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / self.beta
        return xp.where(bx > self.threshold, x, soft).astype(x.dtype, copy=False)

    def df(self, x, y):
        xp = array_module(x)
        bx = x * self.beta
        return xp.where(bx > self.threshold, 1, _sigmoid(bx))


class HardtanhFn(_ElementwiseFn):
    """y = clamp(x, min_val, max_val);  dy/dx = 1 strictly inside (min_val, max_val), else 0
    (PyTorch's choice at the corners)."""

    def __init__(self, min_val, max_val):
        self.min_val, self.max_val = min_val, max_val

    def f(self, x):
        return array_module(x).clip(x, self.min_val, self.max_val).astype(x.dtype, copy=False)

    def df(self, x, y):
        return (x > self.min_val) & (x < self.max_val)


def _real(value, op, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def _apply(fn, input, inplace, op):
    _check_input(input, op)
    y = fn(input)
    return input._write(y, op + "_") if inplace else y


def gelu(input, approximate="none"):
    """x Phi(x) elementwise (``approximate='tanh'``: the tanh formula), as ``F.gelu``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _apply(GELUFn(approximate), input, False, "gelu")


def silu(input, inplace=False):
    """x * sigmoid(x) elementwise, as ``F.silu``."""
    return _apply(SiLUFn(), input, inplace, "silu")


def elu(input, alpha=1.0, inplace=False):
    """x for x > 0, alpha (exp(x) - 1) otherwise, as ``F.elu``."""
    return _apply(ELUFn(_real(alpha, "elu", "alpha")), input, inplace, "elu")


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta (linear where beta x > threshold), as ``F.softplus``."""
    beta = _real(beta, "softplus", "beta")
    if beta == 0:
        raise ValueError("softplus: beta must be non-zero")
    return _apply(SoftplusFn(beta, _real(threshold, "softplus", "threshold")), input, False, "softplus")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clamp(x, min_val, max_val), as ``F.hardtanh``."""
    lo, hi = _real(min_val, "hardtanh", "min_val"), _real(max_val, "hardtanh", "max_val")
    if lo > hi:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got {min_val} > {max_val}")
    return _apply(HardtanhFn(lo, hi), input, inplace, "hardtanh")


def relu6(input, inplace=False):
    """min(max(x, 0), 6) = hardtanh(x, 0, 6), as ``F.relu6``."""
    return _apply(HardtanhFn(0.0, 6.0), input, inplace, "relu6")
