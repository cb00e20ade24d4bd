"""tinyconv: a from-scratch deep-learning engine on NumPy and CuPy, with AlexNet as its flagship.

Where things live (see README's code map):
  autograd.py        Tensor, Function, backward, no_grad      (the graph)
  tensor_methods.py  Tensor's math methods, one line each     (operators, in-place ops)
  math_ops.py        arithmetic, shape ops, in-place helpers  (each a Function)
  reductions.py      sum, mean, max/min, sort, topk, ...      (each a Function)
  backend.py         devices, array modules, the kernel seam  (numpy / cupy, fast / reference)
  functional/        layer ops, one family per file           (forward + backward + reference)
  kernels/           hand-written kernels: <family>_numba.py, <family>.cu
  nn/, optim/        modules, initialization; SGD, Adam, ... and lr schedules
  utils/data/        Dataset, DataLoader (worker processes), samplers, collate  (torch.utils.data)
  data/              images: ImageFolder, transforms, bundled digits            (torchvision's names)
  serialization.py   save / load (tinyconv, safetensors and PyTorch .pth files; never pickle)
"""
import numpy as np

from . import functional  # noqa: F401
from . import cuda, nn, optim  # noqa: F401
from . import autograd  # noqa: F401  (tinyconv.autograd.grad / .backward, as torch.autograd)
from . import utils  # noqa: F401  (tinyconv.utils.data, as torch.utils.data)
from . import distributed  # noqa: F401  (as torch.distributed; mpi4py is imported only when used)
from .autograd import (Tensor, enable_grad, from_dlpack, is_grad_enabled, no_grad,  # noqa: F401
                       set_grad_enabled, tensor)
from .backend import device, kernel_mode, use_kernels  # noqa: F401
from .creation import (arange, from_numpy, full, ones, ones_like, rand, randn,  # noqa: F401
                       zeros, zeros_like)
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .math_ops import flatten, matmul, permute, reshape, transpose  # noqa: F401
from .random import get_rng_state, manual_seed, set_rng_state  # noqa: F401
from .reductions import (all, amax, amin, any, argmax, argmin, logsumexp, max,  # noqa: F401
                         maximum, mean, min, minimum, prod, return_types, sort, std, sum, topk,
                         var)
from .serialization import load, save  # noqa: F401
from .threads import compile_stats, get_num_threads, set_num_threads, warmup  # noqa: F401

__version__ = "0.1.0"

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)


def exp(x):
    return x.exp()


def log(x):
    return x.log()
