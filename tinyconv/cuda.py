"""``tinyconv.cuda``: is a GPU there, how many, wait for it; as ``torch.cuda``.

CuPy is imported only when one of these is called, so the CPU path never needs it.
Asking for a tensor on "cuda" without CuPy or without a GPU raises a RuntimeError that
says which of the two is missing (see ``tinyconv.backend._import_cupy``).
"""
from . import backend


def _cupy_or_none():
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def device_count():
    """Number of CUDA GPUs CuPy sees (0 without CuPy, a driver or a GPU)."""
    cupy = _cupy_or_none()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:        # CUDA driver missing or broken: no GPU to use
        return 0


def is_available():
    """True when CuPy is installed and sees at least one GPU."""
    return device_count() > 0


def why_unavailable():
    """None when CUDA is usable, else a sentence saying whether CuPy or the GPU is missing."""
    try:
        backend._import_cupy()
    except RuntimeError as e:
        return str(e)
    return None


def current_device():
    return int(backend._import_cupy().cuda.runtime.getDevice())


def get_device_name(device=None):
    """The GPU's name, e.g. 'NVIDIA H100 80GB HBM3'."""
    cupy = backend._import_cupy()
    index = backend.device(device if device is not None else "cuda").index
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else name


def synchronize(device=None):
    """Wait until every kernel queued on the device has finished (for timing)."""
    cupy = backend._import_cupy()
    index = backend.device(device if device is not None else "cuda").index
    with cupy.cuda.Device(index):
        cupy.cuda.get_current_stream().synchronize()
        cupy.cuda.runtime.deviceSynchronize()
    from . import device_checks
    device_checks.raise_pending()               # the GPU's work is done: report its deferred checks


def memory_allocated():
    """Bytes held by live CuPy arrays in the default memory pool."""
    return int(backend._import_cupy().get_default_memory_pool().used_bytes())


def memory_reserved():
    """Bytes the default memory pool holds from the driver (live arrays plus cached blocks)."""
    return int(backend._import_cupy().get_default_memory_pool().total_bytes())


def empty_cache():
    """Return the pool's cached, unused blocks to the driver."""
    backend._import_cupy().get_default_memory_pool().free_all_blocks()
