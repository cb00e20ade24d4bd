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


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with draws from U(a, b)."""
    _check_float(tensor, "uniform_")
    if a > b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill(tensor, random.generator().uniform(a, b, tensor.shape), "uniform_")


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with draws from N(mean, std^2)."""
    _check_float(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(tensor, random.generator().normal(mean, std, tensor.shape), "normal_")


def constant_(tensor, val):
    """Fill with the value ``val``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"constant_: expected a Tensor, got {type(tensor).__name__}")
    tensor.array[...] = val
    return tensor


def ones_(tensor):
    return constant_(tensor, 1)


def zeros_(tensor):
    return constant_(tensor, 0)


def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    _check_float(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check_float(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound) with bound = gain(nonlinearity, a) * sqrt(3 / fan).

    ``a`` is the negative slope of a leaky ReLU.  PyTorch's Conv2d and Linear use
    ``a=sqrt(5)``, which gives bound = 1 / sqrt(fan_in).
    """
    _check_float(tensor, "kaiming_uniform_")
    fan = _calculate_correct_fan(tensor, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2) with std = gain(nonlinearity, a) / sqrt(fan)."""
    _check_float(tensor, "kaiming_normal_")
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
    return normal_(tensor, 0.0, std)
