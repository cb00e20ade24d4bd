"""``torch.backends.cuda``: ``matmul.allow_tf32`` (False, as PyTorch's default).

``matmul.allow_tf32`` governs the float32 GEMMs of ``linear`` (``tinyconv.nn.Linear``) and
of 2-d ``matmul`` / ``@`` / ``mm`` on CUDA: True lets cuBLAS use TF32 tensor cores, False (the
default) keeps them strict FP32.  (Batched products are CuPy's stacked matmul: strict FP32.)
The convolutions follow ``tinyconv.backends.cudnn.allow_tf32`` instead, as in PyTorch.
"""


class _MatmulFlags:
    allow_tf32 = False                              # read by each GEMM as it runs
    allow_fp16_reduced_precision_reduction = True   # a plain flag: tinyconv has no fp16 GEMMs


matmul = _MatmulFlags()


def is_built():
    """True when CuPy is installed (tinyconv's CUDA path)."""
    from .. import cuda
    return cuda._cupy_or_none() is not None
