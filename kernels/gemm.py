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

**Stacks of products on the CPU** (:func:`gemm_batched`, the Winograd convolution's 36 or
64 small GEMMs per group): NumPy's ``matmul`` on a stack calls BLAS once per matrix, and
with two BLAS threads each call wakes and joins the second thread.  Recent OpenBLAS
releases (NumPy's BLAS on Linux and Windows; 0.3.31 in NumPy 2.4's wheels) have
``cblas_?gemm_batch_strided``, which takes the whole stack in one call and hands whole
matrices to its threads; when the loaded OpenBLAS has it, :func:`gemm_batched` calls it
through ctypes, else ``np.matmul``.
Only for products of more than 100^3 multiply-adds each: below that OpenBLAS routes the
batch through its small-matrix kernels, which segfault in DYNAMIC_ARCH builds such as
NumPy's up to 0.3.31 (fixed upstream by OpenMathLib/OpenBLAS#5980); small products gain
little from one call anyway.

**Stacks on CUDA**: one ``cublasGemmStridedBatchedEx`` per stack, the matrices mapped as in
:func:`gemm` and the batch strides the stack's own, so nothing is copied; always strict FP32
(see :func:`_cublas_gemm_batched` for why the Winograd products take no TF32).

This module imports nothing of tinyconv; the callers read ``tinyconv.backends``' flags.
"""
import ctypes
import threading

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


def _leading_dimension(shape, strides, item):
    """(ld, transposed?) of a matrix of ``shape`` and byte ``strides`` as row-major BLAS takes it,
    copying nothing, or None when it has neither contiguous rows nor contiguous columns.

    Rows contiguous (unit column stride): the matrix itself, ld = its row stride.  Columns
    contiguous: it is the transpose of a row-major matrix (whose rows are its columns), so
    BLAS gets that one with the transpose flag flipped.
    """
    rows, cols = shape
    s0, s1 = strides
    if cols == 1 or s1 == item:
        if rows == 1 or (s0 % item == 0 and s0 // item >= cols):
            return max(1, cols, s0 // item if rows > 1 else cols), False
    if rows == 1 or s0 == item:
        if cols == 1 or (s1 % item == 0 and s1 // item >= rows):
            return max(1, rows, s1 // item if cols > 1 else rows), True
    return None


def _blas_operand(x, trans, name):
    """(pointer, ld, transposed?) of a row-major CuPy operand as cuBLAS takes it, copying nothing;
    anything without contiguous rows or columns would need a copy, which is the caller's to make."""
    layout = _leading_dimension(x.shape, x.strides, x.itemsize)
    if layout is None:
        raise ValueError(f"gemm: {name} of shape {x.shape} and strides {x.strides} has neither contiguous "
                         "rows nor contiguous columns; make it contiguous first")
    ld, flipped = layout
    return x.data.ptr, ld, trans != flipped


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


# --------------------------------------------------------------------------- stacks, CPU

_CBLAS_ROW_MAJOR, _CBLAS_NO_TRANS, _CBLAS_TRANS = 101, 111, 112
#: M*N*K of one product at or below which OpenBLAS's batched GEMM takes its small-matrix
#: path (``MNK <= 100.0*100.0*100.0`` in interface/gemm_batch_strided.c): np.matmul then
BATCHED_MIN_MNK = 100 ** 3
_batched = None                     # {dtype: ctypes function}, filled on first use
_batched_lock = threading.Lock()


def _openblas_symbol(lib, name):
    """``name`` in an OpenBLAS build, whose symbols may carry a prefix and a suffix (scipy-openblas)."""
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            f = getattr(lib, prefix + name + suffix, None)
            if f is not None:
                return f
    return None


def _find_batched():
    """{dtype: cblas_?gemm_batch_strided} of the OpenBLAS NumPy uses, or {} (then np.matmul).

    The libraries are the loaded ones (``_openmp.openblas_libraries``, NumPy's first); the
    integer width is read from ``openblas_get_config()`` (``USE64BITINT``: 64-bit
    ``blasint``).  A product is checked against ``np.matmul`` before the function is trusted.
    """
    from ._openmp import openblas_libraries
    for path in openblas_libraries():
        try:
            lib = ctypes.CDLL(path)            # already loaded: this only opens a handle to it
        except OSError:
            continue
        config = _openblas_symbol(lib, "openblas_get_config")
        if config is None:
            continue
        config.restype = ctypes.c_char_p
        integer = ctypes.c_int64 if b"USE64BITINT" in config() else ctypes.c_int32
        found = {}
        for dtype, letter, scalar in ((np.float32, "s", ctypes.c_float), (np.float64, "d", ctypes.c_double)):
            f = _openblas_symbol(lib, f"cblas_{letter}gemm_batch_strided")
            if f is None:
                continue
            # (order, transa, transb, m, n, k, alpha, a, lda, stridea, b, ldb, strideb,
            #  beta, c, ldc, stridec, count)
            f.argtypes = [ctypes.c_int] * 3 + [integer] * 3 + [scalar, ctypes.c_void_p, integer, integer,
                                                               ctypes.c_void_p, integer, integer, scalar,
                                                               ctypes.c_void_p, integer, integer, integer]
            f.restype = None
            f.int_max = np.iinfo(np.int64 if integer is ctypes.c_int64 else np.int32).max
            if _self_check(f, np.dtype(dtype)):
                found[np.dtype(dtype)] = f
        if found:
            return found
    return {}


