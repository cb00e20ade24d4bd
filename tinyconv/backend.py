"""Devices, array modules and the kernel seam.

Every op computes on raw arrays through an *array module*: ``numpy`` for the
CPU, ``cupy`` for CUDA.  ``array_module(x)`` picks it from the array itself, so
one graph runs on either device without the ops knowing which.

Fast kernels plug in per op through :func:`kernel`.  A functional op asks for
``kernel("conv", "im2col", x)``; that looks for the function ``im2col`` in
``tinyconv/kernels/conv_numba.py`` (CPU) or ``tinyconv/kernels/conv_cuda.py``
(CUDA).  When the mode is ``"reference"``, or no such kernel exists, it returns
``None`` and the op runs its plain NumPy reference instead.
"""
import contextlib
import importlib
import math
import os
import threading

import numpy as np

# --------------------------------------------------------------------------- devices


class device:
    """Where a tensor lives, as in PyTorch: ``device("cpu")``, ``device("cuda:0")``."""

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, idx = type.split(":", 1)
            if not idx.isdigit():
                raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {type}:{idx!r}")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {type!r}")
        if type == "cuda" and index is None:
            index = 0
        self.type = type
        self.index = None if type == "cpu" else int(index)

    def __eq__(self, other):
        if isinstance(other, (str, device)):
            try:
                other = device(other)
            except ValueError:
                return False
            return (self.type, self.index) == (other.type, other.index)
        return NotImplemented

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")


def _import_cupy(index=None):
    """Import CuPy lazily; say plainly whether CuPy or the GPU (or GPU ``index``) is missing."""
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "device 'cuda' needs CuPy, which is not installed: pip install 'tinyconv[cuda]' "
            f"(import failed: {e})") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise RuntimeError(f"device 'cuda': CuPy is installed but sees no GPU ({e})") from None
    if n == 0:
        raise RuntimeError("device 'cuda': CuPy is installed but sees no GPU")
    if index is not None and not 0 <= index < n:
        raise RuntimeError(f"device 'cuda:{index}': CuPy sees {n} GPU(s), cuda:0 ... cuda:{n - 1}")
    return cupy


def is_cuda_array(a):
    return type(a).__module__.split(".")[0] == "cupy"


def device_of(a):
    """The device of a raw array (numpy -> cpu, cupy -> cuda:N)."""
    if is_cuda_array(a):
        return device("cuda", a.device.id)
    return CPU


def array_module(x):
    """``numpy`` or ``cupy``: the module that computes on array ``x``."""
    if is_cuda_array(x):
        import cupy
        return cupy
    return np


def module_for(dev):
    """The array module of a device."""
    dev = device(dev)
    return _import_cupy(dev.index) if dev.type == "cuda" else np


def to_device(a, dev):
    """Move raw array ``a`` to device ``dev`` (a copy only when it has to move)."""
    dev = device(dev)
    if device_of(a) == dev:
        return a
    if dev.type == "cpu":
        from . import device_checks
        device_checks.raise_pending()           # a host read: report the deferred device checks
        return a.get()
    cupy = _import_cupy(dev.index)
    with cupy.cuda.Device(dev.index):
        return cupy.asarray(a)


# --------------------------------------------------------------------------- CPU memory

