"""2-d pooling: ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``, ``adaptive_max_pool2d``,
with their references.

Inputs are NCHW batches (an unbatched (C, H, W) image works too, as in PyTorch).
All three slide a (kh, kw) window with stride (sh, sw) over an NCHW input padded by
(ph, pw) on each side; output (oh, ow) sees the padded rows ``oh*sh ... oh*sh + kh - 1``
(input rows ``oh*sh - ph + i``, i < kh).  Max pooling also takes a dilation (dh, dw):
its taps are dh rows apart, input rows ``oh*sh - ph + i*dh``.  Like the convolution references, the code
loops over the kh*kw taps of the window and handles every output position of a tap
at once with one strided slice, so it runs on NumPy and CuPy alike.

* max: y = the largest value in the window (padding counts as -inf).  Backward sends
  each output's gradient to the one input that won (``argmax``), so overlapping
  windows (AlexNet's 3/2) may route several gradients to the same pixel; they add.
  Fast kernels plug in through ``kernel("pooling", "max_pool2d_forward", x)``.
* avg: y = the window sum / the window size (padding counts as zeros and, with
  ``count_include_pad=True``, in the size); backward spreads gy / size evenly.
* adaptive avg: output cell i averages input rows floor(i*H/OH) ... ceil((i+1)*H/OH) - 1
  (and the same for columns), whatever H and OH are, so a 13x13 or a 1x1 map both
  become AlexNet's 6x6.
* adaptive max: the same bins, the max of each (backward as max pooling's, through ``argmax``).
"""
import numpy as np

from ..autograd import Function, Tensor
from ..backend import array_module, kernel
from ._checks import as_2d_op, check_float, check_ndim, pair, single
from .conv import conv_output_size, unbatched

# --------------------------------------------------------------------------- shared helpers


def _tap(a, i, j, sh, sw, OH, OW):
    """The (…, OH, OW) view of padded array ``a`` seen by the window tap at row / column
    offset (i, j) at every output (the offsets are i*dh, j*dw for a dilated window)."""
    return a[..., i:i + sh * OH:sh, j:j + sw * OW:sw]


def _pool_args(input, kernel_size, stride, padding, op):
    """Check a pooling call's input and window arguments; return ((kh, kw), (sh, sw), (ph, pw))."""
    check_ndim(input, 4, op, "input", "N, C, H, W; or unbatched C, H, W")
    check_float(input, op, "input")
    k = pair(kernel_size, op, "kernel_size", minimum=1)
    # stride=None (or an empty list, as PyTorch allows) means stride = kernel_size
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else pair(stride, op, "stride", minimum=1)
    p = pair(padding, op, "padding", minimum=0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding should be at most half of kernel_size, got padding={padding!r} "
                         f"with kernel_size={kernel_size!r}")
    return k, s, p


def _output_shape(input, k, s, p, ceil_mode, op, d=(1, 1)):
    H, W = input.shape[2:]
    OH = conv_output_size(H, k[0], s[0], p[0], d[0], ceil_mode)
    OW = conv_output_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    if OH < 1 or OW < 1:
        span = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
        dilated = f" (dilated by {d}: {span})" if d != (1, 1) else ""
        raise ValueError(f"{op}: kernel_size {k}{dilated} is larger than the padded input "
                         f"({H + 2 * p[0]}, {W + 2 * p[1]}) (input {input.shape}, padding {p}); "
                         f"output would be {OH}x{OW}")
    return OH, OW


def _check_dilated_windows(input, k, s, p, d, out, op):
    """Refuse a dilated geometry where some window has no tap inside the input (only padding).

    PyTorch returns -inf there with an index outside the plane; tinyconv says why instead.
    Undilated windows always reach the input, as padding is at most half the kernel.
    """
    for axis, name in ((0, "row"), (1, "column")):
        size = input.shape[2 + axis]
        start = np.arange(out[axis]) * s[axis] - p[axis]
        first = _first_tap(start, d[axis])
        bad = np.flatnonzero((first >= size) | (first > start + d[axis] * (k[axis] - 1)))
        if bad.size:
            raise ValueError(f"{op}: with kernel_size {k}, dilation {d} and padding {p}, the window of "
                             f"output {name} {bad[0]} holds only padding (input {input.shape})")


