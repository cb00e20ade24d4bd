"""Softmax, log-softmax and the classification losses, as in ``torch.nn.functional``.

    softmax(x)_i     = exp(x_i - m) / sum_j exp(x_j - m)          m = max_j x_j
    log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))

Subtracting the maximum m changes nothing mathematically but keeps exp from
overflowing, so both are stable for any finite logits.

``cross_entropy(input, target)`` is one fused Function (not log_softmax followed by
nll_loss): its forward returns each sample's loss and keeps the probabilities, and
its backward is simply ``(p - onehot(target)) * g``.  That pair goes through the
kernel seam, family ``loss``:

    softmax_cross_entropy_forward(logits, target) -> (loss_per_sample, probs)
        logits (N, K) float, target (N,) int64 in [0, K);  loss (N,), probs (N, K)
    softmax_cross_entropy_backward(gloss, probs, target) -> glogits
        gloss (N,): the gradient of each sample's loss;  glogits = gloss[:, None] * (probs - onehot)

The reductions (mean / sum / none) are applied by the op around those two calls.

Class weights, ``ignore_index``, label smoothing, probability targets and (N, C, d1, ...)
inputs take the reference path, ``nll_loss(log_softmax(x, 1))`` (plus PyTorch's smoothing
term).  The elementwise losses (``mse_loss``, ``l1_loss``, ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits``) share one Function base: each gives its f(x, t)
and the two partial derivatives.
"""
import math
import numbers
import warnings

import numpy as np

from ..autograd import Function, Tensor
from .. import device_checks
from ..backend import array_module, is_cuda_array, kernel
from ..math_ops import sum_to
from ._checks import check_float, check_same_dtype, check_tensor

_REDUCTIONS = ("mean", "sum", "none")

# --------------------------------------------------------------------------- softmax, log_softmax


def _normalize_dim(dim, ndim, op):
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    n = max(ndim, 1)                     # a 0-d input takes dims 0 and -1, as in PyTorch
    if not -n <= dim < n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {dim})")
    return dim % n


def _shifted(x, dim):
    """x - max(x) along ``dim`` (so exp never overflows); an empty x is returned as is."""
    return x - x.max(axis=dim, keepdims=True) if x.size else x


class SoftmaxFn(Function):
    """y = softmax(x) along ``dim``.

    Backward (the softmax Jacobian is diag(y) - y y^T along dim):
        dx = y * (dy - sum_dim(dy * y))
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(_shifted(x, self.dim))
        y = e / e.sum(axis=self.dim, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return y * (gy - (gy * y).sum(axis=self.dim, keepdims=True))


class LogSoftmaxFn(Function):
    """y = log_softmax(x) = x - logsumexp(x) along ``dim``.

    Backward (d logsumexp / dx = softmax(x) = exp(y)):
        dx = dy - exp(y) * sum_dim(dy)
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = array_module(x)
        shifted = _shifted(x, self.dim)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True)) if x.size else shifted
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        xp = array_module(y)
        return gy - xp.exp(y) * gy.sum(axis=self.dim, keepdims=True)


def _along(fn_class, input, dim, op):
    check_tensor(input, op)
    check_float(input, op)
    d = _normalize_dim(dim, input.ndim, op)
    if input.ndim == 0:                 # a 0-d input is one class: treat it as shape (1,)
        return fn_class(0)(input.reshape(1)).reshape(())
    return fn_class(d)(input)


def softmax(input, dim=-1):
    """Softmax along ``dim``: entries are positive and sum to 1 along that dim."""
    return _along(SoftmaxFn, input, dim, "softmax")


def log_softmax(input, dim=-1):
    """log(softmax(input)) along ``dim``, computed stably (no log of a rounded-to-0 probability)."""
    return _along(LogSoftmaxFn, input, dim, "log_softmax")


# --------------------------------------------------------------------------- arguments


