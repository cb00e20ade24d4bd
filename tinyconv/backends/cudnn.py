"""``torch.backends.cudnn``: flags scripts set; no-ops in tinyconv, which does not use cuDNN."""

enabled = True          # as PyTorch's defaults
benchmark = False
deterministic = False


def is_available():
    """False: tinyconv's convolutions are its own kernels, not cuDNN's."""
    return False


def version():
    return None
