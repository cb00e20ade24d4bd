"""``gemm``: C = op(A) @ op(B) on row-major 2-d arrays, NumPy's matmul on the CPU, one cuBLAS call on CUDA.

conv2d and linear do every matrix product through :func:`gemm`, so that on a GPU

* no operand is copied: A, B and C are any 2-d arrays whose rows are contiguous
  (C-contiguous matrices, row blocks of them, and their transposes); a transpose is a
  cuBLAS flag, not a copy.  CuPy's own ``matmul`` copies every non-contiguous operand of
  a stacked (>2-d) product and calls ``gemmStridedBatchedEx`` with strict FP32 compute.
* the precision is the caller's choice: ``tf32=True`` asks cuBLAS for TF32 tensor cores
  (``CUBLAS_COMPUTE_32F_FAST_TF32``: inputs rounded to 10 mantissa bits, FP32
  accumulation), ``tf32=False`` for strict FP32 (``CUBLAS_COMPUTE_32F``).  float64 is
  always ``cublasDgemm``: there is no TF32 for doubles.  CuPy's handle stays in
  ``CUBLAS_DEFAULT_MATH`` with host pointer mode (CuPy restores both after changing
  them), so the compute type alone decides.

The row-major <-> column-major mapping (cuBLAS is column-major).  A row-major (r, c)
matrix whose rows start ``ld`` elements apart is, read column-major, the (c, r) matrix
X^T with leading dimension ``ld``.  So the row-major product C = op(A) @ op(B) of shape
(M, N) with inner dimension K is the column-major product C^T = op(B)^T @ op(A)^T:

    cublas gemm(transa = op of B, transb = op of A,  m = N, n = M, k = K,
                B, ldb,  A, lda,  C, ldc)

with B first: cuBLAS sees each row-major operand as its transpose already, so the flags
carry over unchanged (op(B) = B is OP_N on B's column-major view B^T, and so on).

This module imports nothing of tinyconv; the callers read ``tinyconv.backends``' flags.
"""
import numpy as np

# cudaDataType_t (library_types.h): the element types of A, B and C
_CUDA_R_32F, _CUDA_R_64F = 0, 1
_INT_MAX = 2**31 - 1


def gemm(a, b, out, trans_a=False, trans_b=False, accumulate=False, tf32=False):
    """out[...] = op(a) @ op(b)  (or ``out += op(a) @ op(b)`` with ``accumulate``); returns ``out``.

    op(a) is ``a.T`` when ``trans_a``, else ``a`` (likewise for b).  ``out`` is (M, N) with
    contiguous rows; a and b are 2-d with contiguous rows or columns, all of one dtype.
    ``tf32`` (float32 on CUDA only) allows TF32 tensor cores.
    """
    A, B = (a.T if trans_a else a), (b.T if trans_b else b)
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        raise ValueError(f"gemm: expected 2-d operands, got {a.shape}, {b.shape} and out {out.shape}")
    (M, K), (K2, N) = A.shape, B.shape
    if K != K2 or out.shape != (M, N):
        raise ValueError(f"gemm: op(a) {A.shape} @ op(b) {B.shape} does not give out {out.shape}")
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"gemm: operands of one dtype expected, got {a.dtype}, {b.dtype}, out {out.dtype}")
    if type(a).__module__.split(".")[0] != "cupy" or a.dtype not in (np.float32, np.float64):
        # NumPy (the CPU's BLAS takes the transposed views as they are), or a dtype cuBLAS
        # is not asked for here (CuPy's own matmul then)
        xp = np if type(a).__module__.split(".")[0] != "cupy" else _cupy()
        if accumulate:
            out += xp.matmul(A, B)
        else:
            xp.matmul(A, B, out=out)
        return out
    if M == 0 or N == 0:
        return out
    if K == 0:
        if not accumulate:
            out.fill(0)
        return out
    return _cublas_gemm(a, b, out, trans_a, trans_b, M, N, K, accumulate, tf32)


def _cupy():
    import cupy
    return cupy


def _blas_operand(x, trans, name):
    """(pointer, ld, transposed?) of a row-major operand as cuBLAS takes it, copying nothing.

    Rows contiguous (unit column stride): x itself, ld = its row stride.  Columns
    contiguous: x is the transpose of a row-major matrix (x.T has contiguous rows), so pass
    x.T with the flag flipped.  Anything else would need a copy, which is the caller's to make.
    """
    item = x.itemsize
    rows, cols = x.shape
    s0, s1 = x.strides
    if cols == 1 or s1 == item:
        if rows == 1 or (s0 % item == 0 and s0 // item >= cols):
            return x.data.ptr, max(1, cols, s0 // item if rows > 1 else cols), trans
    if rows == 1 or s0 == item:
        if cols == 1 or (s1 % item == 0 and s1 // item >= rows):
            return x.data.ptr, max(1, rows, s1 // item if cols > 1 else rows), not trans
    raise ValueError(f"gemm: {name} of shape {x.shape} and strides {x.strides} has neither contiguous "
                     "rows nor contiguous columns; make it contiguous first")


def _cublas_gemm(a, b, out, trans_a, trans_b, M, N, K, accumulate, tf32):
    cupy = _cupy()
    cublas = cupy.cuda.cublas
    pa, lda, ta = _blas_operand(a, trans_a, "a")
    pb, ldb, tb = _blas_operand(b, trans_b, "b")
    item = out.itemsize
    if not (out.shape[0] == 1 or out.strides[1] == item) or (out.shape[0] > 1 and out.strides[0] < N * item):
        raise ValueError(f"gemm: out of shape {out.shape} and strides {out.strides} needs contiguous rows")
    ldc = max(1, N, out.strides[0] // item if out.shape[0] > 1 else N)
    if max(M, N, K, lda, ldb, ldc) > _INT_MAX:
        raise ValueError(f"gemm: sizes ({M}, {N}, {K}) or leading dimensions exceed cuBLAS's 32-bit int")
    op = {False: cublas.CUBLAS_OP_N, True: cublas.CUBLAS_OP_T}
    # host scalars (CuPy's handles use CUBLAS_POINTER_MODE_HOST); kept alive through the call
    alpha, beta = np.array(1, dtype=out.dtype), np.array(1 if accumulate else 0, dtype=out.dtype)
    handle = cupy.cuda.device.get_cublas_handle()
    # C^T (N x M, column-major) = op(B)^T (N x K) @ op(A)^T (K x M): B first, see the module docstring
    if out.dtype == np.float64:
        cublas.dgemm(handle, op[tb], op[ta], N, M, K, alpha.ctypes.data, pb, ldb, pa, lda,
                     beta.ctypes.data, out.data.ptr, ldc)
    else:
        compute = cublas.CUBLAS_COMPUTE_32F_FAST_TF32 if tf32 else cublas.CUBLAS_COMPUTE_32F
        cublas.gemmEx(handle, op[tb], op[ta], N, M, K, alpha.ctypes.data,
                      pb, _CUDA_R_32F, ldb, pa, _CUDA_R_32F, lda,
                      beta.ctypes.data, out.data.ptr, _CUDA_R_32F, ldc, compute, cublas.CUBLAS_GEMM_DEFAULT)
    return out


def blas_matrix(x):
    """``x`` itself when :func:`gemm` takes it as it is (rows or columns contiguous), else a
    C-contiguous copy: the one copy a caller with arbitrary strided input may need."""
    if x.ndim == 2 and (x.flags.c_contiguous or x.flags.f_contiguous):
        return x
    xp = _cupy() if type(x).__module__.split(".")[0] == "cupy" else np
    return xp.ascontiguousarray(x)
