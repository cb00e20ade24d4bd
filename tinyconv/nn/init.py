"""Weight initialization, as ``torch.nn.init``: each function fills a tensor in place and returns it.

Every draw comes from tinyconv's seeded generator (:func:`tinyconv.random.generator`),
so ``tinyconv.manual_seed(n)`` makes a model's initial weights reproducible.  The
numbers are drawn on the CPU in float64, then cast and copied onto the tensor's
device: a model gets the same initial weights on the CPU and on a GPU.

Fans, for a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)`` (a Linear weight ``(out, in)`` has no kernel dims).

* ``kaiming_*`` (He et al. 2015): ``std = gain / sqrt(fan)``; uniform bound ``sqrt(3) * std``.
* ``xavier_*`` (Glorot & Bengio 2010): ``std = gain * sqrt(2 / (fan_in + fan_out))``.
"""
import math

import numpy as np

from .. import backend, random
from ..autograd import Tensor


def _fill(tensor, values, op):
    """Copy float64 CPU ``values`` into ``tensor.array`` in place, on its device, in its dtype."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")
    values = np.asarray(values, dtype=np.float64)
    tensor.array[...] = backend.to_device(values.astype(tensor.dtype), tensor.device)
    tensor._version_counter.n += 1                 # an in-place write, as PyTorch's
    return tensor


def _check_float(tensor, op):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got {tensor.dtype}")


def calculate_gain(nonlinearity, param=None):
    """The gain that keeps activations' variance steady through ``nonlinearity`` (PyTorch's table).

    linear / conv* / sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);
    leaky_relu with negative slope ``param`` (default 0.01): sqrt(2 / (1 + param^2));  selu: 3/4.
    """
    linear_fns = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d")
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel); needs at least 2 dimensions."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer than "
                         f"2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with draws from U(a, b)."""
    _check_float(tensor, "uniform_")
    if a > b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    draws = random.numpy_generator(generator, "uniform_").uniform(a, b, tensor.shape)
    return _fill(tensor, draws, "uniform_")


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with draws from N(mean, std^2)."""
    _check_float(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    draws = random.numpy_generator(generator, "normal_").normal(mean, std, tensor.shape)
    return _fill(tensor, draws, "normal_")


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with draws from N(mean, std^2) restricted to [a, b] (a and b are absolute bounds, as
    PyTorch's).  Drawn by rejection: values outside [a, b] are drawn again."""
    _check_float(tensor, "trunc_normal_")
    if std < 0 or a > b:
        raise ValueError(f"trunc_normal_: expected std >= 0 and a <= b, got std={std}, a={a}, b={b}")
    gen = random.numpy_generator(generator, "trunc_normal_")
    values = gen.normal(mean, std, tensor.shape)
    for _ in range(1000):
        bad = (values < a) | (values > b)
        if not bad.any():
            break
        values[bad] = gen.normal(mean, std, int(bad.sum()))
    else:   # [a, b] far in a tail: what remains is clamped, as PyTorch's inverse-CDF method does
        values = np.clip(values, a, b)
    return _fill(tensor, values, "trunc_normal_")


def constant_(tensor, val):
    """Fill with the value ``val``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"constant_: expected a Tensor, got {type(tensor).__name__}")
    tensor.array[...] = val
    tensor._version_counter.n += 1
    return tensor


def ones_(tensor):
    return constant_(tensor, 1)


def zeros_(tensor):
    return constant_(tensor, 0)


def eye_(tensor):
    """Fill a 2-d tensor with the identity matrix (ones on the diagonal)."""
    if not isinstance(tensor, Tensor) or tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got "
                         f"{getattr(tensor, 'shape', type(tensor).__name__)}")
    return _fill(tensor, np.eye(*tensor.shape), "eye_")


def dirac_(tensor, groups=1):
    """Fill a 3-, 4- or 5-d convolution weight (out, in, *kernel) with the Dirac delta: the
    convolution keeps as many input channels as it can (per group), unchanged."""
    if not isinstance(tensor, Tensor) or tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got "
                         f"{getattr(tensor, 'shape', type(tensor).__name__)}")
    if tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups ({groups})")
    out_per_group = tensor.shape[0] // groups
    values = np.zeros(tensor.shape)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, tensor.shape[1])):
            values[(g * out_per_group + d, d) + centre] = 1
    return _fill(tensor, values, "dirac_")


def orthogonal_(tensor, gain=1, generator=None):
    """Fill with a (semi-)orthogonal matrix from the QR decomposition of a Gaussian one,
    trailing dims flattened (Saxe et al. 2013), times ``gain``."""
    if not isinstance(tensor, Tensor) or tensor.ndim < 2:
        raise ValueError("orthogonal_: only tensors with 2 or more dimensions are supported")
    _check_float(tensor, "orthogonal_")
    rows = tensor.shape[0]
    cols = tensor.numel() // rows if rows else 0
    flat = random.numpy_generator(generator, "orthogonal_").normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))          # make the decomposition unique
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape), "orthogonal_")


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    _check_float(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check_float(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound) with bound = gain(nonlinearity, a) * sqrt(3 / fan).

    ``a`` is the negative slope of a leaky ReLU.  PyTorch's Conv2d and Linear use
    ``a=sqrt(5)``, which gives bound = 1 / sqrt(fan_in).
    """
    _check_float(tensor, "kaiming_uniform_")
    fan = _calculate_correct_fan(tensor, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain(nonlinearity, a) / sqrt(fan)."""
    _check_float(tensor, "kaiming_normal_")
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
    return normal_(tensor, 0.0, std, generator)
