"""Tensor factories: zeros, ones, randn, ..., as in PyTorch (float32 by default)."""
import numpy as np

from . import backend, random
from .autograd import Tensor
from .dtypes import get_default_dtype


def _make(array, dtype, device, requires_grad):
    array = array.astype(get_default_dtype() if dtype is None else dtype, copy=False)
    if device is not None:
        array = backend.to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def _shape(size, keyword=None):
    """The shape of ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros(size=(2, 3))``, as PyTorch."""
    if keyword is not None:
        if size:
            raise TypeError("received both positional sizes and size=; give one of them")
        size = (keyword,)
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size


def zeros(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape(sizes, size)), dtype, device, requires_grad)


def ones(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape(sizes, size)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """``size`` filled with ``fill_value``: bool, int64 or float32 from the value, as PyTorch."""
    if dtype is None and isinstance(fill_value, (bool, int, np.bool_, np.integer)):
        dtype = np.bool_ if isinstance(fill_value, (bool, np.bool_)) else np.int64
    return _make(np.full(_size(size, "full"), fill_value), dtype, device, requires_grad)


def randn(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    """Standard normal draws from tinyconv's seeded generator."""
    return _make(random.generator().standard_normal(_shape(sizes, size)), dtype, device, requires_grad)


def rand(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    """Uniform [0, 1) draws from tinyconv's seeded generator."""
    return _make(random.generator().random(_shape(sizes, size)), dtype, device, requires_grad)


def arange(*args, dtype=None, device=None):
    a = np.arange(*args)
    return _make(a, dtype or (np.int64 if a.dtype.kind in "iu" else np.float32), device, False)


def from_numpy(array):
    """A tensor sharing memory with a NumPy array (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros_like(t, dtype=None, *, device=None, requires_grad=False):
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, *, device=None, requires_grad=False):
    return _like(ones, t, dtype, device, requires_grad)


# --------------------------------------------------------------------------- the everyday API
# PyTorch's other factories: randint, linspace, eye, empty, *_like, normal, bernoulli, ...


def _dev(device, like=None):
    return device if device is not None else (like.device if like is not None else None)


def _size(size, op):
    if size is None:
        raise TypeError(f"{op}() missing 1 required positional argument: 'size'")
    if isinstance(size, (int, np.integer)):
        raise TypeError(f"{op}(): argument 'size' must be tuple of ints, but found element of "
                        f"type int at pos 0")
    return tuple(int(s) for s in size)


def randint(*args, size=None, dtype=None, device=None, requires_grad=False, generator=None):
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``, int64 unless ``dtype`` says otherwise (as PyTorch)."""
    if args and isinstance(args[-1], (tuple, list)) and size is None:
        size, args = args[-1], args[:-1]
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint() takes randint(high, size) or randint(low, high, size)")
    low, high = int(low), int(high)
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    draws = random.generator().integers(low, high, _size(size, "randint"))
    return _make(draws, np.int64 if dtype is None else dtype, device, requires_grad)


def randint_like(input, *args, dtype=None, device=None, requires_grad=False):
    """``randint_like(input, high)`` or ``randint_like(input, low, high)``: input's shape and dtype."""
    return randint(*args, tuple(input.shape), dtype=dtype or input.dtype,
                   device=_dev(device, input), requires_grad=requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from start to end (both included)."""
    if int(steps) < 0:
        raise RuntimeError("linspace(): number of steps must be non-negative")
    return _make(np.linspace(float(start), float(end), int(steps)), dtype, device, requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps)."""
    if int(steps) < 0:
        raise RuntimeError("logspace(): number of steps must be non-negative")
    a = np.logspace(float(start), float(end), int(steps), base=float(base))
    return _make(a, dtype, device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """The n x m identity (m = n by default)."""
    if int(n) < 0 or (m is not None and int(m) < 0):
        raise RuntimeError(f"n must be greater or equal to 0, got {n if int(n) < 0 else m}")
    return _make(np.eye(int(n), None if m is None else int(m)), dtype, device, requires_grad)


def empty(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    """A tensor whose values are whatever memory held (as ``torch.empty``)."""
    return _make(np.empty(_shape(sizes, size)), dtype, device, requires_grad)


def _like(fill, input, dtype, device, requires_grad):
    out = fill(tuple(input.shape), dtype=dtype or input.dtype, device=_dev(device, input))
    return out.requires_grad_(True) if requires_grad else out


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(empty, input, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    return _like(lambda s, **k: full(s, fill_value, **k), input, dtype, device, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(rand, input, dtype, device, requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(randn, input, dtype, device, requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False):
    """Draws from N(mean, std^2), PyTorch's overloads: tensor mean and/or std (shape broadcast,
    as PyTorch's), or floats with ``size``."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if size is not None:
            raise TypeError("normal(): 'size' goes with float mean and std, not tensors")
        m, s = (np.asarray(backend.to_device(v.array, "cpu")) if isinstance(v, Tensor) else v
                for v in (mean, std))
        if np.any(np.asarray(s) < 0):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        like = mean if isinstance(mean, Tensor) else std
        draws = random.generator().normal(m, s, np.broadcast_shapes(np.shape(m), np.shape(s)))
        return _make(draws, dtype or like.dtype, _dev(device, like), requires_grad)
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    draws = random.generator().normal(mean, std, _size(size, "normal"))
    return _make(draws, dtype, device, requires_grad)


def bernoulli(input, p=None, *, generator=None):
    """1 with probability ``input`` (or ``p``), else 0, in input's shape and dtype."""
    probs = backend.to_device(input.array, "cpu") if p is None else np.full(input.shape, p)
    if np.any((probs < 0) | (probs > 1)):
        raise RuntimeError("bernoulli: all probabilities must be in [0, 1]")
    draws = random.generator().random(input.shape) < probs
    return _make(draws, input.dtype, input.device, False)


def randperm(n, *, dtype=None, device=None, requires_grad=False, generator=None):
    """A random permutation of 0..n-1 (int64)."""
    if int(n) < 0:
        raise RuntimeError(f"n must be non-negative, got{n}")
    return _make(random.generator().permutation(int(n)), np.int64 if dtype is None else dtype,
                 device, requires_grad)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn from the rows of ``input`` (nonnegative weights, 1-d or 2-d), int64."""
    w = np.asarray(backend.to_device(input.array, "cpu"), dtype=np.float64)
    if w.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {w.ndim}")
    rows = w.reshape(-1, w.shape[-1])
    if np.any(rows < 0) or not np.all(np.isfinite(rows)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if np.any(rows.sum(axis=1) == 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > w.shape[-1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    g = random.generator()
    out = np.stack([g.choice(w.shape[-1], int(num_samples), replace=replacement, p=r / r.sum())
                    for r in rows])
    return _make(out.reshape(w.shape[:-1] + (int(num_samples),)), np.int64, input.device, False)


def as_tensor(data, dtype=None, device=None):
    """A tensor of ``data``, sharing its memory when dtype and device already match."""
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    if isinstance(data, np.ndarray) and device in (None, "cpu") and (
            dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()


class Size(tuple):
    """``torch.Size``: a tuple of ints with ``numel()`` (``.shape`` itself stays a plain tuple)."""

    def numel(self):
        return int(np.prod(self, dtype=np.int64))

    def __repr__(self):
        return f"torch.Size({list(self)})"


class _LegacyType(type):
    """``isinstance(x, tinyconv.FloatTensor)`` checks the dtype, as PyTorch's legacy types."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype == cls._legacy_dtype


def _legacy_type(name, dtype):
    def __new__(cls, *data):
        if len(data) == 1 and isinstance(data[0], list):
            return Tensor(np.array(data[0], dtype=dtype))      # no float detour: 2**53 + 1 stays
        t = Tensor(*data)
        return t if t.dtype == dtype else Tensor(t.array.astype(dtype))
    return _LegacyType(name, (), {"__new__": __new__, "_legacy_dtype": np.dtype(dtype),
                                  "__doc__": f"``torch.{name}(...)``: ``torch.Tensor(...)`` as "
                                             f"{np.dtype(dtype)}."})


FloatTensor = _legacy_type("FloatTensor", np.float32)
DoubleTensor = _legacy_type("DoubleTensor", np.float64)
HalfTensor = _legacy_type("HalfTensor", np.float16)
LongTensor = _legacy_type("LongTensor", np.int64)
IntTensor = _legacy_type("IntTensor", np.int32)
ShortTensor = _legacy_type("ShortTensor", np.int16)
CharTensor = _legacy_type("CharTensor", np.int8)
ByteTensor = _legacy_type("ByteTensor", np.uint8)
BoolTensor = _legacy_type("BoolTensor", np.bool_)


# --------------------------------------------------------------------------- tensor()


def default_dtype_for(data):
    """The dtype PyTorch would infer: arrays keep theirs, Python floats -> float32."""
    if hasattr(data, "dtype") and hasattr(data, "shape"):
        return np.dtype(data.dtype)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return get_default_dtype()
    if arr.dtype.kind in "iu":
        return np.dtype(np.int64)
    if arr.dtype.kind == "b":
        return np.dtype(np.bool_)
    raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} "
                    f"(NumPy sees dtype {arr.dtype})")


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor holding a copy of ``data`` (list, scalar, array or Tensor)."""
    if isinstance(data, Tensor):
        data = data.array
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
