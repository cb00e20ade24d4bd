"""``torch.backends.mps``: tinyconv has no Apple Metal backend."""


def is_available():
    """False: tinyconv runs on NumPy (CPU) or CuPy (CUDA) only."""
    return False


def is_built():
    """False: no MPS support is built into tinyconv."""
    return False
