"""``tinyconv.backends``: PyTorch's ``torch.backends`` flags, so training scripts run unchanged.

Not :mod:`tinyconv.backend` (devices and kernel selection).  tinyconv has no Apple (MPS)
backend and no cuDNN: ``backends.mps.is_available()`` is False.  Two flags do what
PyTorch's do, on CUDA: ``cudnn.allow_tf32`` (True) lets the convolutions' float32 GEMMs use
TF32 tensor cores, ``cuda.matmul.allow_tf32`` (False) those of ``linear`` and of 2-d
``matmul``.  The other ``cudnn`` flags are plain attributes that scripts may set and read.
"""
from . import cuda, cudnn, mps  # noqa: F401

# tinyconv-specific (no torch.backends counterpart): how conv2d computes a convolution on the
# CPU, like the algorithm cuDNN picks.  "im2col" (unroll + GEMM), "winograd" (= "winograd4x4",
# F(4x4, r x r)), "winograd2x2" (F(2x2, r x r), more accurate) for 3x3 and 5x5 stride-1 layers,
# or "auto": by shape from a measured table (tinyconv/functional/conv_winograd.py ``AUTO_RULE``).
# Read at each call; layers Winograd cannot do (other kernels, strides, dilations) always use
# im2col.  CUDA has its own flag, ``tinyconv.backends.cuda.conv_algorithm``.
conv_algorithm = "auto"
