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
"""
from ..autograd import Function, Tensor
from ..backend import array_module, kernel
from ._checks import check_float, check_ndim, check_tensor

_REDUCTIONS = ("mean", "sum", "none")

# --------------------------------------------------------------------------- softmax, log_softmax


def _normalize_dim(dim, ndim, op):
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise ValueError(f"{op}: dim {dim} is out of range for a {ndim}-d input "
                         f"(expected {-n} <= dim < {n})")
    return dim % n


class SoftmaxFn(Function):
    """y = softmax(x) along ``dim``.

    Backward (the softmax Jacobian is diag(y) - y y^T along dim):
        dx = y * (dy - sum_dim(dy * y))
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))
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
        shifted = x - x.max(axis=self.dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))
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


# --------------------------------------------------------------------------- targets


def _class_targets(input, target, op):
    """Check (N, K) ``input`` and integer class ``target``; return target as an int64 array (N,).

    ``target`` may be an int64 (or other integer) Tensor, a NumPy/CuPy integer array,
    or a list of ints; it is moved to ``input``'s device.
    """
    check_ndim(input, 2, op, "input", "(N, K) scores for N samples and K classes")
    check_float(input, op, "input")
    xp = array_module(input.array)
    if isinstance(target, Tensor):
        if target.requires_grad:
            raise TypeError(f"{op}: target must not require grad (it holds class indices)")
        t = target.array
    elif isinstance(target, (list, tuple)) or hasattr(target, "dtype"):
        t = target
    else:
        raise TypeError(f"{op}: target must be an integer Tensor, array or list of class indices, "
                        f"got {type(target).__name__}")
    t = xp.asarray(t)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class indices as target (int64), got dtype "
                        f"{t.dtype}; probability (float) targets are not supported")
    n, k = input.shape
    if t.shape != (n,):
        raise ValueError(f"{op}: expected target of shape ({n},) for input of shape {input.shape}, "
                         f"got {tuple(t.shape)}")
    t = xp.ascontiguousarray(t, dtype=xp.int64)
    if n:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{op}: target {bad} is out of range for {k} classes "
                             f"(expected 0 <= target < {k})")
    return t


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss, reduction):
    """mean / sum / none over the per-sample losses; a 0-d array for mean and sum."""
    xp = array_module(loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.asarray(loss.sum(), dtype=loss.dtype)
    if loss.size == 0:                  # mean of nothing: NaN, as PyTorch (without a warning)
        return xp.asarray(float("nan"), dtype=loss.dtype)
    return xp.asarray(loss.mean(), dtype=loss.dtype)


def _unreduce(gy, reduction, n):
    """The gradient of each sample's loss from the gradient of the reduced loss."""
    xp = array_module(gy)
    if reduction == "none":
        return xp.ascontiguousarray(gy)
    g = gy / n if reduction == "mean" and n else gy   # (an empty batch has nothing to share)
    out = xp.empty((n,), dtype=gy.dtype)        # a real (N,) array, not a broadcast view:
    out[...] = g                                # kernels take C-contiguous arrays
    return out


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

    def __init__(self, target, reduction="mean"):
        self.target, self.reduction = target, reduction

    def forward(self, logits):
        fwd = (kernel("loss", "softmax_cross_entropy_forward", logits)
               or softmax_cross_entropy_forward_reference)
        loss, probs = fwd(array_module(logits).ascontiguousarray(logits), self.target)
        self.save_for_backward(probs)
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        (probs,) = self.saved_tensors
        gloss = _unreduce(gy, self.reduction, probs.shape[0])
        bwd = (kernel("loss", "softmax_cross_entropy_backward", probs)
               or softmax_cross_entropy_backward_reference)
        return bwd(gloss, probs, self.target)


def cross_entropy(input, target, reduction="mean"):
    """Cross-entropy of (N, K) logits ``input`` against integer class ``target`` (N,).

    ``target``: an int64 Tensor, integer NumPy array or list of class indices in [0, K).
    ``reduction``: ``"mean"`` (default) averages over the batch, ``"sum"`` adds,
    ``"none"`` returns the (N,) per-sample losses.
    """
    op = "cross_entropy"
    _check_reduction(reduction, op)
    t = _class_targets(input, target, op)
    return CrossEntropyFn(t, reduction)(input)


# --------------------------------------------------------------------------- nll_loss


class NLLLossFn(Function):
    """Negative log-likelihood of (N, K) log-probabilities x with class targets t.

        loss_i = -x_i[t_i],   L = mean / sum / none over i
    Backward: dx_ij = -g_i if j == t_i else 0  (g_i as in CrossEntropyFn).
    """

    def __init__(self, target, reduction="mean"):
        self.target, self.reduction = target, reduction

    def forward(self, x):
        xp = array_module(x)
        self.shape = x.shape
        loss = -x[xp.arange(x.shape[0]), self.target]
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        xp = array_module(gy)
        gloss = _unreduce(gy, self.reduction, self.shape[0])
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        gx[xp.arange(self.shape[0]), self.target] = -gloss
        return gx


def nll_loss(input, target, reduction="mean"):
    """Negative log-likelihood loss on (N, K) log-probabilities (e.g. from ``log_softmax``).

    ``cross_entropy(x, t)`` equals ``nll_loss(log_softmax(x, 1), t)``.
    """
    op = "nll_loss"
    _check_reduction(reduction, op)
    t = _class_targets(input, target, op)
    return NLLLossFn(t, reduction)(input)
