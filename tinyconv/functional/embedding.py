"""Embedding lookup, as ``torch.nn.functional.embedding``.

    y[i...] = weight[input[i...]]        input: integer indices of any shape, weight (V, D)
                                         y: input.shape + (D,)

Backward scatters each output row's gradient back onto the weight row it came from,
adding when an index repeats:

    d weight[v] = sum over positions i with input[i] == v of dy[i]   (/ count(v) with
                  scale_grad_by_freq),   and d weight[padding_idx] = 0

``max_norm`` renormalizes, in place and outside autograd (as PyTorch), every looked-up
row whose ``norm_type``-norm exceeds it: row *= max_norm / (norm + 1e-7).
"""
import numbers

import numpy as np

from ..autograd import Function, Tensor, no_grad
from ..backend import array_module
from ._checks import check_float, check_tensor
from .pooling import _scatter_add


class EmbeddingFn(Function):
    """y = weight[index];  d weight = scatter-add of dy at index (0 at ``padding_idx``).

    ``index`` is a constant (the input's integer array); only the weight gets a gradient.
    """

    def __init__(self, index, padding_idx, scale_grad_by_freq):
        self.index, self.padding_idx, self.scale = index, padding_idx, scale_grad_by_freq

    def forward(self, weight):
        self.num = weight.shape[0]
        return weight[self.index]

    def backward(self, gy):
        xp = array_module(gy)
        idx = self.index.reshape(-1)
        g = gy.reshape(idx.size, gy.shape[-1])
        if self.scale:
            counts = xp.bincount(idx, minlength=self.num)
            g = g / counts[idx][:, None].astype(g.dtype)
        gw = xp.zeros((self.num, g.shape[1]), dtype=gy.dtype)
        _scatter_add(gw, idx, g)
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return (gw,)


def _indices(input, op):
    if isinstance(input, Tensor):
        a = input.array
    elif hasattr(input, "dtype") or isinstance(input, (list, tuple)):
        a = np.asarray(input)
    else:
        raise TypeError(f"{op}: input must be a Tensor of integer indices, got {type(input).__name__}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: Expected tensor for argument #1 'indices' to have an integer dtype "
                        f"(Long or Int), but got {a.dtype}")
    return a


def _padding_idx(padding_idx, num, op):
    if padding_idx is None:
        return None
    if not isinstance(padding_idx, numbers.Integral) or isinstance(padding_idx, bool):
        raise TypeError(f"{op}: padding_idx must be an int, got {padding_idx!r}")
    if not -num <= padding_idx < num:
        raise ValueError(f"{op}: padding_idx must be within num_embeddings ({num}), got {padding_idx}")
    return int(padding_idx) % num


def embedding_renorm_(weight, index, max_norm, norm_type):
    """Scale, in place, each row ``weight[v]`` (v in ``index``) whose norm exceeds ``max_norm``."""
    xp = array_module(weight.array)
    rows = xp.unique(index.reshape(-1))
    w = weight.array
    norms = (xp.abs(w[rows]) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    big = norms > max_norm
    if bool(big.any()):
        with no_grad():
            scale = (max_norm / (norms[big] + 1e-7)).astype(w.dtype)
            w[rows[big]] *= scale[:, None]
            weight._version_counter.n += 1
    return weight


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Look up rows of ``weight`` (V, D) at the integer ``input``: shape ``input.shape + (D,)``.

    ``padding_idx``: that row gets no gradient (it may be negative, counted from the end).
    ``max_norm``: rows looked up with a larger norm are renormalized in place first.
    ``scale_grad_by_freq``: each row's gradient is divided by how often it occurs in ``input``.
    ``sparse=True`` (sparse gradients) is not supported.
    """
    op = "embedding"
    check_tensor(weight, op, "weight")
    check_float(weight, op, "weight")
    if weight.ndim != 2:
        raise ValueError(f"{op}: 'weight' must be 2-D (num_embeddings, embedding_dim), "
                         f"got shape {weight.shape}")
    if sparse:
        raise NotImplementedError(f"{op}: sparse gradients (sparse=True) are not supported")
    index = array_module(weight.array).asarray(_indices(input, op))
    v = weight.shape[0]
    if index.size and bool(((index < 0) | (index >= v)).any()):
        bad = int(index[(index < 0) | (index >= v)].reshape(-1)[0])
        raise IndexError(f"{op}: index {bad} is out of range for {v} embeddings "
                         f"(expected 0 <= index < {v})")
    pad = _padding_idx(padding_idx, v, op)
    if max_norm is not None:
        embedding_renorm_(weight, index, float(max_norm), float(norm_type))
    return EmbeddingFn(index, pad, bool(scale_grad_by_freq))(weight)
