"""A stand-in for CuPy on a machine without a GPU, for rehearsing the GPU tests (a developer tool).

    PYTHONPATH=tests/fake_cupy python -m pytest tests/test_gpu.py -m gpu

makes ``import cupy`` find this module: "GPU" arrays are NumPy arrays of a subclass whose
module is ``cupy`` (so ``tinyconv.backend`` treats them as device arrays and picks the
``kernels/*_cuda.py`` launchers), and ``cupy.RawModule`` runs each kernel's g++ build with
``kernels/cuda_host_emulation.h`` (see tests/test_cuda_sources.py).  Every launcher thus
goes through its real GPU path — module, name expression, grid, argument tuple — and the
GPU tests' own code runs end to end.

What it cannot tell: whether a NumPy function that tinyconv calls through ``xp`` exists in
real CuPy, anything about speed, memory, streams or concurrency.  It is not a substitute
for running tests/test_gpu.py on a GPU.

It does count, in :data:`counts`, what would make the host wait for the GPU or move data:

* ``"d2h"``: a device-to-host read -- ``ndarray.get()``, ``cupy.asnumpy``, ``int()``,
  ``float()``, ``bool()``, ``operator.index()``, ``.item()``, ``.tolist()`` of a device array;
* ``"sync"``: ``Stream.synchronize``, ``Device.synchronize``, ``Event.synchronize``,
  ``cuda.runtime.deviceSynchronize``;
* ``"h2d_pageable"`` / ``"h2d_pinned"``: host-to-device copies from ordinary memory (which a
  real GPU cannot overlap with compute) and from pinned buffers (``cupyx.empty_pinned``);
* ``"get_function"``: ``RawModule.get_function`` calls (each builds a ``RawKernel``).

A NumPy function applied to a device array directly (``np.asarray(x)``) is not seen: real
CuPy refuses it, the fake lets it through uncounted.
"""
import collections
import os
import sys
import tempfile
import types

import numpy as _np

__version__ = "0.0-fake"

#: what the process did that a real GPU would make it wait for, or copy (see above)
counts = collections.Counter()


def _count(kind):
    counts[kind] += 1


class ndarray(_np.ndarray):
    """A "device" array: NumPy underneath, ``cupy`` as its module."""

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        # CuPy reductions give 0-d arrays, never host scalars
        return _np.asarray(arr).view(ndarray)

    def __getitem__(self, index):
        out = super().__getitem__(index)
        return out if isinstance(out, _np.ndarray) else _np.asarray(out).view(ndarray)

    def get(self, stream=None, out=None):
        """Copy to the host (a plain NumPy array)."""
        _count("d2h")
        return _np.array(self.view(_np.ndarray))

    def set(self, arr, stream=None):
        """Copy host array ``arr`` into this device array."""
        _count_h2d(arr)
        self.view(_np.ndarray)[...] = arr

    # each of these reads the value on the host: a device-to-host copy and a wait
    def __bool__(self):
        _count("d2h")
        return bool(self.view(_np.ndarray))

    def __int__(self):
        _count("d2h")
        return int(self.view(_np.ndarray))

    def __float__(self):
        _count("d2h")
        return float(self.view(_np.ndarray))

    def __index__(self):
        _count("d2h")
        return self.view(_np.ndarray).__index__()

    def item(self, *args):
        _count("d2h")
        return self.view(_np.ndarray).item(*args)

    def tolist(self):
        _count("d2h")
        return self.view(_np.ndarray).tolist()

    @property
    def device(self):
        return cuda.Device(0)

    def __dlpack__(self, *a, **k):
        raise TypeError("fake cupy: no DLPack")


ndarray.__module__ = "cupy"


def _wrap(out):
    if isinstance(out, _np.ndarray):
        return out if isinstance(out, ndarray) else out.view(ndarray)
    if isinstance(out, tuple):
        return tuple(_wrap(o) for o in out)
    if isinstance(out, list):
        return [_wrap(o) for o in out]
    if isinstance(out, _np.generic):
        return _np.asarray(out).view(ndarray)
    return out


def _unwrap(a):
    return a.view(_np.ndarray) if isinstance(a, ndarray) else a