def _check_flag(value, op, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------- max pool: references


def max_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    """(N, C, H, W) -> (y, argmax), both (N, C, OH, OW); argmax is int64 h*W + w in the plane.

    Tap (i, j) of output (oh, ow) is input pixel (oh*sh - ph + i*dh, ow*sw - pw + j*dw).

    Scans the taps in order (i, then j) and keeps a running maximum, replacing it only
    when a tap is strictly larger, so the first maximum wins ties.  Padding is -inf and
    can never win; each output starts at the first tap of its window inside the input
    (what is reported if the whole window is -inf).  A NaN always takes over, as in PyTorch.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf) if ph or pw else x
    rows = xp.arange(OH) * sh - ph            # input row of tap i = 0 for each oh
    cols = xp.arange(OW) * sw - pw
    # before any tap: -inf, located at the window's first tap inside the input
    first = _first_tap(rows, dh)[:, None] * W + _first_tap(cols, dw)[None, :]
    y = xp.full((N, C, OH, OW), -np.inf, dtype=x.dtype)
    argmax = xp.broadcast_to(first, (N, C, OH, OW)).astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            v = _tap(xpad, i * dh, j * dw, sh, sw, OH, OW)
            wins = (v > y) | xp.isnan(v)
            y = xp.where(wins, v, y)
            # the flat index of input pixel (oh*sh - ph + i*dh, ow*sw - pw + j*dw)
            argmax = xp.where(wins, (rows + i * dh)[:, None] * W + (cols + j * dw)[None, :], argmax)
    return y, argmax


def _first_tap(start, d):
    """Per window start (may be < 0): its first tap start + m*d that is >= 0, as PyTorch.

    It lies inside the input: ``max_pool2d`` refuses a geometry with a window of only padding.
    """
    xp = array_module(start)
    return start + xp.maximum(-start + d - 1, 0) // d * d     # skip the taps in the top / left padding


def max_pool2d_backward_reference(gy, argmax, x_shape):
    """gx (``x_shape``) = gy scattered onto the winning pixels, summing where windows overlap.

    In the flattened gx, plane p = n*C + c owns elements p*H*W ... (p+1)*H*W - 1, so
    output (n, c, oh, ow) adds its gy to element p*H*W + argmax[n, c, oh, ow].
    ``add.at`` (unlike ``gx[idx] += g``) adds every repeated index, in output scan order.
    """
    xp = array_module(gy)
    N, C, H, W = x_shape
    plane = xp.arange(N * C, dtype=np.int64).reshape(N, C, 1, 1) * (H * W)
    gx = xp.zeros(N * C * H * W, dtype=gy.dtype)
    _scatter_add(gx, (plane + argmax).ravel(), gy.ravel())
    return gx.reshape(x_shape)


def _scatter_add(a, index, values):
    """a[index] += values, adding repeated indices (NumPy's ``add.at``; CuPy's ``scatter_add``)."""
    if array_module(a) is np:
        np.add.at(a, index, values)
    else:
        import cupyx
        cupyx.scatter_add(a, index, values)


# --------------------------------------------------------------------------- max pool: the op


class MaxPool2dFn(Function):
    """y[n, c, oh, ow] = max over the window of x;  gx[n, c, argmax] += gy[n, c, oh, ow].

    ``ceil_mode`` windows that run past the bottom/right edge see extra -inf rows and
    columns: the op appends them before calling the kernel and maps the argmax back to
    the unpadded plane, so the kernels only ever see the symmetric-padding contract.
    """

    def __init__(self, kernel_size, stride, padding, out_size, dilation=(1, 1)):
        self.kernel_size, self.stride, self.padding, self.out_size = kernel_size, stride, padding, out_size
        self.dilation = dilation

    def forward(self, x):
        xp = array_module(x)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        N, C, H, W = x.shape
        OH, OW = self.out_size
        # rows/columns beyond the symmetric padding that ceil_mode's last window needs
        eh = max((OH - 1) * sh + dh * (kh - 1) + 1 - (H + 2 * ph), 0)
        ew = max((OW - 1) * sw + dw * (kw - 1) + 1 - (W + 2 * pw), 0)
        x = xp.ascontiguousarray(x)
        if eh or ew:
            x = xp.pad(x, ((0, 0), (0, 0), (0, eh), (0, ew)), constant_values=-np.inf)
        y, argmax = (kernel("pooling", "max_pool2d_forward", x) or max_pool2d_forward_reference)(
            x, kh, kw, sh, sw, ph, pw, dh, dw)
        if ew:   # index h*(W + ew) + w in the widened plane -> h*W + w in the user's (w < W)
            argmax = (argmax // (W + ew)) * W + argmax % (W + ew)
        self.x_shape = (N, C, H, W)
        self.indices = argmax
        self.save_for_backward(argmax)
        return y

    def backward(self, gy):
        (argmax,) = self.saved_tensors
        gy = array_module(gy).ascontiguousarray(gy)
        fast = kernel("pooling", "max_pool2d_backward", gy)
        if fast is None:
            return (max_pool2d_backward_reference(gy, argmax, self.x_shape),)
        # the geometry lets the CUDA kernel gather per input pixel (the CPU kernel ignores it)
        return (fast(gy, argmax, self.x_shape, self.kernel_size, self.stride, self.padding, self.dilation),)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-d max pooling, as ``torch.nn.functional.max_pool2d``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` are ints or
    (h, w) pairs; padding is at most half the kernel.  Windows may overlap (AlexNet
    pools 3x3 with stride 2).  ``ceil_mode`` rounds the output size up.  With
    ``return_indices=True`` also returns the int64 arg-max indices (flat h*W + w within
    each (n, c) plane, PyTorch's convention).  ``dilation`` (an int or pair) spaces the
    window's taps apart: a 3x3 window with dilation 2 reads every other pixel of a 5x5 one.
    """
    op = "max_pool2d"
    if isinstance(input, Tensor) and input.ndim == 3:     # unbatched (C, H, W), as PyTorch allows
        return unbatched(max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    k, s, p = _pool_args(input, kernel_size, stride, padding, op)
    d = pair(dilation, op, "dilation", minimum=1)
    ceil_mode = _check_flag(ceil_mode, op, "ceil_mode")
    return_indices = _check_flag(return_indices, op, "return_indices")
    out = _output_shape(input, k, s, p, ceil_mode, op, d)
    _check_dilated_windows(input, k, s, p, d, out, op)
    fn = MaxPool2dFn(k, s, p, out, d)
    y = fn(input)
    indices = fn.__dict__.pop("indices")     # the graph keeps its own reference for backward
    return (y, Tensor(indices)) if return_indices else y


# --------------------------------------------------------------------------- avg pool


class AvgPool2dFn(Function):
    """y[n, c, oh, ow] = sum over the window of x / d[oh, ow];  gx[window] += gy / d.

    The divisor d depends on the flags, as in PyTorch: kh*kw for a window that lies in
    the padded input (``count_include_pad=True``); the number of real pixels in it
    (``count_include_pad=False``); the part inside the padded input for a ``ceil_mode``
    window that runs past it; or ``divisor_override``.  It is computed by window-summing
    a mask that is 1 where a pixel counts, so every case is the same two lines.
    """

    def __init__(self, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
        self.kernel_size, self.stride, self.padding, self.out_size = kernel_size, stride, padding, out_size
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def _geometry(self, H, W):
        """Size of the zero-padded plane: symmetric padding plus any extra bottom/right rows
        and columns that a ceil_mode window needs."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        OH, OW = self.out_size
        Hp, Wp = max((OH - 1) * sh + kh, H + 2 * ph), max((OW - 1) * sw + kw, W + 2 * pw)
        return Hp, Wp

    def _divisor(self, xp, dtype, H, W, Hp, Wp):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        OH, OW = self.out_size
        if self.divisor_override is not None:
            return dtype.type(self.divisor_override)
        counts = xp.zeros((Hp, Wp), dtype=dtype)
        if self.count_include_pad:
            counts[:H + 2 * ph, :W + 2 * pw] = 1     # real pixels and the symmetric padding
        else:
            counts[ph:ph + H, pw:pw + W] = 1         # real pixels only
        d = xp.zeros((OH, OW), dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                d += _tap(counts, i, j, sh, sw, OH, OW)
        return d

    def forward(self, x):
        xp = array_module(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        N, C, H, W = x.shape
        OH, OW = self.out_size
        Hp, Wp = self._geometry(H, W)
        xpad = xp.zeros((N, C, Hp, Wp), dtype=x.dtype)
        xpad[:, :, ph:ph + H, pw:pw + W] = x
        y = xp.zeros((N, C, OH, OW), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                y += _tap(xpad, i, j, sh, sw, OH, OW)
        self.d = self._divisor(xp, x.dtype, H, W, Hp, Wp)
        self.x_shape = x.shape
        return y / self.d

    def backward(self, gy):
        xp = array_module(gy)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        N, C, H, W = self.x_shape
        OH, OW = self.out_size
        Hp, Wp = self._geometry(H, W)
        g = gy / self.d
        gpad = xp.zeros((N, C, Hp, Wp), dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                _tap(gpad, i, j, sh, sw, OH, OW)[...] += g   # every pixel of a window gets gy/d
        return (xp.ascontiguousarray(gpad[:, :, ph:ph + H, pw:pw + W]),)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-d average pooling, as ``torch.nn.functional.avg_pool2d`` (same arguments and defaults).

    Padding counts as zeros; by default (``count_include_pad=True``) every window is
    divided by kh*kw, padding included.
    """
    op = "avg_pool2d"
    if isinstance(input, Tensor) and input.ndim == 3:
        return unbatched(avg_pool2d, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override)
    k, s, p = _pool_args(input, kernel_size, stride, padding, op)
    ceil_mode = _check_flag(ceil_mode, op, "ceil_mode")
    count_include_pad = _check_flag(count_include_pad, op, "count_include_pad")
    if divisor_override is not None and (not isinstance(divisor_override, int) or
                                         isinstance(divisor_override, bool) or divisor_override < 1):
        raise ValueError(f"{op}: divisor_override must be None or a positive int, got {divisor_override!r}")
    out = _output_shape(input, k, s, p, ceil_mode, op)
    return AvgPool2dFn(k, s, p, out, count_include_pad, divisor_override)(input)


# --------------------------------------------------------------------------- adaptive avg pool


def adaptive_pool_matrix(size, out, xp, dtype):
    """The (out, size) averaging matrix: row i is 1/len over PyTorch's bin
    start = floor(i*size/out), end = ceil((i+1)*size/out), and 0 elsewhere."""
    P = np.zeros((out, size))
    for i, (start, end) in enumerate(_adaptive_bins(size, out)):
        P[i, start:end] = 1.0 / (end - start)
    return xp.asarray(P, dtype=dtype)


class AdaptiveAvgPool2dFn(Function):
    """y[n, c] = Ph @ x[n, c] @ Pw^T;  gx[n, c] = Ph^T @ gy[n, c] @ Pw.

    An average over the rectangle (rows of bin i) x (columns of bin j) is an average
    over rows followed by one over columns, so the pool is two small matrix products
    with the averaging matrices Ph (OH, H) and Pw (OW, W) of ``adaptive_pool_matrix``.
    Bins may overlap (H not a multiple of OH) and may repeat a pixel (H < OH, e.g.
    1x1 -> 6x6); the gradient then sums over every bin that read the pixel.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = array_module(x)
        H, W = x.shape[2:]
        OH, OW = self.output_size
        self.identity = (H, W) == (OH, OW)    # every bin is one pixel (AlexNet at 224x224)
        if self.identity:
            return x.copy()
        self.ph = adaptive_pool_matrix(H, OH, xp, x.dtype)
        self.pw = adaptive_pool_matrix(W, OW, xp, x.dtype)
        return xp.ascontiguousarray(self.ph @ x @ self.pw.T)

    def backward(self, gy):
        xp = array_module(gy)
        if self.identity:
            return (gy,)
        return (xp.ascontiguousarray(self.ph.T @ gy @ self.pw),)


def adaptive_avg_pool2d(input, output_size):
    """Average-pool an NCHW input to ``output_size`` (int or (OH, OW); None keeps that input
    size), as ``torch.nn.functional.adaptive_avg_pool2d``; torchvision's AlexNet uses (6, 6)."""
    op = "adaptive_avg_pool2d"
    if isinstance(input, Tensor) and input.ndim == 3:
        return unbatched(adaptive_avg_pool2d, input, output_size)
    check_ndim(input, 4, op, "input", "N, C, H, W; or unbatched C, H, W")
    check_float(input, op, "input")
    return AdaptiveAvgPool2dFn(_adaptive_output_size(input, output_size, op))(input)


# --------------------------------------------------------------------------- adaptive max pool


def _adaptive_bins(size, out):
    """PyTorch's adaptive bins: [floor(i*size/out), ceil((i+1)*size/out)) for i < out."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


class AdaptiveMaxPool2dFn(Function):
    """y[n, c, i, j] = max of x[n, c] over the bin (rows of bin i) x (columns of bin j);
    gx[n, c, argmax] += gy[n, c, i, j] (bins may overlap: the gradients add).

    One pass per output cell (OH * OW of them, each over all (n, c) at once); ``indices``
    holds each winner's flat position h * W + w in its plane, PyTorch's convention (the
    first maximum in row-major order wins, NaN beats everything as in PyTorch).
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = array_module(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size
        y = xp.empty((N, C, OH, OW), dtype=x.dtype)
        idx = xp.empty((N, C, OH, OW), dtype=xp.int64)
        for i, (h0, h1) in enumerate(_adaptive_bins(H, OH)):
            for j, (w0, w1) in enumerate(_adaptive_bins(W, OW)):
                win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
                k = xp.where(xp.isnan(win).any(axis=2), xp.isnan(win).argmax(axis=2), win.argmax(axis=2))
                y[:, :, i, j] = xp.take_along_axis(win, k[..., None], axis=2)[..., 0]
                idx[:, :, i, j] = (h0 + k // (w1 - w0)) * W + w0 + k % (w1 - w0)
        self.x_shape, self.indices = x.shape, idx
        self.save_for_backward(idx)
        return y

    def backward(self, gy):
        (idx,) = self.saved_tensors
        return (max_pool2d_backward_reference(array_module(gy).ascontiguousarray(gy), idx, self.x_shape),)


def _adaptive_output_size(input, output_size, op):
    H, W = input.shape[2:]
    if H < 1 or W < 1:
        raise ValueError(f"{op}: expected a non-empty plane, got input {input.shape}")
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = tuple(output_size)
    elif isinstance(output_size, int):
        sizes = (output_size, output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int or a pair (int or None each), "
                        f"got {output_size!r}")
    sizes = (H if sizes[0] is None else sizes[0], W if sizes[1] is None else sizes[1])
    return pair(sizes, op, "output_size", minimum=1)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max-pool an NCHW (or unbatched CHW) input to ``output_size`` (int or (OH, OW); None keeps
    that input size), as ``torch.nn.functional.adaptive_max_pool2d``; ``return_indices`` as
    in :func:`max_pool2d`."""
    op = "adaptive_max_pool2d"
    if isinstance(input, Tensor) and input.ndim == 3:
        return unbatched(adaptive_max_pool2d, input, output_size, return_indices)
    check_ndim(input, 4, op, "input", "N, C, H, W; or unbatched C, H, W")
    check_float(input, op, "input")
    out = _adaptive_output_size(input, output_size, op)
    return_indices = _check_flag(return_indices, op, "return_indices")
    fn = AdaptiveMaxPool2dFn(out)
    y = fn(input)
    indices = fn.__dict__.pop("indices")
    return (y, Tensor(indices)) if return_indices else y


# --------------------------------------------------------------------------- 1-d pooling


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-d max pooling of an (N, C, L) or (C, L) input, as ``torch.nn.functional.max_pool1d``:
    :func:`max_pool2d` on (N, C, 1, L) with a (1, k) window (indices are positions along L)."""
    op = "max_pool1d"
    k = single(kernel_size, op, "kernel_size", minimum=1)
    s = k if stride is None or stride == () else single(stride, op, "stride", minimum=1)
    return as_2d_op(max_pool2d, input, op, (1, k), (1, s), (0, single(padding, op, "padding")),
                    (1, single(dilation, op, "dilation", minimum=1)), ceil_mode, return_indices)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-d average pooling of an (N, C, L) or (C, L) input, as ``torch.nn.functional.avg_pool1d``:
    :func:`avg_pool2d` on (N, C, 1, L) with a (1, k) window."""
    op = "avg_pool1d"
    k = single(kernel_size, op, "kernel_size", minimum=1)
    s = k if stride is None or stride == () else single(stride, op, "stride", minimum=1)
    return as_2d_op(avg_pool2d, input, op, (1, k), (1, s), (0, single(padding, op, "padding")),
                    ceil_mode, count_include_pad)
