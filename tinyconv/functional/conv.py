"""2-d convolution by im2col + GEMM: ``conv2d``, its ``Conv2dFn``, and the NumPy references.

The idea (Chellapilla et al. 2006; Caffe's ``im2col``): unroll every receptive field of
the input into one column of a matrix, and a convolution becomes one matrix product.

* ``im2col`` turns ``x`` (N, C, H, W) into ``cols`` (N, C*kh*kw, OH*OW).  Row
  ``r = (c*kh + i)*kw + j`` holds the tap (channel c, kernel row i, kernel column j);
  column ``l = oh*OW + ow`` holds output pixel (oh, ow)::

      cols[n, (c*kh + i)*kw + j, oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

  (0 where the index falls in the padding), with ``OH = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1``.
  The dilation (dh, dw) spreads the kernel taps dh rows and dw columns apart: a 3x3
  kernel with dilation 2 covers a 5x5 window, reading every other pixel of it.
* ``col2im`` is its adjoint: it adds every column back onto the pixels it was read
  from, so a pixel that sits in several (overlapping) windows sums their gradients.

The references below are plain array code written against ``xp`` (NumPy or CuPy), so
they run on either device.  Fast versions with the same signatures plug in through
``kernel("conv", "im2col", x)`` (``kernels/conv_numba.py``, ``kernels/conv_cuda.py``);
``im2col_batched`` / ``col2im_batched`` kernels (Numba and CUDA) work in conv2d's batched
GEMM layout (G, K, N*L) directly, saving the transposing copies around the GEMM.
The matrix products are BLAS / cuBLAS calls through ``kernels/gemm.py``: 2-d, one per
group, on slices of the arrays with the transposes as flags, so no operand is copied;
on CUDA in TF32 when ``tinyconv.backends.cudnn.allow_tf32`` is True (the default, as
PyTorch's flag for its cuDNN convolutions), else strict FP32; float64 is always dgemm.
"""
from ..autograd import Function, Tensor
from ..backend import array_module, is_cuda_array, kernel, recycle, recycled_empty, workspace
from ..kernels._geometry import out_size as conv_output_size  # the one output-size formula
from ..backends import cudnn
from ..kernels.gemm import gemm
from ._checks import as_2d_op, check_float, check_ndim, check_same_dtype, check_tensor, pair, single

# --------------------------------------------------------------------------- references


