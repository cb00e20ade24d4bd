"""Tensor factories: zeros, ones, randn, ..., as in PyTorch (float32 by default)."""
import numpy as np

from . import backend, random
from .autograd import Tensor


def _make(array, dtype, device, requires_grad):
    array = array.astype(np.float32 if dtype is None else dtype, copy=False)
    if device is not None:
        array = backend.to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def _shape(size):
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape(size)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape(size)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    return _make(np.full(tuple(size), fill_value), dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal draws from tinyconv's seeded generator."""
    return _make(random.generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform [0, 1) draws from tinyconv's seeded generator."""
    return _make(random.generator().random(_shape(size)), dtype, device, requires_grad)


def arange(*args, dtype=None, device=None):
    a = np.arange(*args)
    return _make(a, dtype or (np.int64 if a.dtype.kind in "iu" else np.float32), device, False)


def from_numpy(array):
    """A tensor sharing memory with a NumPy array (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros_like(t, dtype=None):
    xp = backend.array_module(t.array)
    return Tensor(xp.zeros(t.shape, dtype=dtype or t.dtype))


def ones_like(t, dtype=None):
    xp = backend.array_module(t.array)
    return Tensor(xp.ones(t.shape, dtype=dtype or t.dtype))
