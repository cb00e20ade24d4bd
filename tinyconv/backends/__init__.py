"""``tinyconv.backends``: PyTorch's ``torch.backends`` flags, so training scripts run unchanged.

Not :mod:`tinyconv.backend` (devices and kernel selection).  tinyconv has no Apple (MPS)
backend and no cuDNN: ``backends.mps.is_available()`` is False, and the ``cudnn`` and
``cuda.matmul`` flags are plain attributes that scripts may set and read; they change
nothing in tinyconv (its convolutions are its own kernels, and CuPy matmul does not use TF32
unless CuPy is told to).
"""
from . import cuda, cudnn, mps  # noqa: F401
