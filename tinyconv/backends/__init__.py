"""``tinyconv.backends``: PyTorch's ``torch.backends`` flags, so training scripts run unchanged.

Not :mod:`tinyconv.backend` (devices and kernel selection).  tinyconv has no Apple (MPS)
backend and no cuDNN: ``backends.mps.is_available()`` is False.  Two flags do what
PyTorch's do, on CUDA: ``cudnn.allow_tf32`` (True) lets the convolutions' float32 GEMMs use
TF32 tensor cores, ``cuda.matmul.allow_tf32`` (False) those of ``linear``.  The other
``cudnn`` flags are plain attributes that scripts may set and read.
"""
from . import cuda, cudnn, mps  # noqa: F401
