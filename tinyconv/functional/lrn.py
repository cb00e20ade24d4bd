"""Local response normalization across channels (AlexNet's "brightness normalization").

PyTorch's definition, which tinyconv follows exactly::

    scale[n, c, h, w] = k + (alpha / size) * sum_{j in window(c)} x[n, j, h, w]^2
    y[n, c, h, w]     = x[n, c, h, w] * scale[n, c, h, w] ** -beta

    window(c) = channels c - size//2 ... c + (size-1)//2, clipped to [0, C)

Channels outside ``[0, C)`` count as zeros.  For an odd ``size`` the window is centred
on ``c``; for an even ``size`` it reaches one channel further back than forward.

**Reproducing the paper.**  Krizhevsky, Sutskever & Hinton (2012), section 3.3, write

    b[c] = a[c] / (k + alpha * sum_{j=c-n/2}^{c+n/2} a[j]^2) ** beta

with ``k = 2, n = 5, alpha = 1e-4, beta = 0.75``: their ``alpha`` multiplies the plain
sum of squares.  PyTorch (and tinyconv) divide ``alpha`` by ``size`` first, so the
paper's layer is::

    F.local_response_norm(x, size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)
    # == F.local_response_norm(x, **ALEXNET_LRN), see paper_alpha_to_pytorch

**Caffe's convention** (``LRN`` layer, ``ACROSS_CHANNELS``) is PyTorch's: its ``alpha`` is
also divided by ``local_size``, so a Caffe ``alpha`` carries over unchanged.  Note that
Caffe's reference ``bvlc_alexnet`` uses ``alpha = 1e-4, k = 1`` in Caffe's convention,
i.e. ``2e-5`` on the plain sum and ``k = 1``: not the paper's values.

The forward and backward live in :class:`LocalResponseNormFn`; the NumPy references
``lrn_forward_reference`` / ``lrn_backward_reference`` are what a fast kernel
(``tinyconv/kernels/lrn_numba.py``, ``lrn_cuda.py``) must match.
"""
import math
import numbers

from ..autograd import Function
from ..backend import array_module, kernel
from ._checks import check_float, check_tensor

#: The paper's LRN hyper-parameters (k=2, n=5, alpha=1e-4 on the plain sum, beta=0.75)
#: in PyTorch's convention, ready for ``F.local_response_norm(x, **ALEXNET_LRN)``.
ALEXNET_LRN = {"size": 5, "alpha": 1e-4 * 5, "beta": 0.75, "k": 2.0}


def paper_alpha_to_pytorch(alpha, size):
    """The PyTorch/Caffe ``alpha`` that equals the paper's ``alpha`` on the plain sum.

    PyTorch computes ``k + (alpha / size) * sum``; the paper ``k + alpha * sum``.
    ``paper_alpha_to_pytorch(1e-4, 5) == 5e-4``.
    """
    return alpha * size


# --------------------------------------------------------------------------- references


def _channel_window_sum(a, before, after):
    """out[:, c] = sum of a[:, c - before ... c + after] along axis 1, zeros outside [0, C).

    Pads ``before`` zero channels in front and ``after`` behind, then adds the
    ``before + after + 1`` shifted views: one slice per window offset ``d``, where
    ``padded[:, d + c]`` is ``a[:, c + d - before]``.
    """
    xp = array_module(a)
    n, c = a.shape[:2]
    padded = xp.zeros((n, c + before + after) + a.shape[2:], dtype=a.dtype)
    padded[:, before:before + c] = a
    out = padded[:, 0:c].copy()
    for d in range(1, before + after + 1):
        out += padded[:, d:d + c]
    return out


def lrn_forward_reference(x, size, alpha, beta, k):
    """(y, scale) for NCHW ``x``: scale = k + alpha/size * window sum of x^2, y = x * scale^-beta."""
    sq_sum = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    scale = k + (alpha / size) * sq_sum
    y = x * scale ** -beta
    return y, scale


def lrn_backward_reference(gy, x, y, scale, size, alpha, beta):
    """gx for :func:`lrn_forward_reference` (derivation in :class:`LocalResponseNormFn`).

    gx_c = gy_c * scale_c^-beta - (2 alpha beta / size) * x_c * sum_{j : c in window(j)} gy_j y_j / scale_j

    ``c in window(j)`` means ``j - size//2 <= c <= j + (size-1)//2``, i.e. ``j`` runs over
    ``c - (size-1)//2 ... c + size//2``: the forward window mirrored.
    """
    t = gy * y / scale
    back = _channel_window_sum(t, (size - 1) // 2, size // 2)
    return gy * scale ** -beta - (2.0 * alpha * beta / size) * x * back


# --------------------------------------------------------------------------- autograd


class LocalResponseNormFn(Function):
    """y_c = x_c * s_c^-beta,  s_c = k + (alpha/size) * sum_{m in W(c)} x_m^2.

    Forward saves ``x``, ``y`` and ``s`` (``scale``).

    Backward: y_c depends on x_m directly (m = c) and through s_c (every m in W(c)),
    with ds_c/dx_m = (2 alpha / size) x_m.  So

        dy_c/dx_m = [m = c] s_c^-beta  -  beta x_c s_c^(-beta-1) (2 alpha / size) x_m [m in W(c)]

    and, as x_c s_c^(-beta-1) = y_c / s_c,

        gx_m = sum_c gy_c dy_c/dx_m
             = gy_m s_m^-beta - (2 alpha beta / size) x_m sum_{c : m in W(c)} gy_c y_c / s_c.

    The last sum runs over the mirrored window c = m - (size-1)//2 ... m + size//2.
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        # the kernel contract is 4-d NCHW; (N, C, *) is folded to (N, C, L, 1)
        self.in_shape = x.shape
        x4 = x.reshape(x.shape[:2] + (math.prod(x.shape[2:]), 1)) if x.ndim != 4 else x
        x4 = array_module(x4).ascontiguousarray(x4)
        fwd = kernel("lrn", "lrn_forward", x4) or lrn_forward_reference
        y, scale = fwd(x4, self.size, self.alpha, self.beta, self.k)
        self.save_for_backward(x4, y, scale)
        return y.reshape(self.in_shape)

    def backward(self, gy):
        x4, y, scale = self.saved_tensors
        gy4 = array_module(gy).ascontiguousarray(gy.reshape(x4.shape))
        bwd = kernel("lrn", "lrn_backward", gy4) or lrn_backward_reference
        gx = bwd(gy4, x4, y, scale, self.size, self.alpha, self.beta)
        return (gx.reshape(self.in_shape),)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalization across channels, as ``torch.nn.functional.local_response_norm``.

    ``input`` is (N, C, *) (3-d or more; NCHW for images).  ``alpha`` is divided by
    ``size`` (PyTorch's and Caffe's convention); for the paper's values use
    ``alpha = 1e-4 * size`` or ``**ALEXNET_LRN`` (see the module docstring).
    """
    op = "local_response_norm"
    check_tensor(input, op)
    if input.ndim < 3:
        raise ValueError(f"{op}: expected input of 3 or more dimensions (N, C, *), e.g. NCHW, "
                         f"got shape {input.shape}")
    check_float(input, op)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"{op}: size must be an int, got {size!r}")
    if size < 1:
        raise ValueError(f"{op}: size must be >= 1, got {size}")
    for name, v in (("alpha", alpha), ("beta", beta), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{op}: {name} must be a real number, got {v!r}")
    return LocalResponseNormFn(int(size), float(alpha), float(beta), float(k))(input)