def _self_check(f, dtype):
    """Whether f computes a stack of products exactly as np.matmul (small integers: exact sums),
    with one operand transposed, at a size past the small-matrix path."""
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (2, 101, 100)).astype(dtype)
    b = rng.integers(-3, 4, (2, 101, 100)).astype(dtype).transpose(0, 2, 1)
    out = np.full((2, 101, 101), np.nan, dtype)
    return _call_batched(f, a, b, out) and bool(np.array_equal(out, np.matmul(a, b)))


def _stack_operand(x):
    """(pointer, ld, transposed?, batch stride in elements) of a (B, r, c) NumPy stack as
    row-major CBLAS takes it, or None when its matrices have neither contiguous rows nor columns."""
    layout = _leading_dimension(x.shape[1:], x.strides[1:], x.itemsize)
    if layout is None or x.strides[0] % x.itemsize:
        return None
    return x.ctypes.data, layout[0], layout[1], x.strides[0] // x.itemsize


def _call_batched(f, a, b, out):
    """out[i] = a[i] @ b[i] for (B, M, K), (B, K, N), (B, M, N) stacks in one call; False if
    an operand's layout or a size does not fit the function (nothing is computed then)."""
    count, M, K = a.shape
    N = b.shape[2]
    if M * N * K <= BATCHED_MIN_MNK:
        return False
    ops = [_stack_operand(x) for x in (a, b, out)]
    if any(op is None for op in ops) or ops[2][2]:          # C must have contiguous rows
        return False
    (pa, lda, ta, sa), (pb, ldb, tb, sb), (pc, ldc, _, sc) = ops
    if max(count, M, N, K, lda, ldb, ldc, sa, sb, sc) > f.int_max or min(sa, sb) < 0:
        return False
    if count > 1 and sc < M * ldc:                # out's matrices must not overlap
        return False
    trans = {False: _CBLAS_NO_TRANS, True: _CBLAS_TRANS}
    f(_CBLAS_ROW_MAJOR, trans[ta], trans[tb], M, N, K, 1.0, pa, lda, sa, pb, ldb, sb,
      0.0, pc, ldc, sc, count)
    return True


def gemm_batched(a, b, out):
    """``matmul(a, b, out=out)`` for stacks of equal leading shape, in one BLAS / cuBLAS call when it can.

    a (..., M, K), b (..., K, N), out (..., M, N), one float dtype, no broadcasting.  Each
    operand's matrices need contiguous rows or columns (transposed views are fine) and the
    leading dimensions must flatten to one stride (as in any reshape of a contiguous
    array).  NumPy: also each product larger than ``BATCHED_MIN_MNK``; otherwise (also when
    out overlaps a or b), or without OpenBLAS's batched GEMM, this is ``np.matmul``.
    CuPy: one ``cublasGemmStridedBatchedEx`` in strict FP32 (or FP64), copying nothing
    (:func:`_cublas_gemm_batched`); a layout it cannot take raises.  Returns out.
    """
    if type(out).__module__.split(".")[0] == "cupy":
        return _cublas_gemm_batched(a, b, out)
    global _batched
    if _batched is None:
        with _batched_lock:
            if _batched is None:
                _batched = _find_batched()
    f = _batched.get(out.dtype)
    if (f is not None and a.ndim == b.ndim == out.ndim >= 3 and a.dtype == b.dtype == out.dtype
            and a.shape[:-2] == b.shape[:-2] == out.shape[:-2] and a.shape[-1] == b.shape[-2]
            and out.shape[-2:] == (a.shape[-2], b.shape[-1]) and 0 not in out.shape and a.shape[-1]
            and out.flags.writeable and not np.may_share_memory(out, a) and not np.may_share_memory(out, b)):
        stacks = [_flat_stack(x) for x in (a, b, out)]
        if all(x is not None for x in stacks) and _call_batched(f, *stacks):
            return out
    return np.matmul(a, b, out=out)


def _lead_stride(x):
    """The byte stride between x's matrices when its leading dimensions flatten to one, else None."""
    lead = [(n, st) for n, st in zip(x.shape[:-2], x.strides[:-2]) if n != 1]
    for (_, outer), (n, inner) in zip(lead, lead[1:]):
        if outer != inner * n:
            return None
    return lead[-1][1] if lead else 0


