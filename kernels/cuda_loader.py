"""Compile tinyconv's CUDA C kernels at run time and launch them (CuPy ``RawModule``, NVRTC).

Each layer family has one source, ``kernels/<family>.cu``, and one launcher module,
``kernels/<family>_cuda.py``, that declares the kernels it uses in ``KERNELS`` and calls
:func:`launch`.  A family's source is compiled once per process (and cached on disk by
CuPy) for float and double together: every templated kernel ``name`` is instantiated
through the NVRTC name expressions ``name<float>`` and ``name<double>``, or, for a kernel
with more template parameters after the type, ``name<float, V>`` for each variant V its
``KERNELS`` entry lists (the Winograd transforms: ``"2, 3"`` for F(2x2, 3x3), ...).

The same source and options are compiled by the tests without a GPU (nvcc, NVRTC), and
run on the CPU through :func:`use_host_emulation` (``cuda_host_emulation.h``), which
makes :func:`launch` accept NumPy arrays and run the kernel's C++ build instead.

This package imports nothing of tinyconv.
"""
import contextlib
import functools
import os
import re

import numpy as np

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))

#: NVRTC options for every family (CuPy adds the -arch of the current device itself)
NVRTC_OPTIONS = ("-std=c++17",)

#: threads per block; the grid is capped, the grid-stride loops cover the rest
BLOCK = 256
MAX_GRID = 65536

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.]+)"\s*$', re.M)


def xp_of(a):
    """``cupy`` for a CuPy array, else ``numpy`` (host emulation)."""
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


@functools.lru_cache(maxsize=None)
def source(family):
    """The full source of ``<family>.cu`` with its local ``#include "..."`` files inlined.

    Inlined rather than found through ``-I``: CuPy's kernel cache is keyed by the source
    text, so a change to a shared header must change the text it compiles.
    """
    def expand(name, seen):
        if name in seen:
            return ""
        seen.add(name)
        with open(os.path.join(KERNEL_DIR, name), encoding="utf-8") as f:
            text = f.read()
        return _INCLUDE.sub(lambda m: expand(m.group(1), seen), text)
    return expand(f"{family}.cu", set())


def kernel_names(family):
    """``{kernel: templated?}`` declared by ``kernels/<family>_cuda.py`` in ``KERNELS``: False (no
    template), True (on the dtype), or a tuple of variants (the template arguments after it)."""
    import importlib
    return dict(importlib.import_module(f"tinyconv.kernels.{family}_cuda").KERNELS)


def name_expressions(family):
    """The NVRTC name expressions of a family: ``name<float>``, ``name<double>``, or ``name``."""
    exprs = []
    for name, templated in kernel_names(family).items():
        if not templated:
            exprs.append(name)
            continue
        variants = (None,) if templated is True else templated
        exprs += [expression(name, t, v) for t in (np.float32, np.float64) for v in variants]
    return tuple(exprs)


def expression(name, dtype=None, variant=None):
    """The name expression of kernel ``name`` for ``dtype`` (None: not a template) and ``variant``
    (the template arguments after the type, e.g. ``"4, 3"``, or None)."""
    if dtype is None:
        return name
    dtype = np.dtype(dtype)
    if dtype not in _CTYPES:
        raise TypeError(f"{name}: CUDA kernels take float32 or float64 arrays, got {dtype}")
    return f"{name}<{_CTYPES[dtype]}{'' if variant is None else ', ' + variant}>"


_modules = {}
_kernels = {}


def _module(family, device_id):
    """The compiled ``cupy.RawModule`` of a family on GPU ``device_id`` (one per device)."""
    import cupy
    key = (family, device_id)
    if key not in _modules:
        with cupy.cuda.Device(device_id):
            _modules[key] = cupy.RawModule(code=source(family), options=NVRTC_OPTIONS,
                                           name_expressions=name_expressions(family))
    return _modules[key]


def cuda_kernel(family, expr, device_id):
    """The ``cupy.RawKernel`` of name expression ``expr`` on GPU ``device_id``, built once.

    ``RawModule.get_function`` makes a new ``RawKernel`` object on every call (its Python
    set-up costs about as much as the launch itself), so the kernels are cached here by
    (family, expression, device).
    """
    key = (family, expr, device_id)
    fn = _kernels.get(key)
    if fn is None:
        import cupy
        with cupy.cuda.Device(device_id):
            fn = _kernels[key] = _module(family, device_id).get_function(expr)
    return fn


