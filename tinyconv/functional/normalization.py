"""Batch, layer and group normalization, as ``torch.nn.functional.batch_norm`` /
``layer_norm`` / ``group_norm``.

For input x of shape (N, C) or (N, C, *spatial) each channel c is normalized over
its M = N * prod(spatial) values:

    y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

* training=True: mean_c and var_c are the batch's mean and *biased* variance
  (divide by M), and the running statistics, when given, are updated in place:
      running_mean = (1 - momentum) * running_mean + momentum * mean_c
      running_var  = (1 - momentum) * running_var  + momentum * var_c * M / (M - 1)
  (the running variance uses the *unbiased* estimate, exactly as PyTorch).
* training=False: mean_c and var_c are the running statistics themselves.

``running_mean`` / ``running_var`` are buffers, not parameters: raw NumPy/CuPy
arrays or Tensors that do not require grad (a module's registered buffers), each
of shape (C,) and of the input's dtype and device.  They may be None in training
mode (batch statistics only, nothing to update), never in eval mode.

``layer_norm`` normalizes each sample over its trailing ``normalized_shape`` dims, and
``group_norm`` each sample over the channels of one group (and all positions); both are
:class:`NormalizeFn` (statistics of the current input, always biased) followed by the
elementwise affine ``* weight + bias`` as ordinary differentiable ops.
"""
import math

from ..autograd import Function, Tensor
from ..backend import array_module, device_of
from ._checks import check_float, check_same_dtype, check_tensor


