"""``tinyconv.linalg``, as ``torch.linalg``: the vector norms (matrix norms are not implemented)."""
from .shape_ops import vector_norm


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """``torch.linalg.norm`` for vectors: ``ord=None`` is the 2-norm of ``A`` flattened (for a matrix,
    the Frobenius norm); a numeric ``ord`` with ``dim`` an int, or ``A`` 1-d, is ``vector_norm``."""
    if ord is None or ord == "fro" and (dim is None or len(dim) == 2):
        if ord is None and dim is not None and not isinstance(dim, int) and len(dim) != 2:
            raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. "
                               f"Got {list(dim)}")
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if isinstance(dim, int) or (dim is None and A.ndim == 1) or (
            isinstance(dim, (tuple, list)) and len(dim) == 1):
        if isinstance(ord, str):
            raise RuntimeError(f"linalg.vector_norm: Order {ord} not supported.")
        return vector_norm(A, ord, dim, keepdim, dtype=dtype)
    raise NotImplementedError(f"linalg.norm: the matrix norm ord={ord!r} is not implemented; "
                              "use linalg.vector_norm or ord=None / 'fro'")


__all__ = ["norm", "vector_norm"]
