"""Layer ops, one family per file, each with its forward, backward and NumPy reference.

Also reachable as ``tinyconv.nn.functional``.  Each family's fast kernels live in
``tinyconv/kernels/<family>_numba.py`` (CPU) and ``<family>.cu`` / ``<family>_cuda.py``
(GPU), chosen through :func:`tinyconv.backend.kernel`.
"""
from ..math_ops import flatten  # noqa: F401

# one line per layer family:
from .linear import linear  # noqa: F401
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,  # noqa: F401
                   huber_loss, kl_div, l1_loss, log_softmax, mse_loss, nll_loss, smooth_l1_loss, softmax)
from .normalization import batch_norm, group_norm, layer_norm  # noqa: F401
from .activation import (dropout, dropout2d, elu, gelu, hardtanh, leaky_relu, relu, relu_,  # noqa: F401
                         relu6, sigmoid, silu, softplus, tanh)
from .embedding import embedding  # noqa: F401
from .upsample import interpolate  # noqa: F401
from .lrn import local_response_norm  # noqa: F401
from .conv import conv1d, conv2d  # noqa: F401
from .pooling import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool1d, avg_pool2d,  # noqa: F401
                      max_pool1d, max_pool2d)