class BatchNormFn(Function):
    """y = xhat * gamma + beta,  xhat = (x - mu) * r,  r = 1 / sqrt(var + eps), per channel.

    Sums below run over the M = N * H * W positions of one channel; G = dL/dy.
        d gamma = sum(G * xhat)         d beta = sum(G)
    Eval (mu, var are constants):
        dx = G * gamma * r
    Training (mu = mean(x), var = mean((x - mu)^2) depend on x):
        dx = (gamma * r / M) * (M * G - sum(G) - xhat * sum(G * xhat))
    Called as ``BatchNormFn(...)(x)``, ``(x, weight)``, ``(x, bias)`` or ``(x, weight, bias)``
    as told by ``has_weight`` / ``has_bias``.
    """

    def __init__(self, running_mean, running_var, training, momentum, eps, has_weight, has_bias):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        xp = array_module(x)
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        axes = (0,) + tuple(range(2, x.ndim))            # every axis but the channel axis 1
        shape = (1, -1) + (1,) * (x.ndim - 2)            # (C,) -> broadcastable against x
        if self.training:
            mu = x.mean(axis=axes)
            xc = x - mu.reshape(shape)
            var = (xc * xc).mean(axis=axes)              # biased: divides by M (two-pass, stable)
            self._update_running_stats(mu, var, x.size // x.shape[1])
        else:
            mu, var = self.running_mean, self.running_var
            xc = x - mu.reshape(shape)
        r = 1.0 / xp.sqrt(var + self.eps)
        xhat = xc * r.reshape(shape)
        y = xhat * weight.reshape(shape) if weight is not None else xhat.copy()
        if bias is not None:
            y += bias.reshape(shape)
        self.save_for_backward(xhat, r, weight)
        return y

    def _update_running_stats(self, mu, var, m):
        """In place, so the caller's buffers (a module's running stats) see the update."""
        mom = self.momentum
        if self.running_mean is not None:
            self.running_mean[...] = (1 - mom) * self.running_mean + mom * mu
        if self.running_var is not None:
            self.running_var[...] = (1 - mom) * self.running_var + mom * (var * (m / (m - 1)))

    def backward(self, gy):
        xhat, r, weight = self.saved_tensors
        axes = (0,) + tuple(range(2, gy.ndim))
        shape = (1, -1) + (1,) * (gy.ndim - 2)
        m = gy.size // gy.shape[1]
        need = self.needs_input_grad
        grads = []
        if need[0]:
            g_r = r if weight is None else weight * r    # gamma * r per channel
            if self.training:
                sum_g = gy.sum(axis=axes)
                sum_gx = (gy * xhat).sum(axis=axes)
                gx = (g_r / m).reshape(shape) * (
                    m * gy - sum_g.reshape(shape) - xhat * sum_gx.reshape(shape))
            else:
                gx = gy * g_r.reshape(shape)
            grads.append(gx)
        else:
            grads.append(None)
        k = 1
        if self.has_weight:
            grads.append((gy * xhat).sum(axis=axes) if need[k] else None)
            k += 1
        if self.has_bias:
            grads.append(gy.sum(axis=axes) if need[k] else None)
        return tuple(grads)


def _check_affine(op, input, weight, bias, shape):
    """``weight`` and ``bias`` (each optional) are tensors of ``shape`` and ``input``'s dtype."""
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            check_tensor(p, op, name)
            if p.shape != shape:
                raise ValueError(f"{op}: expected {name} of shape {shape}, got {p.shape} (input "
                                 f"of shape {input.shape})")
    check_same_dtype(op, input=input, weight=weight, bias=bias)


def _stat_buffer(buf, name, x, op):
    """A running-stat buffer as a raw array of shape (C,) on x's device and dtype (or None)."""
    if buf is None:
        return None
    if isinstance(buf, Tensor):
        if buf.requires_grad:
            raise TypeError(f"{op}: {name} is a buffer and must not require grad")
        buf = buf.array
    elif not (hasattr(buf, "dtype") and hasattr(buf, "shape")):
        raise TypeError(f"{op}: {name} must be a Tensor or an array of shape ({x.shape[1]},), "
                        f"got {type(buf).__name__}")
    if tuple(buf.shape) != (x.shape[1],):
        raise ValueError(f"{op}: expected {name} of shape ({x.shape[1]},) for input of shape "
                         f"{x.shape}, got {tuple(buf.shape)}")
    if buf.dtype != x.dtype:
        raise TypeError(f"{op}: expected {name} of dtype {x.dtype} like the input, got {buf.dtype}")
    if device_of(buf) != x.device:
        raise ValueError(f"{op}: {name} is on {device_of(buf)}, input on {x.device}")
    return buf


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over channel axis 1 of an (N, C) or (N, C, ...) input.

    ``running_mean`` / ``running_var``: (C,) arrays or grad-free Tensors, updated in
    place when ``training``; used for normalizing when not.  ``weight`` / ``bias``:
    optional (C,) Tensors (the affine gamma and beta).
    """
    op = "batch_norm"
    check_tensor(input, op)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C) or (N, C, ...), got shape {input.shape}")
    check_float(input, op)
    c = input.shape[1]
    _check_affine(op, input, weight, bias, (c,))
    rm = _stat_buffer(running_mean, "running_mean", input, op)
    rv = _stat_buffer(running_var, "running_var", input, op)
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool):
        raise TypeError(f"{op}: momentum must be a number, got {momentum!r}")
    eps = _check_eps(eps, op)
    if training:
        if input.numel() // max(c, 1) <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, "
                             f"got input of shape {input.shape}")
    elif rm is None or rv is None:
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode "
                         "(training=False)")
    params = [p for p in (weight, bias) if p is not None]
    fn = BatchNormFn(rm, rv, bool(training), float(momentum), float(eps),
                     weight is not None, bias is not None)
    return fn(input, *params)


# --------------------------------------------------------------------------- layer_norm, group_norm


class NormalizeFn(Function):
    """xhat = (x - mu) * r,  r = 1 / sqrt(var + eps), with mu and the biased var taken over the
    last ``k`` axes of x (the statistics of this input: no running ones).

    Backward, with sums over the same M values and G = dL/dxhat (as BatchNormFn's training case):
        dx = (r / M) * (M * G - sum(G) - xhat * sum(G * xhat))
    """

    def __init__(self, k, eps):
        self.axes, self.eps = tuple(range(-k, 0)), eps

    def forward(self, x):
        xp = array_module(x)
        mu = x.mean(axis=self.axes, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=self.axes, keepdims=True)      # two-pass, stable
        r = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype, copy=False)
        xhat = xc * r
        self.save_for_backward(xhat, r)
        return xhat

    def backward(self, gy):
        xhat, r = self.saved_tensors
        m = math.prod(xhat.shape[a] for a in self.axes)
        sum_g = gy.sum(axis=self.axes, keepdims=True)
        sum_gx = (gy * xhat).sum(axis=self.axes, keepdims=True)
        return ((r / m) * (m * gy - sum_g - xhat * sum_gx),)


def _affine(y, weight, bias, shape):
    """y * weight + bias with weight/bias reshaped to ``shape`` (either may be None)."""
    if weight is not None:
        y = y * weight.reshape(*shape)
    if bias is not None:
        y = y + bias.reshape(*shape)
    return y


def _check_eps(eps, op):
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
        raise ValueError(f"{op}: eps must be a number >= 0, got {eps!r}")
    return float(eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the last ``len(normalized_shape)`` dims, as ``F.layer_norm``.

        y = (x - mean) / sqrt(var + eps) * weight + bias

    mean and (biased) var per sample over the trailing ``normalized_shape`` dims;
    ``weight`` / ``bias``: optional Tensors of shape ``normalized_shape``.
    """
    op = "layer_norm"
    check_tensor(input, op)
    check_float(input, op)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ValueError(f"{op}: Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {input.shape}")
    _check_affine(op, input, weight, bias, shape)
    y = NormalizeFn(k, _check_eps(eps, op))(input)
    return _affine(y, weight, bias, shape)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalization, as ``F.group_norm``: the C channels of an (N, C, *) input are split
    into ``num_groups`` groups, and each sample's group is normalized over its channels and
    positions; then ``* weight + bias`` per channel (optional (C,) Tensors)."""
    op = "group_norm"
    check_tensor(input, op)
    check_float(input, op)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 1 \
            or c % num_groups:
        raise ValueError(f"{op}: Expected number of channels in input ({c}) to be divisible by "
                         f"num_groups, but got num_groups={num_groups!r} and input of shape {input.shape}")
    _check_affine(op, input, weight, bias, (c,))
    n = input.shape[0]
    grouped = input.reshape(n, num_groups, -1) if input.numel() else input.reshape(n, num_groups, 0)
    y = NormalizeFn(1, _check_eps(eps, op))(grouped).reshape(*input.shape)
    return _affine(y, weight, bias, (1, c) + (1,) * (input.ndim - 2))