def _legacy_reduction(size_average, reduce, reduction, op):
    """PyTorch's deprecated ``size_average`` / ``reduce`` flags -> a reduction string (with its warning)."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"{op}: size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", stacklevel=3)
    return reduction


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss, reduction, total=None):
    """mean / sum / none over the per-element losses; a 0-d array for mean and sum.

    ``mean`` divides the sum by ``total`` (default: the number of elements; the weighted
    losses pass the sum of their weights).  A mean over nothing is NaN, as in PyTorch.
    """
    xp = array_module(loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.asarray(loss.sum(), dtype=loss.dtype)
    total = loss.size if total is None else total
    if is_cuda_array(total):            # a count on the GPU: not read back (0/0 is NaN there too)
        return xp.asarray(loss.sum() / total, dtype=loss.dtype)
    if not total:                       # mean of nothing: NaN, as PyTorch (without a warning)
        return xp.asarray(float("nan"), dtype=loss.dtype)
    return xp.asarray(loss.sum() / total, dtype=loss.dtype)


def _unreduce(gy, reduction, shape, total=None):
    """The gradient of each element's loss (an array of ``shape``) from that of the reduced loss."""
    xp = array_module(gy)
    if reduction == "none":
        return xp.ascontiguousarray(gy)
    total = math.prod(shape) if total is None else total
    if reduction == "mean" and is_cuda_array(total):     # a count on the GPU: divide there, unread
        g = gy / xp.where(total != 0, total, 1)
    else:
        g = gy / total if reduction == "mean" and total else gy   # (an empty batch has nothing to share)
    out = xp.empty(shape, dtype=gy.dtype)       # a real array, not a broadcast view:
    out[...] = g                                # kernels take C-contiguous arrays
    return out


def _target_array(input, target, op, what):
    """``target`` (a Tensor, a NumPy/CuPy array or a list) as an array on ``input``'s device."""
    xp = array_module(input.array)
    if isinstance(target, Tensor):
        return xp.asarray(target.array)
    if isinstance(target, (list, tuple)) or hasattr(target, "dtype"):
        return xp.asarray(target)
    raise TypeError(f"{op}: target must be {what}, got {type(target).__name__}")


def _class_targets(input, target, op, ignore_index=None):
    """Check integer class ``target`` against ``input`` (N, C, d1, ...).

    Returns ``(t, kept)``: t as int64 (N, d1, ...), and on a GPU the number of entries
    that are not ``ignore_index`` as a device int64 scalar (None on the CPU).
    ``target`` may be an int64 (or other integer) Tensor, a NumPy/CuPy integer array,
    or a list of ints; it is moved to ``input``'s device.  Every entry must be a class
    in [0, C), or equal ``ignore_index``.  On the CPU a bad entry raises here; on a GPU
    the check runs on the device and raises at the next host read (see
    :mod:`tinyconv.device_checks`), with the same message.
    """
    if isinstance(target, Tensor) and target.requires_grad:
        raise TypeError(f"{op}: target must not require grad (it holds class indices)")
    t = _target_array(input, target, op, "an integer Tensor, array or list of class indices")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class indices as target (int64), got dtype {t.dtype}"
                        + ("; probability (float) targets must have the input's shape "
                           f"{input.shape}" if op == "cross_entropy" else ""))
    want = input.shape[:1] + input.shape[2:]
    if t.shape != want:
        raise ValueError(f"{op}: expected target of shape {want} for input of shape {input.shape}, "
                         f"got {tuple(t.shape)}")
    xp = array_module(t)
    t = xp.ascontiguousarray(t, dtype=xp.int64)
    k = input.shape[1]
    if is_cuda_array(t):
        return t, _defer_target_check(t, k, ignore_index, op)
    bad = (t < 0) | (t >= k)
    if ignore_index is not None:
        bad &= t != ignore_index
    if t.size and bool(bad.any()):
        raise ValueError(_target_message(op, int(t[bad].ravel()[0]), k, ignore_index))
    return t, None


def _target_message(op, value, k, ignore_index):
    return (f"{op}: target {value} is out of range for {k} classes (expected 0 <= target < {k}"
            + (f" or target == ignore_index ({ignore_index}))" if ignore_index is not None else ")"))


def _defer_target_check(t, k, ignore_index, op):
    """The GPU's target check: a device record [first bad position (size if none), its value,
    entries not ignored], checked at the next host read.  Returns the not-ignored count."""
    xp = array_module(t)
    flat = t.reshape(-1)
    # without an ignore_index, int64's least value stands in (a target that far out is bad anyway)
    ignore = -(2 ** 63) if ignore_index is None else int(ignore_index)
    check = kernel("loss", "class_targets_check", flat)
    if check is not None:
        record = check(flat, k, ignore)                         # one launch, no sync
    elif flat.size == 0:
        record = xp.zeros(3, dtype=xp.int64)
    else:                                                       # reference mode: the same, in CuPy ops
        n = flat.size
        bad = ((flat < 0) | (flat >= k)) & (flat != ignore)
        first = xp.where(bad, xp.arange(n), n).min()
        record = xp.stack([first, xp.where(first < n, flat[xp.minimum(first, n - 1)], 0),
                           (flat != ignore).sum()]).astype(xp.int64)
    n = flat.size

    def error(host):
        return ValueError(_target_message(op, int(host[1]), k, ignore_index)) if host[0] < n else None
    device_checks.defer(record, error)
    return record[2]


