"""Layer ops, one family per file, each with its forward, backward and NumPy reference.

Also reachable as ``tinyconv.nn.functional``.  Each family's fast kernels live in
``tinyconv/kernels/<family>_numba.py`` (CPU) and ``<family>.cu`` / ``<family>_cuda.py``
(GPU), chosen through :func:`tinyconv.backend.kernel`.
"""
from ..math_ops import flatten  # noqa: F401

# one line per layer family:
from .linear import linear  # noqa: F401
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,  # noqa: F401
                   l1_loss, log_softmax, mse_loss, nll_loss, softmax)
from .normalization import batch_norm  # noqa: F401
from .activation import dropout, dropout2d, leaky_relu, relu, relu_, sigmoid, tanh  # noqa: F401
from .lrn import local_response_norm  # noqa: F401
from .conv import conv2d  # noqa: F401
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
