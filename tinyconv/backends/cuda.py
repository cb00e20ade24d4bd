"""``torch.backends.cuda``: ``matmul.allow_tf32`` (False, as PyTorch's default) as a plain flag."""


class _MatmulFlags:
    allow_tf32 = False
    allow_fp16_reduced_precision_reduction = True


matmul = _MatmulFlags()


def is_built():
    """True when CuPy is installed (tinyconv's CUDA path)."""
    from .. import cuda
    return cuda._cupy_or_none() is not None
