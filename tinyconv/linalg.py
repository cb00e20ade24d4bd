"""``tinyconv.linalg``, as ``torch.linalg``: vector and matrix norms, singular values.

Each differentiable piece is a Function of :mod:`tinyconv.shape_ops` (``VectorNorm``) or
here (``SingularValues``); the matrix norms are compositions of them with ``amax``/``amin``.
"""
import builtins

from . import backend
from .autograd import Function
from .math_ops import wrap_dim
from .reductions import amax, amin
from .shape_ops import movedim, squeeze, unsqueeze, vector_norm

INF = float("inf")


class SingularValues(Function):
    """s = the singular values of x (each matrix of a batch), largest first;
    dx = U diag(ds) V^T (for distinct singular values, as PyTorch's)."""

    def forward(self, x):
        u, s, vh = backend.array_module(x).linalg.svd(x, full_matrices=False)
        self.save_for_backward(u, vh)
        return s

    def backward(self, gs):
        u, vh = self.saved_tensors
        return u @ (gs[..., :, None] * vh)


def svdvals(A):
    if A.ndim < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    return SingularValues()(A)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """The matrix norm ``ord`` ('fro', 'nuc', 1, -1, 2, -2, inf, -inf) over dims ``dim``."""
    if A.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    if len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got "
                           f"{' '.join(str(d) for d in dim)}")
    rows, cols = wrap_dim(dim[0], A.ndim), wrap_dim(dim[1], A.ndim)
    if rows == cols:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    if dtype is not None:
        A = A.to(dtype)
    if ord == "fro":
        return vector_norm(A, 2, (rows, cols), keepdim)
    if ord in (1, -1, INF, -INF):            # the largest (smallest) column or row sum of |A|
        summed, then = (rows, cols) if abs(ord) == 1 else (cols, rows)
        pick = amax if ord > 0 else amin
        y = pick(vector_norm(A, 1, summed, keepdim=True), then, keepdim=True)
        return y if keepdim else squeeze(y, (rows, cols))
    if ord in ("nuc", 2, -2):                # from the singular values
        s = svdvals(movedim(A, (rows, cols), (-2, -1)))
        y = s.sum(-1) if ord == "nuc" else (amax if ord == 2 else amin)(s, -1)
        if keepdim:
            for d in sorted((rows, cols)):
                y = unsqueeze(y, d)
        return y
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """``torch.linalg.norm``: a vector norm over one dim (or all of ``A`` when ``ord`` is None),
    a matrix norm over two."""
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if A.ndim not in (1, 2):
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must "
                               f"be 1D or 2D. Got {A.ndim}D.")
        dim = tuple(builtins.range(A.ndim))
    if len(dim) == 1:
        if isinstance(ord, str):
            raise RuntimeError(f"linalg.vector_norm: Order {ord} not supported.")
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got "
                       f"{list(dim)}")


__all__ = ["matrix_norm", "norm", "svdvals", "vector_norm"]