def _count_h2d(a):
    if isinstance(a, _np.ndarray) and not isinstance(a, ndarray):
        _count("h2d_pinned" if getattr(a, "_fake_pinned", False) else "h2d_pageable")


def asarray(a, dtype=None, order=None, blocking=False):
    if isinstance(a, ndarray) and (dtype is None or a.dtype == dtype):
        return a
    _count_h2d(a)
    return _np.array(_unwrap(a), dtype=dtype, order=order or "K").view(ndarray)


def array(a, dtype=None, copy=True, order="K", blocking=False):
    _count_h2d(a)
    return _np.array(_unwrap(a), dtype=dtype, order=order).view(ndarray)


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get()
    return _np.asarray(a)


def ascontiguousarray(a, dtype=None):
    return _np.ascontiguousarray(_unwrap(a), dtype=dtype).view(ndarray)


def __getattr__(name):
    obj = getattr(_np, name)
    if callable(obj) and not isinstance(obj, type) and not isinstance(obj, _np.ufunc):
        def fn(*args, **kwargs):
            return _wrap(obj(*args, **kwargs))
        fn.__name__ = name
        return fn
    return obj


# ---------------------------------------------------------------------------- cupy.cuda


class _Device:
    def __init__(self, index=0):
        self.id = int(getattr(index, "id", index) or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        _count("sync")

    def use(self):
        pass


class _Event:
    """A CUDA event: everything runs at once here, so it is always done."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.done = True

    def record(self, stream=None):
        pass

    def synchronize(self):
        _count("sync")


class _Stream:
    _stack = []

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else id(self)
        self.waited = []                 # the events this stream was told to wait for (tests)

    def __enter__(self):
        _Stream._stack.append(self)
        return self

    def __exit__(self, *exc):
        _Stream._stack.pop()
        return False

    def synchronize(self):
        _count("sync")

    def record(self, event=None):
        event = event or _Event()
        event.record(self)
        return event

    def wait_event(self, event):
        self.waited.append(event)

    def use(self):
        _Stream._stack[:] = [self]
        return self


_null_stream = _Stream(null=True)


def _current_stream():
    return _Stream._stack[-1] if _Stream._stack else _null_stream


class _Pool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass

    def malloc(self, n):
        raise NotImplementedError("fake cupy: no device memory")


_pool = _Pool()


def get_default_memory_pool():
    return _pool


runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1, getDevice=lambda: 0, deviceSynchronize=lambda: _count("sync"),
    runtimeGetVersion=lambda: 13000, driverGetVersion=lambda: 13000,
    getDeviceProperties=lambda i: {"name": b"fake GPU (host emulation)", "multiProcessorCount": 1,
                                   "major": 9, "minor": 0})
cuda = types.SimpleNamespace(Device=_Device, runtime=runtime, get_current_stream=_current_stream,
                             Stream=_Stream, Event=_Event, set_allocator=lambda allocator=None: None,
                             nvrtc=types.SimpleNamespace(getVersion=lambda: (13, 0)))
sys.modules[__name__ + ".cuda"] = cuda


# ---------------------------------------------------------------------------- RawModule on the host

_runner = None


def _host_runner():
    global _runner
    if _runner is None:
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sys.path.insert(0, here)                       # tests/
        import test_cuda_sources as T
        _runner = T.HostRunner(T.build_host_libs(tempfile.mkdtemp(prefix="fake_cupy_")))
    return _runner


class _Function:
    def __init__(self, family, expr):
        self.family, self.expr = family, expr

    def __call__(self, grid, block, args):
        host_args = tuple(a.view(_np.ndarray) if isinstance(a, ndarray) else a for a in args)
        _host_runner()(self.family, self.expr, int(grid[0]), int(block[0]), host_args)


class RawModule:
    def __init__(self, code, options=(), name_expressions=()):
        from tinyconv.kernels import cuda_loader
        self.family = next(f for f in ("activation", "conv", "linear", "loss", "lrn", "optim", "pooling")
                           if cuda_loader.source(f) == code)
        self.exprs = set(name_expressions)

    def get_function(self, expr):
        _count("get_function")
        assert expr in self.exprs, f"{expr} was not among the name expressions {sorted(self.exprs)}"
        return _Function(self.family, expr)