def clear_cache():
    """Forget every compiled module and kernel (tests; CuPy's disk cache stays)."""
    _modules.clear()
    _kernels.clear()


def grid_for(n):
    """Blocks for ``n`` work items: one thread each, capped at ``MAX_GRID`` blocks."""
    return max(1, min((int(n) + BLOCK - 1) // BLOCK, MAX_GRID))


# ---------------------------------------------------------------------------- host emulation

_host_runner = None


@contextlib.contextmanager
def use_host_emulation(runner):
    """Within the block, :func:`launch` with NumPy arrays calls ``runner`` instead of the GPU.

    ``runner(family, expression, grid, block, args)`` runs the kernel's host build (see
    ``tests/test_cuda_sources.py``); the launcher code above it is exactly the GPU one.
    """
    global _host_runner
    previous, _host_runner = _host_runner, runner
    try:
        yield
    finally:
        _host_runner = previous


def _device_of(family, name, arrays):
    """The one GPU every array of a launch lives on (a kernel reads them all through one context)."""
    ids = {a.device.id for a in arrays}
    if len(ids) > 1:
        raise ValueError(f"{family}.{name}: the arrays are on different GPUs {sorted(ids)}; "
                         "move them to one device first")
    return ids.pop()


def launch(family, name, dtype, n, args, grid=None, block=BLOCK, variant=None):
    """Run kernel ``name`` (the ``dtype`` instance, and ``variant``'s) of ``family`` over ``n`` work items.

    ``args`` are the kernel's parameters in order: arrays, and NumPy scalars whose types
    match the C parameter types exactly (``np.int64`` for ``long long``, ``np.int32`` for
    ``int``, ``np.float64`` for ``double``, ``np.uint64`` for ``unsigned long long``).
    ``grid`` defaults to one thread per item (:func:`grid_for`); kernels that give a whole
    block to each item pass their own.  The launch runs on the GPU that holds the arrays
    (``with cupy.cuda.Device``), whichever device is current, on the current stream.
    """
    if n <= 0:
        return
    expr = expression(name, dtype, variant)
    grid = grid_for(n) if grid is None else int(grid)
    arrays = [a for a in args if isinstance(a, np.ndarray) or xp_of(a) is not np]
    if arrays and xp_of(arrays[0]) is not np:
        import cupy
        dev = _device_of(family, name, arrays)
        fn = cuda_kernel(family, expr, dev)
        with cupy.cuda.Device(dev):
            fn((grid,), (block,), tuple(args))
    elif _host_runner is not None:
        _host_runner(family, expr, grid, block, tuple(args))
    else:
        raise TypeError(f"{family}.{name}: CUDA kernels take CuPy arrays, got NumPy arrays "
                        "(the NumPy path is the reference in tinyconv.functional)")


# ---------------------------------------------------------------------------- launcher checks


def contiguous(a):
    """``a`` C-contiguous with its own shape (``ascontiguousarray`` makes a 0-d array 1-d)."""
    return xp_of(a).ascontiguousarray(a).reshape(a.shape)


def check(kernel, name, a, shape=None, dtype=None, ndim=None, in_place=False):
    """Check launcher argument ``name`` of ``kernel`` before the GPU indexes it.

    A kernel trusts its sizes: an array of the wrong shape is read or written out of
    bounds, silently.  ``shape`` is the expected tuple, ``dtype`` the expected dtype,
    ``ndim`` the expected rank; ``in_place`` arrays (updated by the kernel) must be
    C-contiguous already, since a contiguous copy would take the update instead.
    """
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{kernel}: {name} must be an array, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{kernel}: expected {name} to be {ndim}-d, got shape {tuple(a.shape)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{kernel}: expected {name} of shape {tuple(shape)}, got {tuple(a.shape)}")
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise TypeError(f"{kernel}: expected {name} of dtype {np.dtype(dtype)}, got {a.dtype}")
    if in_place and not a.flags.c_contiguous:
        raise ValueError(f"{kernel}: {name} must be C-contiguous (the kernel updates it in place)")
    return a
