"""``torch.backends.cudnn``: the flags scripts set, with PyTorch's defaults.

tinyconv does not use cuDNN (``is_available()`` is False), but its convolutions stand in
for PyTorch's cuDNN ones, so ``allow_tf32`` means what PyTorch's does: it governs the
convolutions' GEMMs on CUDA (tinyconv.functional.conv2d and all built on it), True by
default as in PyTorch; the matrix products of ``linear`` follow
``tinyconv.backends.cuda.matmul.allow_tf32`` (False by default) instead.  ``enabled``,
``benchmark`` and ``deterministic`` change nothing in tinyconv: its convolutions' algorithm
is chosen by rule, not by timing (``tinyconv.backends.conv_algorithm`` on the CPU,
``tinyconv.backends.cuda.conv_algorithm`` on CUDA), and every one of them is deterministic.
"""

enabled = True          # as PyTorch's defaults
benchmark = False
deterministic = False
allow_tf32 = True       # TF32 tensor cores for float32 convolutions on CUDA (read at each GEMM)


def is_available():
    """False: tinyconv's convolutions are its own kernels, not cuDNN's."""
    return False


def version():
    return None