def _class_weight(weight, input, op):
    """The optional per-class ``weight`` (C,) as an array (a constant: it gets no gradient)."""
    if weight is None:
        return None
    check_tensor(weight, op, "weight")
    k = input.shape[1]
    if weight.shape != (k,):
        raise ValueError(f"{op}: weight should be defined for all {k} classes, shape ({k},), "
                         f"got shape {weight.shape}")
    check_same_dtype(op, input=input, weight=weight)
    return array_module(input.array).asarray(weight.array)


def _check_input(input, op, layout):
    check_tensor(input, op)
    check_float(input, op)
    if input.ndim == 0:
        raise ValueError(f"{op}: expected input to be at least 1-d ({layout}), got shape {input.shape}")
    return input


def _as_batch_of_one(loss_fn, input, target, reduction, op, **kwargs):
    """An unbatched (C,) input and its target (a class () or probabilities (C,)) as a batch of
    one; 'none' then gives a 0-d loss."""
    shape = tuple(getattr(target, "shape", np.shape(target)))
    if shape not in ((), input.shape):
        raise ValueError(f"{op}: expected target of shape () for input of shape {input.shape}, "
                         f"got {shape}")
    if isinstance(target, Tensor):
        target = target.reshape(1, *target.shape)
    elif isinstance(target, (list, tuple)) or hasattr(target, "dtype"):
        target = array_module(input.array).asarray(target)[None]
    loss = loss_fn(input.reshape(1, *input.shape), target, reduction=reduction, **kwargs)
    return loss.reshape(()) if reduction == "none" else loss


# --------------------------------------------------------------------------- cross_entropy


def softmax_cross_entropy_forward_reference(logits, target):
    """loss_i = logsumexp(logits_i) - logits_i[target_i],  probs = softmax(logits) (row-wise)."""
    xp = array_module(logits)
    rows = xp.arange(logits.shape[0])
    shifted = logits - logits.max(axis=1, keepdims=True)       # max subtracted: exp stays <= 1
    lse = xp.log(xp.exp(shifted).sum(axis=1))                  # logsumexp(logits_i) - max_i
    loss = lse - shifted[rows, target]
    probs = xp.exp(shifted - lse[:, None])
    return loss, probs


def softmax_cross_entropy_backward_reference(gloss, probs, target):
    """glogits_ij = gloss_i * (probs_ij - [j == target_i])."""
    xp = array_module(probs)
    g = probs * gloss[:, None]
    g[xp.arange(probs.shape[0]), target] -= gloss
    return g


class CrossEntropyFn(Function):
    """Fused softmax + negative log-likelihood over (N, K) logits with class targets t.

        p_i    = softmax(x_i)
        loss_i = -log p_i[t_i] = logsumexp(x_i) - x_i[t_i]
        L      = mean_i loss_i  (or sum, or the vector itself)

    Backward: d loss_i / d x_ij = p_ij - [j == t_i], so with g_i = dL/d loss_i
    (dy / N for mean, dy for sum, dy_i for none):
        dx_ij = g_i * (p_ij - onehot(t_i)_j)
    """

    def __init__(self, target, reduction="mean", ignore_index=None, total=None):
        # ignore_index and total (the not-ignored count, a device scalar): the GPU kernels'
        # own handling of ignored targets, so that the op need not look at them on the host
        self.target, self.reduction, self.total = target, reduction, total
        self.kw = {} if ignore_index is None else {"ignore_index": ignore_index}

    def forward(self, logits):
        fwd = (kernel("loss", "softmax_cross_entropy_forward", logits)
               or softmax_cross_entropy_forward_reference)
        loss, probs = fwd(array_module(logits).ascontiguousarray(logits), self.target, **self.kw)
        self.save_for_backward(probs)
        return _reduce(loss, self.reduction, self.total)

    def backward(self, gy):
        (probs,) = self.saved_tensors
        gloss = _unreduce(gy, self.reduction, (probs.shape[0],), self.total)
        bwd = (kernel("loss", "softmax_cross_entropy_backward", probs)
               or softmax_cross_entropy_backward_reference)
        return bwd(gloss, probs, self.target, **self.kw)


