"""``tinyconv.linalg``, as ``torch.linalg``: vector and matrix norms, singular values.

The pieces (``VectorNorm``, ``SingularValues``, ``vector_norm``, ``matrix_norm``,
``svdvals``) live in :mod:`tinyconv.shape_ops`, beside ``torch.norm``, which needs them
too; this module is ``torch.linalg``'s namespace, and ``norm``, which picks one by ``dim``.
The dependency goes one way: shape_ops imports nothing of this module.
"""
import builtins

from .shape_ops import matrix_norm, svdvals, vector_norm


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
