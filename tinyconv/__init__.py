"""tinyconv: a from-scratch deep-learning engine on NumPy and CuPy, with AlexNet as its flagship.

Where things live (see README's code map):
  autograd.py        Tensor, Function, backward, no_grad      (the graph)
  tensor_methods.py  Tensor's math methods, one line each     (operators, in-place ops)
  math_ops.py        arithmetic, shape ops, in-place helpers  (each a Function)
  pointwise.py       sqrt, sin, ... (one table), where, masked_fill, isclose, logical ops
  dtypes.py          torch.float32 / long / ... as NumPy dtypes; default dtype; type names
  backends/          torch.backends flags (mps, cudnn, cuda.matmul), no-ops here
  reductions.py      sum, mean, max/min, sort, topk, ...      (each a Function)
  shape_ops.py       cat, stack, split, expand, gather, scatter, norm, einsum, ...  (views as PyTorch)
  backend.py         devices, array modules, the kernel seam  (numpy / cupy, fast / reference)
  functional/        layer ops, one family per file           (forward + backward + reference)
  kernels/           hand-written kernels: <family>_numba.py, <family>.cu
  nn/, optim/        modules, initialization; SGD, Adam, ... and lr schedules
  utils/data/        Dataset, DataLoader (worker processes), samplers, collate  (torch.utils.data)
  data/              images: ImageFolder, transforms, bundled digits            (torchvision's names)
  serialization.py   save / load (tinyconv, safetensors and PyTorch .pth files; never pickle)
  as_torch.py        python -m tinyconv.as_torch script.py: a PyTorch script, its imports aliased
"""
from . import tensor_methods  # noqa: F401  (first: binds Tensor's operators onto the core, once)
from . import functional  # noqa: F401
from . import cuda, nn, optim  # noqa: F401
from . import autograd  # noqa: F401  (tinyconv.autograd.grad / .backward, as torch.autograd)
from . import utils  # noqa: F401  (tinyconv.utils.data, as torch.utils.data)
from . import distributed  # noqa: F401  (as torch.distributed; mpi4py is imported only when used)
from .autograd import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .backend import device, kernel_mode, use_kernels  # noqa: F401
from .creation import (arange, from_dlpack, from_numpy, full, ones, ones_like, rand,  # noqa: F401
                       randn, tensor, zeros, zeros_like)
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .math_ops import flatten, matmul, permute, reshape, transpose  # noqa: F401
from .random import get_rng_state, manual_seed, set_rng_state  # noqa: F401
from .reductions import (all, amax, amin, any, argmax, argmin, logsumexp, max,  # noqa: F401
                         maximum, mean, min, minimum, prod, return_types, sort, std, sum, topk,
                         var)
from .serialization import load, save  # noqa: F401
# -- shape, indexing and products (shape_ops.py) -------------------------------------------
from . import linalg  # noqa: F401  (norm, vector_norm, matrix_norm, svdvals, as torch.linalg)
from .shape_ops import (argsort, bmm, cat, chunk, concat, concatenate, cumprod, cumsum,  # noqa: F401
                        diag, diagonal, dot, einsum, flip, gather, ger, hstack,
                        index_select, masked_select, meshgrid, mm, movedim, moveaxis, narrow,
                        nonzero, norm, outer, roll, scatter, scatter_add, split,
                        squeeze, stack, swapaxes, swapdims, t, take, tile, tril, triu, unbind,
                        unflatten, unsqueeze, vstack)
from .threads import compile_stats, get_num_threads, set_num_threads, tune_process, warmup  # noqa: F401

__version__ = "0.1.0"

# -- the everyday tensor API (issue 12): pointwise math, dtypes, factories, torch.backends ------
from . import backends  # noqa: F401,E402  (torch.backends.mps / cudnn / cuda flags)
from .creation import (BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor,  # noqa: F401,E402
                       HalfTensor, IntTensor, LongTensor, ShortTensor, Size, as_tensor, bernoulli,
                       empty, empty_like, eye, full_like, is_tensor, linspace, logspace,
                       multinomial, normal, numel, rand_like, randint, randint_like, randn_like,
                       randperm)
from .dtypes import (bool, bool_, double, float, float16, float32, float64,  # noqa: F401,E402,A004
                     get_default_dtype, half, int, int8, int16, int32, int64, is_floating_point,
                     long, set_default_dtype, short, uint8)
from .pointwise import (abs, absolute, acos, add, allclose, arccos, arcsin, arctan,  # noqa: F401,E402,A004
                        arctan2, asin, atan, atan2, ceil, clamp, clip, cos, cosh, div, divide, eq,
                        equal, erf, exp, exp2, expm1, fix, floor, floor_divide, frac, ge, greater,
                        greater_equal, gt, isclose, isfinite, isinf, isnan, le, less, less_equal,
                        log, log1p, log2, log10, log_softmax, lt, masked_fill, mul, multiply, ne,
                        neg, negative, not_equal, pow, reciprocal, relu, round, rsqrt,
                        sigmoid, sign, sin, sinh, softmax, sqrt, square, sub, subtract, tan, tanh,
                        true_divide, trunc, where)
from .pointwise import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, fmod,  # noqa: F401,E402
                        logical_and, logical_not, logical_or, logical_xor, remainder)