def _flat_stack(x):
    """x as a (B, r, c) view, or None when its leading dimensions do not flatten to one stride."""
    stride = _lead_stride(x)
    if stride is None:
        return None
    return np.lib.stride_tricks.as_strided(x, (int(np.prod(x.shape[:-2])), *x.shape[-2:]),
                                           (stride, *x.strides[-2:]))


# --------------------------------------------------------------------------- stacks, CUDA


def _cublas_gemm_batched(a, b, out):
    """out[i] = a[i] @ b[i] over the flattened leading dims, one ``gemmStridedBatchedEx``.

    The Winograd convolution's a*a products per group.  Strict FP32 (``CUBLAS_COMPUTE_32F``)
    whatever the TF32 flags say: Winograd's transforms grow the operands' values (B^T has
    entries up to 21 for F(4x4, 5x5)), so TF32's 10-bit inputs would cost about three
    decimal digits more than they do in an im2col GEMM.  float64 computes in FP64.  Each
    matrix maps to cuBLAS as in :func:`gemm` (B first, transposes as flags); the batch
    strides are the stacks' own, so no operand is copied.
    """
    if a.ndim < 3 or not (a.ndim == b.ndim == out.ndim) or not a.shape[:-2] == b.shape[:-2] == out.shape[:-2]:
        raise ValueError(f"gemm_batched: stacks of one leading shape expected, got {a.shape}, {b.shape}, "
                         f"out {out.shape}")
    (M, K), (K2, N) = a.shape[-2:], b.shape[-2:]
    if K != K2 or out.shape[-2:] != (M, N):
        raise ValueError(f"gemm_batched: a {a.shape} @ b {b.shape} does not give out {out.shape}")
    if not (a.dtype == b.dtype == out.dtype) or out.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm_batched: float32 or float64 operands of one dtype expected, got "
                        f"{a.dtype}, {b.dtype}, out {out.dtype}")
    count = int(np.prod(out.shape[:-2]))
    if count == 0 or M == 0 or N == 0:
        return out
    if K == 0:
        out.fill(0)
        return out
    item = out.itemsize
    ops = []
    for x, name in ((a, "a"), (b, "b"), (out, "out")):
        layout = _leading_dimension(x.shape[-2:], x.strides[-2:], item)
        stride = _lead_stride(x)
        if layout is None or stride is None or stride % item or stride < 0:
            raise ValueError(f"gemm_batched: {name} of shape {x.shape} and strides {x.strides} is not a "
                             "stack of matrices with contiguous rows or columns at one stride")
        ops.append((x.data.ptr, layout[0], layout[1], stride // item))
    (pa, lda, ta, sa), (pb, ldb, tb, sb), (pc, ldc, tc, sc) = ops
    if tc or (count > 1 and sc < M * ldc):
        raise ValueError(f"gemm_batched: out of shape {out.shape} and strides {out.strides} needs contiguous "
                         "rows and matrices that do not overlap")
    if max(M, N, K, lda, ldb, ldc, count) > _INT_MAX:
        raise ValueError(f"gemm_batched: sizes ({count} x {M}, {N}, {K}) exceed cuBLAS's 32-bit int")
    cupy = _cupy()
    if cupy.may_share_memory(out, a) or cupy.may_share_memory(out, b):    # bounds only: no device work
        raise ValueError("gemm_batched: out overlaps an operand; cuBLAS would read what it has written")
    cublas = cupy.cuda.cublas
    op = {False: cublas.CUBLAS_OP_N, True: cublas.CUBLAS_OP_T}
    alpha, beta = np.array(1, dtype=out.dtype), np.array(0, dtype=out.dtype)
    if out.dtype == np.float64:
        dtype, compute = _CUDA_R_64F, cublas.CUBLAS_COMPUTE_64F
    else:
        dtype, compute = _CUDA_R_32F, cublas.CUBLAS_COMPUTE_32F
    handle = cupy.cuda.device.get_cublas_handle()
    # per matrix, C^T = op(B)^T @ op(A)^T column-major: B first (the module docstring)
    cublas.gemmStridedBatchedEx(handle, op[tb], op[ta], N, M, K, alpha.ctypes.data,
                                pb, dtype, ldb, sb, pa, dtype, lda, sa,
                                beta.ctypes.data, pc, dtype, ldc, sc, count, compute,
                                cublas.CUBLAS_GEMM_DEFAULT)
    return out


def blas_matrix(x):
    """``x`` itself when :func:`gemm` takes it as it is (rows or columns contiguous), else a
    C-contiguous copy: the one copy a caller with arbitrary strided input may need."""
    if x.ndim == 2 and (x.flags.c_contiguous or x.flags.f_contiguous):
        return x
    xp = _cupy() if type(x).__module__.split(".")[0] == "cupy" else np
    return xp.ascontiguousarray(x)