def _check_smoothing(label_smoothing, op):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    return float(label_smoothing)


def _class_dim_view(a, ndim):
    """A (C,) array shaped (1, C, 1, ...) to broadcast along dim 1 of an ``ndim``-d input."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def _reduce_tensor(loss, reduction, total):
    """mean / sum / none of a Tensor of per-position losses; mean divides by ``total`` (NaN for 0)."""
    if reduction == "none":
        return loss
    s = loss.sum()
    if reduction == "sum":
        return s
    return s * (1.0 / float(total) if total else float("nan"))


def _probability_cross_entropy(input, target, w, ignore_index, reduction, eps, op):
    """Cross-entropy against class probabilities q (``target`` of the input's shape):

        loss_i = -sum_c w_c q'_ic log_softmax(x_i)_c,   q' = (1 - eps) q + eps / C
        mean:  sum_i loss_i / (number of positions i = N*d1*...), the weights not counted

    Built from differentiable ops (log_softmax, mul, sum), so autograd gives the
    backward, dx_i = g_i (p_i sum_c w_c q'_ic - w q'_i), and a target that requires grad
    gets its gradient too, as in PyTorch.
    """
    if not isinstance(target, Tensor):
        target = Tensor(_target_array(input, target, op, "a Tensor or array"))
    if target.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point target for class probabilities (a target "
                        f"of the input's shape {input.shape}), got {target.dtype}")
    check_same_dtype(op, input=input, target=target)
    if ignore_index >= 0:
        raise ValueError(f"{op}: ignore_index is not supported for probability targets "
                         f"(got ignore_index={ignore_index})")
    q = target * (1.0 - eps) + eps / input.shape[1] if eps else target
    if w is not None:
        q = q * Tensor(_class_dim_view(w, input.ndim))
    loss = -(log_softmax(input, 1) * q).sum(1)
    return _reduce_tensor(loss, reduction, loss.numel())


def _position_weights(t, w, ignore_index, dtype):
    """(the weight of each position's target class, 0 where ignored;  the target with the
    ignored positions at class 0;  the mask of the counted positions)."""
    xp = array_module(t)
    keep = t != ignore_index
    index = xp.where(keep, t, 0)
    wt = keep.astype(dtype) if w is None else w[index] * keep
    return wt, index, keep


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` against ``target``, as ``torch.nn.functional.cross_entropy``.

    ``input`` (N, C) scores (or unbatched (C,), or (N, C, d1, ...) for a score per pixel);
    ``target`` either integer classes (N,) / (N, d1, ...) (an int64 Tensor, integer array or
    list), or class probabilities of the input's shape (float).  ``weight`` (C,) rescales each
    class; targets equal to ``ignore_index`` count for nothing; ``label_smoothing`` eps mixes
    each target with the uniform distribution: (1 - eps) target + eps / C.
    ``reduction``: ``"mean"`` (default; with class targets, divided by the summed weights of
    the counted targets, as PyTorch), ``"sum"``, or ``"none"`` for the per-position losses.

    The plain case (2-d logits, class targets, no weight, no smoothing, nothing ignored)
    runs the fused :class:`CrossEntropyFn` and its fast kernels; everything else is
    ``nll_loss(log_softmax(input, 1), ...)`` plus, with smoothing, ``eps / C`` times the
    weighted sum of -log p over the classes (PyTorch's formulation).  ``weight`` gets no
    gradient (as in PyTorch's nll_loss).
    """
    op = "cross_entropy"
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(reduction, op)
    eps = _check_smoothing(label_smoothing, op)
    _check_input(input, op, "(C), (N, C) or (N, C, d1, ...)")
    if input.ndim == 1:
        return _as_batch_of_one(cross_entropy, input, target, reduction, op, weight=weight,
                                ignore_index=ignore_index, label_smoothing=eps)
    w = _class_weight(weight, input, op)
    if tuple(getattr(target, "shape", ())) == input.shape:      # class probabilities, as PyTorch decides
        return _probability_cross_entropy(input, target, w, ignore_index, reduction, eps, op)
    t, kept = _class_targets(input, target, op, ignore_index)
    if w is None and not eps and input.ndim == 2:
        if kept is not None and is_cuda_array(input.array) and kernel("loss", "softmax_cross_entropy_forward",
                                                                    input.array) is not None:
            # the GPU's fused path: ignored targets handled by the kernels, nothing read back
            return CrossEntropyFn(t, reduction, ignore_index, kept)(input)
        if not bool((t == ignore_index).any()):
            return CrossEntropyFn(t, reduction)(input)            # the fused fast path
    logp = log_softmax(input, 1)
    wt, index, keep = _position_weights(t, w, ignore_index, input.dtype)
    nll = NLLLossFn(index, wt, keep, reduction)(logp)
    if not eps:
        return nll
    # smoothing: per position sum_c w_c (-log p_c), 0 where ignored, reduced like the nll term
    ones = array_module(wt).ones(input.shape[1], dtype=input.dtype)
    per_class = Tensor(_class_dim_view(ones if w is None else w, input.ndim))
    smooth = -(logp * per_class).sum(1) * Tensor(keep.astype(input.dtype))
    return nll * (1.0 - eps) + _reduce_tensor(smooth, reduction, wt.sum()) * (eps / input.shape[1])


# --------------------------------------------------------------------------- nll_loss


class NLLLossFn(Function):
    """Weighted negative log-likelihood of log-probabilities x (N, C, d1, ...), class targets t.

        loss_i = -w_i x_i[t_i]      over every position i = (n, d1, ...);  w_i = weight[t_i]
                                    (1 without weights), and w_i = 0 where t_i == ignore_index
        L      = sum_i loss_i / sum_i w_i  (mean),  sum_i loss_i  (sum),  or the loss_i  (none)

    Backward: only the target class of each position gets a gradient,
        dx_i[t_i] = -w_i g_i,   g_i = dL/d loss_i  (dy / sum_i w_i for mean, dy for sum, dy_i for none)

    ``index`` is t with the ignored positions set to class 0, ``wt`` the w_i and ``keep``
    the counted positions (from ``_position_weights``): an ignored position reads a real
    entry and its loss is then set to 0 (not multiplied by 0, which would turn -inf into NaN).
    """

    def __init__(self, index, wt, keep, reduction="mean"):
        self.index, self.wt, self.keep, self.reduction = index, wt, keep, reduction

    def forward(self, x):
        xp = array_module(x)
        self.shape = x.shape
        picked = xp.take_along_axis(x, self.index[:, None], axis=1)[:, 0]
        loss = xp.where(self.keep, -self.wt * picked, 0).astype(x.dtype, copy=False)
        return _reduce(loss, self.reduction, self.wt.sum())

    def backward(self, gy):
        xp = array_module(gy)
        g = _unreduce(gy, self.reduction, self.wt.shape, self.wt.sum())
        classes = _class_dim_view(xp.arange(self.shape[1]), len(self.shape))
        return xp.where(classes == self.index[:, None], (-self.wt * g)[:, None], 0).astype(gy.dtype,
                                                                                         copy=False)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities (from ``log_softmax``), as PyTorch's ``nll_loss``.

    ``input`` (N, C), (C,) or (N, C, d1, ...); integer ``target`` (N,), () or (N, d1, ...).
    ``weight``, ``ignore_index`` and ``reduction`` as in :func:`cross_entropy`, which equals
    ``nll_loss(log_softmax(x, 1), t)``.
    """
    op = "nll_loss"
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(reduction, op)
    _check_input(input, op, "(C), (N, C) or (N, C, d1, ...)")
    if input.ndim == 1:
        return _as_batch_of_one(nll_loss, input, target, reduction, op, weight=weight,
                                ignore_index=ignore_index)
    w = _class_weight(weight, input, op)
    t, _ = _class_targets(input, target, op, ignore_index)
    wt, index, keep = _position_weights(t, w, ignore_index, input.dtype)
    return NLLLossFn(index, wt, keep, reduction)(input)


# --------------------------------------------------------------------------- elementwise losses
#
# mse_loss, l1_loss, binary_cross_entropy(_with_logits): L = reduce(w * f(x, t)) for an
# elementwise f.  Each is a small subclass of _PointwiseLossFn giving f and its two
# partial derivatives; the base class does the broadcasting, weighting and reduction.


class _PointwiseLossFn(Function):
    """L = reduce(w * f(x, t)) over the elements of broadcast(x, t); w a constant array or None.

    Backward: dx = sum_to(g * w * df/dx), dt = sum_to(g * w * df/dt), with g the gradient
    of each element's loss (dy / total for mean) and ``sum_to`` undoing the broadcast.
    ``mean`` divides by the number of elements, or by sum(w) when ``weight_normalized``
    (mse_loss and l1_loss with a weight, as PyTorch).
    """

    def __init__(self, reduction, weight=None, weight_normalized=False):
        self.reduction, self.w, self.weight_normalized = reduction, weight, weight_normalized

    def f(self, x, t):                   # the loss of each element
        raise NotImplementedError

    def df(self, x, t):                  # (df/dx, df/dt)
        raise NotImplementedError

    def forward(self, x, t):
        xp = array_module(x)
        self.save_for_backward(x, t)
        loss = self.f(*xp.broadcast_arrays(x, t))
        if self.w is not None:
            loss = loss * self.w
        self.shape = loss.shape
        self.total = self.w.sum() if self.weight_normalized and self.w is not None else None
        return _reduce(loss, self.reduction, self.total)

    def backward(self, gy):
        xp = array_module(gy)
        x, t = self.saved_tensors
        g = _unreduce(gy, self.reduction, self.shape, self.total)
        if self.w is not None:
            g = g * self.w
        dx, dt = self.df(*xp.broadcast_arrays(x, t))
        need_x, need_t = self.needs_input_grad
        return (sum_to(g * dx, x.shape) if need_x else None,
                sum_to(g * dt, t.shape) if need_t else None)


class MSELossFn(_PointwiseLossFn):
    """f = (x - t)^2;   df/dx = 2 (x - t) = -df/dt."""

    def f(self, x, t):
        d = x - t
        return d * d

    def df(self, x, t):
        d = 2 * (x - t)
        return d, -d


class L1LossFn(_PointwiseLossFn):
    """f = |x - t|;   df/dx = sign(x - t) = -df/dt  (0 at x = t, as PyTorch)."""

    def f(self, x, t):
        return array_module(x).abs(x - t)

    def df(self, x, t):
        s = array_module(x).sign(x - t)
        return s, -s


class BCELossFn(_PointwiseLossFn):
    """Binary cross-entropy of probabilities x in [0, 1] against targets t, PyTorch's way:

        f     = -(t max(log x, -100) + (1 - t) max(log(1 - x), -100))   (the clamp keeps x = 0, 1 finite)
        df/dx = (x - t) / max(x (1 - x), 1e-12)
        df/dt = log((1 - x) / x) = -logit(x)
    """

    def f(self, x, t):
        xp = array_module(x)
        with np.errstate(divide="ignore"):             # log(0) = -inf, then clamped
            return -(t * xp.maximum(xp.log(x), -100) + (1 - t) * xp.maximum(xp.log1p(-x), -100))

    def df(self, x, t):
        xp = array_module(x)
        with np.errstate(divide="ignore"):
            dt = -xp.log(x / (1 - x))
        eps = x.dtype.type(np.float32(1e-12))          # PyTorch's EPSILON is a float, in every dtype
        return (x - t) / xp.maximum(x * (1 - x), eps), dt


class BCEWithLogitsLossFn(_PointwiseLossFn):
    """Binary cross-entropy of sigmoid(x) against t, computed from the logits x without overflow:

        f     = (1 - t) x + l softplus(-x),      l = 1 + (pos_weight - 1) t
        df/dx = (1 - t) - l sigmoid(-x)
        df/dt = -x + (pos_weight - 1) softplus(-x)
    with softplus(-x) = log(1 + exp(-x)) = max(-x, 0) + log1p(exp(-|x|)), and
    sigmoid(-x) = exp(-softplus(x)) = exp(-(softplus(-x) + x)), whose exponent is <= 0.
    """

    def __init__(self, reduction, weight=None, pos_weight=None):
        super().__init__(reduction, weight)
        self.pos_weight = pos_weight

    @staticmethod
    def _softplus_neg(x):
        xp = array_module(x)
        return xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def f(self, x, t):
        sp = self._softplus_neg(x)
        lw = 1 if self.pos_weight is None else 1 + (self.pos_weight - 1) * t
        return (1 - t) * x + lw * sp

    def df(self, x, t):
        xp = array_module(x)
        sp = self._softplus_neg(x)
        lw = 1 if self.pos_weight is None else 1 + (self.pos_weight - 1) * t
        dx = (1 - t) - lw * xp.exp(-(sp + x))
        dt = -x if self.pos_weight is None else -x + (self.pos_weight - 1) * sp
        return dx, dt


def _pointwise_args(input, target, op, same_shape):
    """Check input and target Tensors for an elementwise loss (a differing shape must broadcast)."""
    check_tensor(input, op)
    check_tensor(target, op, "target")
    check_float(input, op)
    check_float(target, op, "target")
    check_same_dtype(op, input=input, target=target)
    if target.shape == input.shape:
        return
    if same_shape:
        raise ValueError(f"{op}: expected target of the input's shape {input.shape}, got {target.shape}")
    try:
        np.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ValueError(f"{op}: target of shape {target.shape} does not broadcast with input of shape "
                         f"{input.shape}") from None
    warnings.warn(f"{op}: Using a target size ({target.shape}) that is different to the input size "
                  f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
                  "Please ensure they have the same size.", stacklevel=3)


def _constant(weight, input, op, name, shape):
    """An optional weight Tensor as an array broadcast to ``shape`` (a constant: no gradient)."""
    if weight is None:
        return None
    check_tensor(weight, op, name)
    check_same_dtype(op, input=input, **{name: weight})
    try:
        np.broadcast_shapes(weight.shape, shape)
    except ValueError:
        raise ValueError(f"{op}: {name} of shape {weight.shape} does not broadcast with the target's "
                         f"shape {shape}") from None
    return array_module(input.array).asarray(weight.array)


def _regression_loss(fn_class, input, target, size_average, reduce, reduction, weight, op):
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(reduction, op)
    _pointwise_args(input, target, op, same_shape=False)
    if weight is not None:
        check_tensor(weight, op, "weight")
        if weight.shape != input.shape:
            raise ValueError(f"{op}: weight and input must have the same size, got weight {weight.shape} "
                             f"and input {input.shape}")
    w = _constant(weight, input, op, "weight", input.shape)
    return fn_class(reduction, w, weight_normalized=True)(input, target)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error (x - t)^2, as ``torch.nn.functional.mse_loss``.

    ``target`` broadcasts with ``input`` (with PyTorch's warning when the shapes differ)
    and gets a gradient too; an elementwise ``weight`` of the input's shape makes ``mean``
    a weighted mean (the weight itself gets no gradient).
    """
    return _regression_loss(MSELossFn, input, target, size_average, reduce, reduction, weight, "mse_loss")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error |x - t|, as ``torch.nn.functional.l1_loss`` (arguments as :func:`mse_loss`)."""
    return _regression_loss(L1LossFn, input, target, size_average, reduce, reduction, weight, "l1_loss")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross-entropy of probabilities ``input`` in [0, 1], as PyTorch's ``binary_cross_entropy``.

    ``target`` has the input's shape; ``weight`` broadcasts to it and scales each element
    (``mean`` still divides by the element count; no gradient for it, as in PyTorch).
    log is clamped at -100, as in PyTorch, so probabilities of exactly 0 or 1 give a
    finite loss.
    """
    op = "binary_cross_entropy"
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(reduction, op)
    _pointwise_args(input, target, op, same_shape=True)
    x = input.array
    if x.size and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1 (probabilities; "
                         "for logits use binary_cross_entropy_with_logits)")
    return BCELossFn(reduction, _constant(weight, input, op, "weight", target.shape))(input, target)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable step, as PyTorch's ``binary_cross_entropy_with_logits``.

    ``input`` are logits, ``target`` has their shape.  ``weight`` scales each element;
    ``pos_weight`` (broadcast along the last dims, e.g. one per class) scales the
    positive term t log sigmoid(x).  Neither gets a gradient (PyTorch gives them one).
    """
    op = "binary_cross_entropy_with_logits"
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(reduction, op)
    _pointwise_args(input, target, op, same_shape=True)
    w = _constant(weight, input, op, "weight", target.shape)
    pw = _constant(pos_weight, input, op, "pos_weight", target.shape)
    return BCEWithLogitsLossFn(reduction, w, pw)(input, target)


# --------------------------------------------------------------------------- smooth L1, Huber, KL divergence


class SmoothL1LossFn(_PointwiseLossFn):
    """d = x - t;  f = d^2 / (2 beta) where |d| < beta, else |d| - beta / 2  (beta = 0: |d|).
    df/dx = d / beta inside, sign(d) outside;  df/dt = -df/dx."""

    def __init__(self, reduction, beta):
        super().__init__(reduction)
        self.beta = beta

    def f(self, x, t):
        xp = array_module(x)
        d = xp.abs(x - t)
        if self.beta == 0:
            return d
        return xp.where(d < self.beta, 0.5 * d * d / self.beta, d - 0.5 * self.beta).astype(
            x.dtype, copy=False)

    def df(self, x, t):
        xp = array_module(x)
        d = x - t
        g = xp.sign(d) if self.beta == 0 else \
            xp.where(xp.abs(d) < self.beta, d / self.beta, xp.sign(d)).astype(x.dtype, copy=False)
        return g, -g


class HuberLossFn(_PointwiseLossFn):
    """d = x - t;  f = d^2 / 2 where |d| < delta, else delta (|d| - delta / 2)  (= delta * smooth_l1
    with beta = delta);  df/dx = d inside, delta sign(d) outside;  df/dt = -df/dx."""

    def __init__(self, reduction, delta, weight=None):
        super().__init__(reduction, weight)
        self.delta = delta

    def f(self, x, t):
        xp = array_module(x)
        d = xp.abs(x - t)
        return xp.where(d < self.delta, 0.5 * d * d, self.delta * (d - 0.5 * self.delta)).astype(
            x.dtype, copy=False)

    def df(self, x, t):
        xp = array_module(x)
        d = x - t
        g = xp.where(xp.abs(d) < self.delta, d, self.delta * xp.sign(d)).astype(x.dtype, copy=False)
        return g, -g


class KLDivLossFn(_PointwiseLossFn):
    """Pointwise KL divergence of log-probabilities x against target t:

        log_target=False:  f = t (log t - x)  (0 where t = 0),   df/dx = -t,
                           df/dt = log t - x + 1  (NaN where t = 0, as PyTorch: it is unbounded)
        log_target=True:   f = exp(t) (t - x),   df/dx = -exp(t),   df/dt = exp(t) (t - x + 1)
    """

    def __init__(self, reduction, log_target):
        super().__init__(reduction)
        self.log_target = log_target

    def f(self, x, t):
        xp = array_module(x)
        if self.log_target:
            return xp.exp(t) * (t - x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(t > 0, t * (xp.log(xp.where(t > 0, t, 1)) - x), 0).astype(x.dtype, copy=False)

    def df(self, x, t):
        xp = array_module(x)
        if self.log_target:
            e = xp.exp(t)
            return -e, e * (t - x + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dt = xp.where(t > 0, xp.log(xp.where(t > 0, t, 1)) - x + 1, np.nan).astype(x.dtype, copy=False)
        return -t, dt


def _nonnegative(value, op, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(f"{op}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1 loss, as ``torch.nn.functional.smooth_l1_loss``: quadratic for |x - t| < beta,
    linear beyond (``target`` broadcasts, as in :func:`mse_loss`)."""
    op = "smooth_l1_loss"
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    _check_reduction(reduction, op)
    _pointwise_args(input, target, op, same_shape=False)
    return SmoothL1LossFn(reduction, _nonnegative(beta, op, "beta"))(input, target)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Huber loss, as ``torch.nn.functional.huber_loss``: quadratic for |x - t| < delta, linear
    (slope delta) beyond.  An elementwise ``weight`` of the input's shape scales each element
    (``mean`` then divides by the element count, as PyTorch's huber_loss)."""
    op = "huber_loss"
    _check_reduction(reduction, op)
    _pointwise_args(input, target, op, same_shape=False)
    delta = _nonnegative(delta, op, "delta")
    if delta == 0:
        raise ValueError(f"{op}: delta must be > 0, got {delta}")
    w = _constant(weight, input, op, "weight", input.shape)
    return HuberLossFn(reduction, delta, w)(input, target)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL divergence loss, as ``torch.nn.functional.kl_div``: ``input`` holds log-probabilities,
    ``target`` probabilities (or log-probabilities with ``log_target=True``).

    ``reduction='batchmean'`` (the mathematically correct KL) divides the sum by the batch
    size ``input.shape[0]``; ``'mean'`` divides by the element count, with PyTorch's warning.
    """
    op = "kl_div"
    reduction = _legacy_reduction(size_average, reduce, reduction, op)
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS + ('batchmean',)}, got {reduction!r}")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support "
                      "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
                      "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
                      "major release.", stacklevel=2)
    _pointwise_args(input, target, op, same_shape=False)
    if reduction != "batchmean":
        return KLDivLossFn(reduction, bool(log_target))(input, target)
    loss = KLDivLossFn("sum", bool(log_target))(input, target)
    return loss * (1.0 / input.shape[0]) if input.ndim else loss