def im2col_reference(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """(N, C, H, W) -> cols (N, C*kh*kw, OH*OW); see the module docstring for the layout.

    One strided slice per kernel tap (i, j): for a fixed tap, the pixels that tap sees
    across all output positions are ``xpad[..., i*dh : i*dh + sh*OH : sh, j*dw : ... : sw]``.
    So the loop runs kh*kw times, each step copying a whole (N, C, OH, OW) block.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = xp.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # output (oh, ow) reads padded pixel (oh*sh + i*dh, ow*sw + j*dw)
            r, c = i * dh, j * dw
            cols[:, :, i, j] = xpad[:, :, r:r + sh * OH:sh, c:c + sw * OW:sw]
    # (N, C, kh, kw, OH, OW) is already row-major in r = (c*kh + i)*kw + j and l = oh*OW + ow
    return cols.reshape(N, C * kh * kw, OH * OW)


def col2im_reference(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """The adjoint of im2col: cols (N, C*kh*kw, OH*OW) -> gx of shape ``x_shape`` (N, C, H, W).

    Each tap's (N, C, OH, OW) block is *added* back onto the strided slice it was read
    from; overlapping windows (stride < kernel) add up, and what lands in the padding
    is dropped at the end.
    """
    xp = array_module(cols)
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    cols = cols.reshape(N, C, kh, kw, OH, OW)
    gpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            r, c = i * dh, j * dw
            gpad[:, :, r:r + sh * OH:sh, c:c + sw * OW:sw] += cols[:, :, i, j]
    return xp.ascontiguousarray(gpad[:, :, ph:ph + H, pw:pw + W])


def unbatched(fn, input, *args, **kwargs):
    """Run 4-d op ``fn`` on one (C, H, W) image as a batch of one, then drop that batch dim."""
    out = fn(input.reshape(1, *input.shape), *args, **kwargs)
    if isinstance(out, tuple):                    # max_pool2d(..., return_indices=True)
        return tuple(o.reshape(*o.shape[1:]) for o in out)
    return out.reshape(*out.shape[1:])


# Every conv kernel takes the dilation as trailing ``dh, dw`` arguments (default 1).

def _im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    return (kernel("conv", "im2col", x) or im2col_reference)(x, kh, kw, sh, sw, ph, pw, dh, dw)


def _col2im(cols, x_shape, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    return (kernel("conv", "col2im", cols) or col2im_reference)(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw)


def _im2col_batched(x, kh, kw, sh, sw, ph, pw, dh, dw, G, out):
    """im2col of ``x`` laid out for the batched GEMM, written into ``out`` (G, K, N*L).

    A fast kernel writes that layout directly (``kernel("conv", "im2col_batched", x)``);
    otherwise it is im2col followed by a transposing copy (N, G, K, L) -> (G, K, N, L).
    """
    fast = kernel("conv", "im2col_batched", x)
    if fast is not None:
        return fast(x, kh, kw, sh, sw, ph, pw, G, out=out, dh=dh, dw=dw)
    cols = _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw)                # (N, C*kh*kw, L)
    N, CK, L = cols.shape
    out.reshape(G, CK // G, N, L)[...] = cols.reshape(N, G, CK // G, L).transpose(1, 2, 0, 3)
    return out


def _col2im_batched(gcols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """col2im of ``gcols`` in the batched GEMM layout (G, K, N*L), written into ``out`` (N, C, H, W)."""
    fast = kernel("conv", "col2im_batched", gcols)
    if fast is not None:
        return fast(gcols, x_shape, kh, kw, sh, sw, ph, pw, out=out, dh=dh, dw=dw)
    xp = array_module(gcols)
    G, K, NL = gcols.shape
    N = x_shape[0]
    g = xp.ascontiguousarray(gcols.reshape(G, K, N, NL // N).transpose(2, 0, 1, 3))   # (N, G, K, L)
    out[...] = _col2im(g.reshape(N, G * K, NL // N), x_shape, kh, kw, sh, sw, ph, pw, dh, dw)
    return out


#: On the CPU, conv2d unrolls at most this many bytes of columns at a time (always at
#: least one whole sample), which bounds its scratch memory (see ``workspace``).
CPU_CHUNK_BYTES = 256 << 20


#: On CUDA, conv2d keeps its columns for backward only while they take at most this many
#: times the bytes of x; beyond that, backward unrolls x again (see ``Conv2dFn``).
RECOMPUTE_COLS_RATIO = 4


def batch_chunks(x, N, per_sample_bytes):
    """Split a batch of N into ``(start, stop)`` chunks, each done as one GEMM per group.

    On CUDA one chunk: the whole batch, which keeps cuBLAS busiest.  On the CPU as few
    chunks as ``CPU_CHUNK_BYTES`` of columns allow: every chunk costs each thread pool
    (Numba's, then BLAS's) a wake-up per call, which on a small machine under load can
    cost more than the GEMM saves by working in the cache.
    """
    step = N if is_cuda_array(x) else max(1, min(N, CPU_CHUNK_BYTES // max(1, per_sample_bytes)))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


# --------------------------------------------------------------------------- the op


class Conv2dFn(Function):
    """y = conv2d(x, W) + b with x (N, C, H, W), W (O, C/G, kh, kw), b (O,), G groups.

    With ``cols = im2col(x)`` (N, C*kh*kw, L), L = OH*OW, and K = (C/G)*kh*kw, each
    group g is one matrix product (Wg is (O/G, K), cols_g[n] is (K, L)):

        forward:   y_g[n]  = Wg @ cols_g[n]                    (+ b, broadcast over L)
        backward:  gWg     = sum_n gy_g[n] @ cols_g[n]^T         (O/G, K)
                   gcols_g = Wg^T @ gy_g[n]                      (K, L), then gx = col2im(gcols)
                   gb      = gy summed over n, oh, ow

    The input channels of group g are g*C/G ... (g+1)*C/G - 1 and its outputs
    g*O/G ... (g+1)*O/G - 1, so splitting the rows of cols and of W into G blocks is a
    plain reshape.

    Batching: the samples go side by side along L, cols as (G, K, N*L), so that each
    group is one GEMM for the whole batch, and the sum over samples in gW becomes part
    of the GEMM's inner dimension.  One large GEMM keeps BLAS (and cuBLAS) far busier
    than N small ones (L is only 169 at AlexNet's 13x13 layers).  On the CPU a batch
    whose columns exceed ``CPU_CHUNK_BYTES`` is done in a few chunks, and the columns
    and other temporaries live in reused scratch buffers (``workspace``): a fresh
    100 MB array costs more in page faults than im2col takes to fill it.

    Dilation (dh, dw) only changes which pixel each tap reads (im2col / col2im); the GEMMs
    are the same.  ``extra`` (eh, ew) zero rows / columns are appended at the bottom /
    right before the symmetric padding: ``padding="same"`` with an odd total d*(k - 1)
    puts the odd one there, as PyTorch does; backward crops them off gx again.

    The GEMMs (``kernels/gemm.py``) are 2-d, one per group, on slices: Wg is a block of
    rows of W, cols_g and gy_g blocks of the workspaces, and every transpose above is a
    BLAS flag, so no operand is ever copied.  Layout passes that remain: forward writes
    y_g as (O/G, n*L) and one pass turns it into NCHW, adding the bias on the way (the
    pass a bias add costs anyway); backward does the reverse pass on gy, as both its
    products need the samples side by side.  A chunk of one sample needs neither: its
    (O/G, L) blocks already are NCHW rows, so the GEMMs read and write y and gy in place.
    On CUDA, float32 GEMMs use TF32 when ``tinyconv.backends.cudnn.allow_tf32`` is True
    (the flag as it is when each GEMM runs), as PyTorch's cuDNN convolutions do.

    What backward keeps: ``W`` (for gx), and for gW, only when the weight needs a
    gradient, either the columns or ``x``, from which backward unrolls them again.  The
    columns are about kh*kw/(sh*sw) times the bytes of x (AlexNet: 7 to 25 times; 2.3 GB
    over its five layers at batch 128).  The rule, by bytes:

    * a batch done in chunks (CPU, more than ``CPU_CHUNK_BYTES`` of columns) keeps x:
      only one chunk's columns exist at a time;
    * on CUDA, where the whole batch is one chunk, the columns are kept only while they
      take at most ``RECOMPUTE_COLS_RATIO`` (4) times the bytes of x.  Past that,
      recomputing saves at least 3/4 of what keeping costs, for one im2col pass
      (writing the columns once more) in backward, whose memory the gcols product then
      reuses.  So every AlexNet layer recomputes; a 1x1 or a stride >= kernel conv keeps;
    * otherwise (the CPU, one chunk) the columns are kept: there the extra im2col is a
      measurable share of the step, and ``CPU_CHUNK_BYTES`` already bounds the columns.

    Kept columns sit in an array that goes back for reuse once backward is done
    (``recycled_empty`` / ``recycle`` in :meth:`release`), so the next step's forward
    finds them already mapped.

    On CUDA, ``tinyconv.backends.cuda.conv_algorithm`` (see :func:`cuda_conv_algorithm`) may
    choose the implicit GEMM instead (``kernels/conv_implicit_gemm.cu``): the same three
    products with the columns formed tile by tile in shared memory, never stored.  Then
    forward writes y (NCHW, bias added) in one kernel, backward keeps only x and W, and
    computes gx as the transposed convolution and gW by split-K; no chunks, no workspaces,
    strict FP32 (or FP64).  The choice is made at forward; its backward follows it.
    """

    def __init__(self, stride, padding, groups, dilation=(1, 1), extra=(0, 0)):
        self.stride, self.padding, self.groups = stride, padding, groups
        self.dilation, self.extra = dilation, extra

    def _plan(self, x_shape, w_shape, like):
        """(O, OH, OW, K, L, chunks): output size, GEMM sizes and the batch chunks."""
        (sh, sw), (ph, pw), (dh, dw), G = self.stride, self.padding, self.dilation, self.groups
        N, C, H, W = x_shape
        O, Cg, kh, kw = w_shape
        OH, OW = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
        K, L = Cg * kh * kw, OH * OW
        return O, OH, OW, K, L, batch_chunks(like, N, G * K * L * like.itemsize)

    def _keep_cols(self, x, chunks, cols_bytes):
        """Keep the columns for gW (True), or keep x and unroll it again in backward (False)?"""
        if len(chunks) != 1:                  # in chunks, or an empty batch
            return False
        return not is_cuda_array(x) or cols_bytes <= RECOMPUTE_COLS_RATIO * x.nbytes

    def forward(self, x, w, b=None):
        xp = array_module(x)
        (sh, sw), (ph, pw), (dh, dw), G = self.stride, self.padding, self.dilation, self.groups
        self.in_shape = x.shape
        eh, ew = self.extra
        x = xp.pad(x, ((0, 0), (0, 0), (0, eh), (0, ew))) if eh or ew else xp.ascontiguousarray(x)
        w = xp.ascontiguousarray(w)
        self.implicit = _implicit_gemm(x)
        if self.implicit is not None:                 # CUDA: no column matrix at all
            return self._forward_implicit(x, w, b)
        O, OH, OW, K, L, chunks = self._plan(x.shape, w.shape, x)
        N, kh, kw, M = x.shape[0], w.shape[2], w.shape[3], O // G
        wg = w.reshape(G, M, K)
        tf32 = cudnn.allow_tf32

        keep_cols = self.needs_input_grad[1] and self._keep_cols(x, chunks, G * K * N * L * x.itemsize)
        y = xp.empty((N, O, L), dtype=x.dtype)
        for n0, n1 in chunks:
            n = n1 - n0
            shape = (G, K, n * L)
            cols = _im2col_batched(x[n0:n1], kh, kw, sh, sw, ph, pw, dh, dw, G,
                                   out=recycled_empty(shape, x.dtype, x) if keep_cols
                                   else workspace("conv2d.cols", shape, x.dtype, x))
            if n == 1:
                # one sample: y_g = Wg @ cols_g is rows g*O/G ... of y[n0], written in place
                for g in range(G):
                    gemm(wg[g], cols[g], out=y[n0, g * M:(g + 1) * M], tf32=tf32)
                if b is not None:
                    y[n0] += b.reshape(O, 1)
                continue
            # y_g = Wg @ cols_g, one GEMM per group: (O/G, K) @ (K, n*L) -> yg[g] (O/G, n*L);
            # then (G, O/G, n, L) -> (n, G, O/G, L) is NCHW again (a copy of whole rows of
            # L), with the bias added on the way
            yg = workspace("conv2d.y", (G, M, n * L), x.dtype, x)
            for g in range(G):
                gemm(wg[g], cols[g], out=yg[g], tf32=tf32)
            yg = yg.reshape(G, M, n, L).transpose(2, 0, 1, 3)
            out = y[n0:n1].reshape(n, G, M, L)
            if b is None:
                out[...] = yg
            else:
                xp.add(yg, b.reshape(1, G, M, 1), out=out)
        y = y.reshape(N, O, OH, OW)

        self.x_shape = x.shape
        need_x = self.needs_input_grad[1] and not keep_cols
        self.save_for_backward(x if need_x else None, w, cols if keep_cols else None)
        return y

    def _forward_implicit(self, x, w, b):
        """CUDA, implicit GEMM (``kernels/conv_implicit_gemm.cu``): y straight from x and W, NCHW,
        bias included; backward keeps x (for gW) and W (for gx), never columns."""
        geo = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        forward, _, _ = self.implicit
        y = forward(x, w, b, **geo)
        self.x_shape = x.shape
        self.save_for_backward(x if self.needs_input_grad[1] else None, w, None)
        return y

    def _backward_implicit(self, gy, x, w):
        """gx by the transposed convolution, gW by split-K over N*OH*OW, gb = gy summed."""
        xp = array_module(gy)
        geo = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        need_x, need_w = self.needs_input_grad[:2]
        _, backward_data, backward_filter = self.implicit
        gy = xp.ascontiguousarray(gy)
        gx = backward_data(gy, w, self.x_shape, **geo) if need_x else None
        if need_x and self.extra != (0, 0):          # drop the rows / columns forward appended
            gx = xp.ascontiguousarray(gx[:, :, :self.in_shape[2], :self.in_shape[3]])
        gw = backward_filter(gy, x, w.shape, **geo) if need_w else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, (gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None)

    def release(self):
        """Drop the saved arrays; the kept columns go back for the next forward to reuse."""
        cols = self.saved_tensors[2] if self.saved_tensors else None
        super().release()
        if cols is not None:
            recycle(cols)

    def backward(self, gy):
        xp = array_module(gy)
        x, w, kept_cols = self.saved_tensors         # x or the columns, for gW only
        if self.implicit is not None:
            return self._backward_implicit(gy, x, w)
        (sh, sw), (ph, pw), (dh, dw), G = self.stride, self.padding, self.dilation, self.groups
        N, C, H, W = self.x_shape
        O, OH, OW, K, L, chunks = self._plan(self.x_shape, w.shape, gy)
        kh, kw, M = w.shape[2], w.shape[3], O // G
        need_x, need_w = self.needs_input_grad[:2]
        gy = xp.ascontiguousarray(gy).reshape(N, O, L)
        wg = w.reshape(G, M, K)                      # w was saved C-contiguous: a view
        tf32 = cudnn.allow_tf32
        on_cpu = not is_cuda_array(gy)

        gx = xp.empty(self.x_shape, dtype=gy.dtype) if need_x else None
        if need_w:       # the CPU sums gWg^T over the chunks; CUDA (one chunk) writes gWg in place
            alloc = xp.empty if chunks else xp.zeros         # an empty batch: a zero gradient
            gw = alloc((G, K, M) if on_cpu else (G, M, K), dtype=gy.dtype)
        for n0, n1 in chunks:
            n = n1 - n0
            if n == 1:                               # one sample: gy[n0] already is (G, O/G, L)
                gyc = gy[n0].reshape(G, M, L)
            else:
                # gy (n, O, L) -> (G, O/G, n*L): per group, the samples side by side as in cols
                gyc = workspace("conv2d.gy", (G, M, n * L), gy.dtype, gy)
                gyc.reshape(G, M, n, L)[...] = gy[n0:n1].reshape(n, G, M, L).transpose(1, 2, 0, 3)
            cols = kept_cols
            if need_w:
                if cols is None:                     # unroll x again (see the class docstring)
                    cols = _im2col_batched(x[n0:n1], kh, kw, sh, sw, ph, pw, dh, dw, G,
                                           out=workspace("conv2d.cols", (G, K, n * L), x.dtype, x))
                for g in range(G):
                    if on_cpu:
                        # gWg^T += cols_g @ gy_g^T: (K, n*L) @ (n*L, O/G); the sum over samples is
                        # the GEMM's inner dimension.  Same numbers as gy_g @ cols_g^T, but
                        # OpenBLAS runs this orientation faster for AlexNet's shapes.
                        gemm(cols[g], gyc[g], out=gw[g], trans_b=True, accumulate=n0 > 0)
                    else:
                        # gWg = gy_g @ cols_g^T: (O/G, n*L) @ (n*L, K), straight into gW's rows
                        gemm(gyc[g], cols[g], out=gw[g], trans_b=True, tf32=tf32)
            if need_x:
                # gcols_g = Wg^T @ gy_g: (K, O/G) @ (O/G, n*L), folded back to pixels by col2im.
                # Unrolled-again columns are spent once gW has read them: gcols takes their place.
                spent = cols is not None and cols is not kept_cols
                gcols = cols if spent else workspace("conv2d.gcols", (G, K, n * L), gy.dtype, gy)
                for g in range(G):
                    gemm(wg[g], gyc[g], out=gcols[g], trans_a=True, tf32=tf32)
                _col2im_batched(gcols, (n, C, H, W), kh, kw, sh, sw, ph, pw, dh, dw, out=gx[n0:n1])
        if need_x and self.extra != (0, 0):          # drop the rows / columns forward appended
            gx = xp.ascontiguousarray(gx[:, :, :self.in_shape[2], :self.in_shape[3]])
        if need_w:
            gw = (gw.transpose(0, 2, 1) if on_cpu else gw).reshape(w.shape)
        else:
            gw = None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        gb = gy.sum(axis=(0, 2)) if self.needs_input_grad[2] else None
        return gx, gw, gb


#: ``"auto"`` takes the implicit GEMM for float32 convolutions in strict FP32 (TF32 not allowed)
#: when True.  False for now: the model in benchmarks/results/GPU_NOTES.md puts these untuned
#: SIMT kernels at about 60% of cuBLAS's SGEMM rate, which costs more than the column traffic
#: they save (predicted step 1.3x slower in strict FP32).  Set it True once bench_gpu.py's
#: "(implicit GEMM)" rows beat the im2col rows on a GPU.
AUTO_IMPLICIT_GEMM = False


def _cuda_flag():
    """``tinyconv.backends.cuda.conv_algorithm`` as set, after checking that it is one of its values."""
    from ..backends import cuda as cuda_flags
    algorithm = cuda_flags.conv_algorithm
    if algorithm not in cuda_flags.CONV_ALGORITHMS:
        raise ValueError("tinyconv.backends.cuda.conv_algorithm must be one of "
                         f"{cuda_flags.CONV_ALGORITHMS}, got {algorithm!r}")
    return algorithm


def cuda_conv_algorithm(dtype):
    """``"implicit_gemm"`` or ``"im2col_gemm"``: how Conv2dFn runs on CUDA for ``dtype`` now, under
    ``tinyconv.backends.cuda.conv_algorithm``.  ``"auto"``: the implicit GEMM only for
    strict-FP32 float32 and only with ``AUTO_IMPLICIT_GEMM``; TF32 and float64 always take
    cuBLAS behind im2col (tensor cores).  The Winograd choices are made before, in
    :func:`conv2d` (``conv_winograd.choose_cuda``); a layer Winograd cannot do comes here and
    takes im2col."""
    algorithm = _cuda_flag()
    if algorithm.startswith("winograd"):
        return "im2col_gemm"
    if algorithm != "auto":
        return algorithm
    strict_fp32 = dtype == "float32" and not cudnn.allow_tf32
    return "implicit_gemm" if AUTO_IMPLICIT_GEMM and strict_fp32 else "im2col_gemm"


def _implicit_gemm(x):
    """The implicit-GEMM launchers (``kernels/conv_implicit_gemm_cuda.py``) when this CUDA call
    uses them, else None: the CPU, reference mode, or im2col_gemm chosen."""
    if not is_cuda_array(x) or cuda_conv_algorithm(x.dtype) != "implicit_gemm":
        return None
    fns = tuple(kernel("conv_implicit_gemm", name, x)
                for name in ("forward", "backward_data", "backward_filter"))
    return None if None in fns else fns


def _conv_padding(padding, stride, dilation, kernel, op):
    """``padding`` -> (symmetric (ph, pw), extra bottom/right (eh, ew)).

    An int or pair pads both sides; ``"valid"`` is no padding; ``"same"`` (stride 1 only)
    keeps the output size: a total of d*(k - 1) per dim, half on each side and the odd one,
    if any, at the bottom / right, as PyTorch.
    """
    if not isinstance(padding, str):
        return pair(padding, op, "padding", minimum=0), (0, 0)
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding != "same":
        raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of ('valid', 'same')")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, "
                         f"got stride={stride}")
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    return tuple(t // 2 for t in total), tuple(t % 2 for t in total)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution (cross-correlation, as in every DL library) of an NCHW batch.

    Same arguments and semantics as ``torch.nn.functional.conv2d``: ``input`` (N, C, H, W),
    ``weight`` (O, C/groups, kh, kw), ``bias`` (O,) or None (an unbatched (C, H, W) input
    gives a (O, OH, OW) output); ``stride``, ``padding`` and ``dilation`` an int or an
    (h, w) pair, or ``padding="valid"`` (none) / ``"same"`` (output size = input size,
    stride 1 only); ``groups`` splits the channels into independent convolutions
    (AlexNet's two-GPU conv2/4/5).
    Returns (N, O, OH, OW) with OH = (H + 2*padding - dilation*(kh - 1) - 1) // stride + 1.
    """
    op = "conv2d"
    if isinstance(input, Tensor) and input.ndim == 3:     # unbatched (C, H, W), as PyTorch allows
        return unbatched(conv2d, input, weight, bias, stride, padding, dilation, groups)
    check_ndim(input, 4, op, "input", "N, C, H, W; or unbatched C, H, W")
    check_ndim(weight, 4, op, "weight", "out_channels, in_channels/groups, kH, kW")
    check_float(input, op, "input")
    check_float(weight, op, "weight")
    if bias is not None:
        check_tensor(bias, op, "bias")
        check_float(bias, op, "bias")
    check_same_dtype(op, input=input, weight=weight, bias=bias)
    stride = pair(stride, op, "stride", minimum=1)
    dilation = pair(dilation, op, "dilation", minimum=1)
    padding, extra = _conv_padding(padding, stride, dilation, weight.shape[2:], op)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")

    N, C, H, W = input.shape
    O, Cg, kh, kw = weight.shape
    if O % groups:
        raise ValueError(f"{op}: out_channels (weight.shape[0] = {O}) must be divisible by "
                         f"groups={groups}")
    if C != Cg * groups:
        raise ValueError(f"{op}: input has {C} channels but weight {weight.shape} with groups={groups} "
                         f"expects {Cg * groups} (= weight.shape[1] * groups)")
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: kernel size must be at least 1x1, got weight {weight.shape}")
    Hp, Wp = H + 2 * padding[0] + extra[0], W + 2 * padding[1] + extra[1]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if span[0] > Hp or span[1] > Wp:
        dilated = f" (dilated by {dilation}: {span})" if dilation != (1, 1) else ""
        raise ValueError(f"{op}: kernel size ({kh}, {kw}){dilated} is larger than the padded input "
                         f"({Hp}, {Wp}) (input {input.shape}, padding {padding})")
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"{op}: expected bias of shape ({O},) (out_channels), got {bias.shape}")

    m = _winograd_tile(input.array, weight, stride, dilation, groups)   # the algorithm: conv_winograd.py
    if m is not None:
        from .conv_winograd import winograd_conv2d
        return winograd_conv2d(input, weight, bias, padding, extra, groups, m)
    fn = Conv2dFn(stride, padding, groups, dilation, extra)
    return fn(input, weight) if bias is None else fn(input, weight, bias)


def _winograd_tile(x, weight, stride, dilation, groups):
    """Winograd's tile size for this call, or None for im2col (or, on CUDA, the implicit GEMM):
    under ``tinyconv.backends.conv_algorithm`` on the CPU, ``backends.cuda.conv_algorithm`` on CUDA."""
    from .. import backends
    from .conv_winograd import choose, choose_cuda
    if is_cuda_array(x):
        return choose_cuda(_cuda_flag(), x, weight, stride, dilation, groups)
    return choose(backends.conv_algorithm, x, weight, stride, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d convolution of an (N, C, L) batch (or an unbatched (C, L) signal), as
    ``torch.nn.functional.conv1d``: ``weight`` (O, C/groups, k).  Computed as :func:`conv2d`
    on (N, C, 1, L) with a (1, k) kernel, so it shares conv2d's forward, backward and kernels."""
    op = "conv1d"
    check_ndim(weight, 3, op, "weight", "out_channels, in_channels/groups, kW")
    stride = (1, single(stride, op, "stride", minimum=1))
    dilation = (1, single(dilation, op, "dilation", minimum=1))
    padding = padding if isinstance(padding, str) else (0, single(padding, op, "padding"))
    w = weight.reshape(weight.shape[0], weight.shape[1], 1, weight.shape[2])
    return as_2d_op(conv2d, input, op, w, bias, stride, padding, dilation, groups)
