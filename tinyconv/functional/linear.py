"""Fully connected layer: ``linear(input, weight, bias=None)``, as ``torch.nn.functional.linear``.

    y = x W^T + b        x (..., in),  W (out, in),  b (out,)  ->  y (..., out)

The leading dimensions of ``x`` are flattened into one batch dimension M, so the
op is one (M, in) x (in, out) GEMM, a BLAS / cuBLAS call through ``kernels/gemm.py``
with the transposes as flags; on CUDA in TF32 when
``tinyconv.backends.cuda.matmul.allow_tf32`` is True (False by default, as PyTorch's).

Kernel seam (family ``linear``), both optional, chosen by ``kernel("linear", name, y)``:

    bias_add(y, b) -> y + b      y (M, out), b (out,); may write into y, which the op owns
    bias_grad(gy) -> gb          gy (M, out) -> gb (out,), the sum over the M rows

:func:`bias_add_reference` and :func:`bias_grad_reference` are the NumPy ones.
"""
import math

from ..autograd import Function
import numpy as np

from ..backend import array_module, kernel, recycled_empty
from ..backends.cuda import matmul as matmul_flags
from ..kernels.gemm import blas_matrix, gemm
from ._checks import check_float, check_ndim, check_same_dtype, check_tensor


def bias_add_reference(y, b):
    """y + b with b broadcast over the rows of y (in place: y is a fresh GEMM result)."""
    y += b
    return y


def bias_grad_reference(gy):
    """The bias gradient: gy (M, out) summed over its M rows."""
    return gy.sum(axis=0)


class LinearFn(Function):
    """y = x W^T + b  on x flattened to X (M, in):  Y = X W^T + b.

    Backward, with G = dL/dY (M, out):
        dX = G W          (M, out) @ (out, in)   -> reshaped back to x's shape
        dW = G^T X        (out, M) @ (M, in)
        db = sum over the M rows of G
    Called as ``LinearFn()(x, w)`` or ``LinearFn()(x, w, b)``.
    """

    def forward(self, x, w, b=None):
        self.x_shape = x.shape
        xp = array_module(x)
        x2 = blas_matrix(x.reshape(math.prod(x.shape[:-1]), w.shape[1]))   # (M, in): the leading dims
        w = blas_matrix(w)
        y = gemm(x2, w, xp.empty((x2.shape[0], w.shape[0]), dtype=x.dtype), trans_b=True,   # (M, out)
                 tf32=matmul_flags.allow_tf32)
        if b is not None:
            b = array_module(b).ascontiguousarray(b)
            y = (kernel("linear", "bias_add", y) or bias_add_reference)(y, b)
        self.save_for_backward(x2, w)
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, gy):
        x2, w = self.saved_tensors
        xp, tf32 = array_module(gy), matmul_flags.allow_tf32
        g2 = blas_matrix(gy.reshape(-1, w.shape[0]))         # (M, out)
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = gemm(g2, w, xp.empty(x2.shape, dtype=gy.dtype), tf32=tf32).reshape(self.x_shape)
        if self.needs_input_grad[1]:
            # on the CPU into memory a dropped gradient gave back (backend.drop_grad): as large
            # as W, a fresh array would be mapped from the OS and page-faulted every step
            out = recycled_empty(w.shape, gy.dtype, g2) if xp is np else xp.empty(w.shape, dtype=gy.dtype)
            gw = gemm(g2, x2, out, trans_a=True, tf32=tf32)   # G^T X
        if len(self.needs_input_grad) == 2:
            return gx, gw
        gb = None
        if self.needs_input_grad[2]:
            gb = (kernel("linear", "bias_grad", g2) or bias_grad_reference)(g2)
        return gx, gw, gb


def linear(input, weight, bias=None):
    """Apply ``y = input @ weight.T + bias``.

    ``input`` (..., in_features) with at least one dimension, ``weight``
    (out_features, in_features), ``bias`` (out_features,) or None.  Returns
    (..., out_features).  All three must share one float dtype and device.
    """
    op = "linear"
    check_ndim(weight, 2, op, "weight", "(out_features, in_features)")
    check_tensor(input, op, "input")
    if input.ndim < 1:
        raise ValueError(f"{op}: expected input of shape (..., in_features), got a 0-d tensor")
    out_f, in_f = weight.shape
    if input.shape[-1] != in_f:
        raise ValueError(f"{op}: input has {input.shape[-1]} features (shape {input.shape}) but "
                         f"weight of shape {weight.shape} expects {in_f} (shape (..., {in_f}))")
    if bias is not None:
        check_ndim(bias, 1, op, "bias", "(out_features,)")
        if bias.shape[0] != out_f:
            raise ValueError(f"{op}: expected bias of shape ({out_f},) to match weight "
                             f"{weight.shape}, got {bias.shape}")
    check_float(input, op, "input")
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    args = (input, weight) if bias is None else (input, weight, bias)
    return LinearFn()(*args)