#: what keep_freed_memory() set, for the record (None: not applied)
malloc_settings = None


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    By default glibc maps every block over a (self-adjusting, at most 32 MB) threshold
    from the OS afresh, and gives memory back once 2x that threshold lies free at the
    top of the heap.  A training step frees and allocates the same large arrays every
    step, so each one is mapped again and pays a page fault per page on first touch:
    measured on this project's 2-core machine, the LRN forward at conv1's output shape
    took 12 ms writing into fresh pages, 4.5 ms in reused ones, and 1.8 ms with this
    setting.  It sets ``M_MMAP_THRESHOLD`` to 32 MB (glibc's maximum) and
    ``M_TRIM_THRESHOLD`` to 1 GB: the process's memory then stays at its high-water
    mark, as with PyTorch's caching allocators.  Arrays over 32 MB are still mapped
    afresh; conv2d keeps its own (``workspace``, ``recycled_empty``).

    It changes the whole process's allocator, so it is never applied behind the host's
    back: :func:`tinyconv.tune_process` applies it on request (``tinyconv train`` and the
    benchmarks ask), on Linux with glibc only, unless the environment sets
    ``TINYCONV_MALLOC=system``.  Returns the settings applied, or None.
    """
    global malloc_settings
    import ctypes
    import platform
    if os.environ.get("TINYCONV_MALLOC", "") == "system" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    settings = {"M_MMAP_THRESHOLD": 32 << 20, "M_TRIM_THRESHOLD": 1 << 30}
    codes = {"M_TRIM_THRESHOLD": -1, "M_MMAP_THRESHOLD": -3}         # from glibc's malloc.h
    if all(libc.mallopt(codes[k], v) == 1 for k, v in settings.items()):
        malloc_settings = settings
    return malloc_settings


# --------------------------------------------------------------------------- scratch buffers

_scratch = threading.local()


def workspace(name, shape, dtype, like):
    """A scratch array of ``shape`` for use *inside* one op call, reused by the next call.

    On the CPU a large array allocated afresh is mapped fresh from the OS, and its first
    touch costs a page fault per 4 KiB page: measured here, writing 112 MB of conv2's
    columns took 15 ms into a new array and 4 ms into a reused one.  So an op's large
    temporaries (never its results, never anything saved for backward) live in one
    buffer per ``name`` and dtype, per thread, grown when a call needs more.  On CUDA
    this is a plain ``cupy.empty``: CuPy's memory pool already reuses device memory.
    :func:`free_workspace` drops the buffers.
    """
    xp = array_module(like)
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    key, size = (name, np.dtype(dtype)), math.prod(shape)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


_recycled = {}                      # (shape, dtype) -> arrays given back by recycle()
_recycled_lock = threading.Lock()
_RECYCLED_PER_KEY = 4


def recycled_empty(shape, dtype, like):
    """An uninitialised array, reusing the memory of one given back by :func:`recycle`.

    For large arrays that an op saves for backward and drops right after it (conv2d's
    columns): in a training loop every step needs the same shapes again, and reusing
    them spares the page faults of fresh memory (see :func:`workspace`).  On CUDA this
    is ``cupy.empty``.
    """
    xp = array_module(like)
    if xp is np:
        with _recycled_lock:
            free = _recycled.get((tuple(shape), np.dtype(dtype)))
            if free:
                return free.pop()
    return xp.empty(shape, dtype=dtype)


def recycle(a):
    """Give array ``a`` back for :func:`recycled_empty`; the caller must hold no other reference to it."""
    if array_module(a) is not np:
        return
    with _recycled_lock:
        free = _recycled.setdefault((a.shape, a.dtype), [])
        if len(free) < _RECYCLED_PER_KEY:
            free.append(a)


#: gradients at least this large go back to the pool when dropped (smaller ones are cheap to map)
RECYCLE_GRAD_BYTES = 1 << 20


def drop_grad(param):
    """``param.grad = None``, giving a large CPU gradient array back for :func:`recycled_empty`.

    ``zero_grad()`` calls this.  A fully connected layer's weight gradient is as large as
    its weight (AlexNet's fc6: 151 MB), far over malloc's mmap threshold, so each step
    would map it afresh and pay a page fault per 4 KiB page; ``linear``'s backward takes
    it from the pool instead.  The array is given back only when nothing else can reach
    it: the Tensor held by ``.grad`` alone, and its array by that Tensor alone (a
    reference kept by the user, ``g = p.grad``, or any view of it, keeps it out).
    """
    import sys
    g = param.grad
    param.grad = None
    if g is None or not hasattr(sys, "getrefcount") or sys.getrefcount(g) != 2:
        return                              # 2: the local name g and getrefcount's argument
    a = g.array
    del g
    if (isinstance(a, np.ndarray) and a.nbytes >= RECYCLE_GRAD_BYTES and a.base is None
            and a.flags.c_contiguous and a.flags.writeable and sys.getrefcount(a) == 2):
        recycle(a)


def free_workspace():
    """Release the CPU memory kept for reuse: this thread's scratch buffers and recycled arrays."""
    _scratch.__dict__.pop("buffers", None)
    with _recycled_lock:
        _recycled.clear()


# --------------------------------------------------------------------------- kernel seam

_MODES = ("fast", "reference")
_mode = os.environ.get("TINYCONV_KERNELS", "fast")
if _mode not in _MODES:
    raise ValueError(f"TINYCONV_KERNELS must be one of {_MODES}, got {_mode!r}")
_kernel_cache = {}


def kernel_mode():
    """The active kernel mode: ``"fast"`` (Numba/CUDA kernels) or ``"reference"`` (NumPy)."""
    return _mode


@contextlib.contextmanager
def _restore(previous):
    global _mode
    try:
        yield
    finally:
        _mode = previous


def use_kernels(mode):
    """Select ``"fast"`` kernels or the plain NumPy ``"reference"`` for every op.

    Takes effect at once; used as a context manager it restores the previous mode::

        with tinyconv.use_kernels("reference"):
            y = F.conv2d(x, w)      # steps through the readable NumPy code
    """
    global _mode
    if mode not in _MODES:
        raise ValueError(f"use_kernels: expected one of {_MODES}, got {mode!r}")
    previous, _mode = _mode, mode
    return _restore(previous)


def kernel(family, name, x):
    """The fast kernel ``name`` of a layer family for the device of array ``x``, or None.

    CPU kernels live in ``tinyconv/kernels/<family>_numba.py``, CUDA kernels in
    ``tinyconv/kernels/<family>_cuda.py``.  Returns None in reference mode or where
    no kernel is written, so the caller falls back to its NumPy reference.
    """
    if _mode == "reference":
        return None
    flavour = "cuda" if is_cuda_array(x) else "numba"
    key = (family, name, flavour)
    if key not in _kernel_cache:
        modname = f"tinyconv.kernels.{family}_{flavour}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
            mod = None
        if mod is not None and flavour == "numba":     # a full disk skips Numba's cache file, not the step
            importlib.import_module("tinyconv.kernels._numba_cache").tolerate_write_errors(mod)
        _kernel_cache[key] = getattr(mod, name, None)
    return _kernel_cache[key]
