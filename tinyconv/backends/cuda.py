"""``torch.backends.cuda``: ``matmul.allow_tf32`` (False, as PyTorch's default), and ``conv_algorithm``.

``matmul.allow_tf32`` governs the float32 GEMMs of ``linear`` (``tinyconv.nn.Linear``) and
of 2-d ``matmul`` / ``@`` / ``mm`` on CUDA: True lets cuBLAS use TF32 tensor cores, False (the
default) keeps them strict FP32.  (Batched products are CuPy's stacked matmul: strict FP32.)
The convolutions follow ``tinyconv.backends.cudnn.allow_tf32`` instead, as in PyTorch.

``conv_algorithm`` (tinyconv-specific, like the algorithm cuDNN picks) chooses how conv2d
runs on CUDA, read at each forward (its backward follows the forward's choice):

* ``"im2col_gemm"``: the CUDA im2col kernel, cuBLAS GEMMs (TF32 when
  ``cudnn.allow_tf32``), col2im; the column matrix lives in global memory;
* ``"implicit_gemm"``: tinyconv's implicit-GEMM kernels (``kernels/conv_implicit_gemm.cu``),
  which form the columns tile by tile in shared memory and never store them; strict FP32
  (or FP64) SIMT arithmetic, so TF32 is never used, whatever ``cudnn.allow_tf32`` says;
* ``"winograd"`` (= ``"winograd4x4"``: F(4x4, r x r)) or ``"winograd2x2"`` (F(2x2, r x r), more
  accurate): for 3x3 and 5x5 stride-1 layers, tinyconv's Winograd transform kernels
  (``kernels/winograd.cu``) around strict-FP32 (or FP64) cuBLAS strided-batched GEMMs, never
  TF32; other layers take im2col;
* ``"auto"`` (the default): Winograd F(4x4) for 3x3 / 5x5 stride-1 layers of at least 32
  channels per group (``tinyconv.functional.conv_winograd.CUDA_AUTO_MIN_CHANNELS``): all of
  them in strict arithmetic (float64, or float32 with ``cudnn.allow_tf32`` False), the 5x5
  ones only where TF32 is allowed; everything else im2col + cuBLAS (TF32 tensor cores where
  allowed).  The implicit GEMM only once a GPU run shows it
  faster (``tinyconv.functional.conv.AUTO_IMPLICIT_GEMM``, False until then: the model in
  benchmarks/results/GPU_NOTES.md predicts these untuned kernels slower than cuBLAS + the
  column traffic).  The Winograd rule is that model's too, unmeasured.
"""

#: how conv2d computes a convolution on CUDA (see above)
conv_algorithm = "auto"
CONV_ALGORITHMS = ("auto", "im2col_gemm", "implicit_gemm", "winograd", "winograd2x2", "winograd4x4")


class _MatmulFlags:
    allow_tf32 = False                              # read by each GEMM as it runs
    allow_fp16_reduced_precision_reduction = True   # a plain flag: tinyconv has no fp16 GEMMs


matmul = _MatmulFlags()


def is_built():
    """True when CuPy is installed (tinyconv's CUDA path)."""
    from .. import cuda
    return cuda._cupy_or_none() is not None
