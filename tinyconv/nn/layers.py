"""The layers as modules, with PyTorch's names, arguments, parameter shapes and default init.

Each module holds its parameters and hyper-parameters and calls one op of
:mod:`tinyconv.functional` in ``forward``; the math (forward and backward) lives
with that op.  Default initializations are PyTorch's, drawn from tinyconv's seeded
generator so ``tinyconv.manual_seed(n)`` reproduces them:

* Conv2d and Linear weights: ``kaiming_uniform_(w, a=sqrt(5))``, i.e. U(-b, b) with
  b = 1/sqrt(fan_in); biases U(-b, b) with the same b.
* BatchNorm: weight 1, bias 0, running_mean 0, running_var 1.

Factory keywords ``dtype`` (float32 by default) and ``device`` (CPU by default) place
the new parameters, as in PyTorch.
"""
import math
import warnings

import numpy as np

from .. import backend
from .. import functional as F
from ..functional._checks import check_tensor, pair, single
from ..functional.activation import check_dropout_p
from ..functional.conv import _conv_padding
from ..functional.loss import _legacy_reduction
from . import init
from .module import Module, Parameter


def _empty_param(shape, dtype):
    """An uninitialized float Parameter on the CPU (``reset_parameters`` fills it)."""
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"parameters must have a floating point dtype, got {dtype}")
    return Parameter(np.empty(shape, dtype=dtype))


def _positive_int(value, op, name):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def _place(module, device):
    return module.to(device) if device is not None and backend.device(device) != backend.CPU else module


def _default_init(weight, bias):
    """PyTorch's default for Conv2d and Linear: weight U(-b, b), b = gain(leaky_relu, sqrt 5) *
    sqrt(3 / fan_in) = 1 / sqrt(fan_in); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


# --------------------------------------------------------------------------- convolution and linear


class Conv2d(Module):
    """2-d convolution over an (N, C_in, H, W) input: ``F.conv2d``.

    weight (out_channels, in_channels // groups, kh, kw), bias (out_channels,).
    The argument order is PyTorch's (``dilation`` comes before ``groups``); ``padding``
    may be ``"same"`` (stride 1) or ``"valid"``.  Only ``padding_mode="zeros"`` is supported.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        op = "Conv2d"
        self.in_channels = _positive_int(in_channels, op, "in_channels")
        self.out_channels = _positive_int(out_channels, op, "out_channels")
        self.groups = _positive_int(groups, op, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{op}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        self.kernel_size = pair(kernel_size, op, "kernel_size", minimum=1)
        self.stride = pair(stride, op, "stride", minimum=1)
        self.dilation = pair(dilation, op, "dilation", minimum=1)
        if isinstance(padding, str):
            _conv_padding(padding, self.stride, self.dilation, self.kernel_size, op)   # checks it
            self.padding = padding
        else:
            self.padding = pair(padding, op, "padding", minimum=0)
        if padding_mode != "zeros":
            raise ValueError(f"{op}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.weight = _empty_param((out_channels, in_channels // groups, *self.kernel_size), dtype)
        if bias:
            self.bias = _empty_param((out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        _default_init(self.weight, self.bias)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        """PyTorch's: padding, dilation, groups and bias only where they differ from the default."""
        n = len(self.kernel_size)
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Linear(Module):
    """y = x W^T + b over the last dimension: ``F.linear``.  weight (out, in), bias (out,)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "Linear", "in_features")
        self.out_features = _positive_int(out_features, "Linear", "out_features")
        self.weight = _empty_param((out_features, in_features), dtype)
        if bias:
            self.bias = _empty_param((out_features,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        _default_init(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input (a placeholder, e.g. to remove a layer from a model)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """Merges dimensions ``start_dim..end_dim`` (by default all but the batch dimension)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# --------------------------------------------------------------------------- pooling


class MaxPool2d(Module):
    """Max pooling: ``F.max_pool2d`` (stride defaults to kernel_size; AlexNet uses 3/2)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, dilation=self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average pooling: ``F.avg_pool2d`` (padding counted as zeros by default, as PyTorch)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                            count_include_pad=self.count_include_pad,
                            divisor_override=self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size`` (torchvision AlexNet's ``avgpool``, (6, 6))."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


# --------------------------------------------------------------------------- normalization


class LocalResponseNorm(Module):
    """Local response normalization across channels: ``F.local_response_norm``.

    PyTorch's convention: ``alpha`` is divided by ``size``.  The paper's layer (alpha
    1e-4 on the plain sum, size 5, k 2, beta 0.75) is ``LocalResponseNorm(5, 5e-4, 0.75, 2.0)``.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _positive_int(size, "LocalResponseNorm", "size")
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class _BatchNorm(Module):
    """Batch normalization over channel dimension 1: ``F.batch_norm``.

    Training: normalize with the batch statistics and update the running ones
    (``running = (1 - momentum) * running + momentum * batch``, the variance unbiased;
    ``momentum=None`` gives a cumulative average over ``num_batches_tracked``).
    Evaluation: normalize with the running statistics.  Parameters ``weight``/``bias``
    (gamma/beta) when ``affine`` (``bias=False`` drops beta, as in PyTorch 2.13); buffers
    ``running_mean``, ``running_var`` and ``num_batches_tracked`` (int64) when
    ``track_running_stats``: PyTorch's state_dict keys.
    """

    _input_ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        op = type(self).__name__
        self.num_features = _positive_int(num_features, op, "num_features")
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = _empty_param((num_features,), dtype)
            if bias:
                self.bias = _empty_param((num_features,), dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            fdtype = np.dtype(np.float32 if dtype is None else dtype)
            self.register_buffer("running_mean", np.zeros(num_features, dtype=fdtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=fdtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()
        _place(self, device)

    def reset_running_stats(self):
        if self.track_running_stats:
            for buf, value in ((self.running_mean, 0), (self.running_var, 1), (self.num_batches_tracked, 0)):
                buf.array[...] = value
                buf._version_counter.n += 1        # PyTorch's zero_() / fill_(1)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input):
        if input.ndim not in self._input_ndims:
            want = " or ".join(f"{n}D" for n in self._input_ndims)
            raise ValueError(f"{type(self).__name__}: expected {want} input, got {input.ndim}D input "
                             f"of shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels in "
                             f"dimension 1, got input of shape {input.shape}")

    def forward(self, input):
        check_tensor(input, type(self).__name__)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            self.num_batches_tracked._version_counter.n += 1     # PyTorch's add_(1)
            if self.momentum is None:      # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.array)
        # batch statistics in training, or when there are no running ones to use
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # running stats are updated only in training with track_running_stats
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of an (N, C) or (N, C, L) input."""
    _input_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of an (N, C, H, W) input, per channel over N, H and W."""
    _input_ndims = (4,)


# --------------------------------------------------------------------------- activations


class _InplaceActivation(Module):
    """An activation whose only option is ``inplace`` (printed only when True, as PyTorch)."""

    _fn = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return type(self)._fn(input, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_InplaceActivation):
    """max(x, 0): ``F.relu`` (``inplace=True`` writes into the input, as in PyTorch)."""
    _fn = staticmethod(F.relu)


class LeakyReLU(Module):
    """max(0, x) + negative_slope * min(0, x): ``F.leaky_relu`` (``inplace`` as in PyTorch)."""

    def __init__(self, negative_slope=1e-2, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Dropout(Module):
    """Inverted dropout with probability ``p`` while training; the identity in eval mode.

    ``inplace=True`` writes into the input, as in PyTorch.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p, self.inplace = check_dropout_p(p, type(self).__name__), inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """Channel dropout: each (sample, channel) feature map is zeroed with probability ``p``
    while training (``F.dropout2d``, with PyTorch's handling of 3-d inputs); the identity in
    eval mode.  ``inplace=True`` writes into the input, as in PyTorch."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Softmax(Module):
    """Softmax along ``dim`` (required: PyTorch's implicit choice of dim is deprecated)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def _dim(self):
        if self.dim is None:
            raise ValueError(f"{type(self).__name__}: pass dim explicitly, e.g. {type(self).__name__}(dim=1)")
        return self.dim

    def forward(self, input):
        return F.softmax(input, self._dim())

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) along ``dim``, computed stably."""

    def forward(self, input):
        return F.log_softmax(input, self._dim())


# --------------------------------------------------------------------------- losses


class _Loss(Module):
    """A loss module: holds ``reduction`` (PyTorch's deprecated size_average/reduce map onto it)."""

    _reductions = ("mean", "sum", "none")

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        name = type(self).__name__
        reduction = _legacy_reduction(size_average, reduce, reduction, name)
        if reduction not in self._reductions:
            raise ValueError(f"{name}: reduction must be one of {self._reductions}, got {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional ``weight`` Tensor, kept as a buffer (in state_dict, moved by to())."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        if weight is not None:
            check_tensor(weight, type(self).__name__, "weight")
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of logits against class indices or probabilities: ``F.cross_entropy``."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities and integer targets: ``F.nll_loss``."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error: ``F.mse_loss``."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: ``F.l1_loss``."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities: ``F.binary_cross_entropy``."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid + binary cross-entropy of logits: ``F.binary_cross_entropy_with_logits``."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(weight, size_average, reduce, reduction)
        if pos_weight is not None:
            check_tensor(pos_weight, "BCEWithLogitsLoss", "pos_weight")
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


# --------------------------------------------------------------------------- more activations


class GELU(Module):
    """x Phi(x): ``F.gelu`` (``approximate='tanh'`` for the tanh formula)."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_InplaceActivation):
    """x * sigmoid(x): ``F.silu``."""
    _fn = staticmethod(F.silu)


class ReLU6(_InplaceActivation):
    """min(max(x, 0), 6): ``F.relu6``."""
    _fn = staticmethod(F.relu6)


class ELU(Module):
    """x for x > 0, alpha (exp(x) - 1) otherwise: ``F.elu``."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear above ``threshold``: ``F.softplus``."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """clamp(x, min_val, max_val): ``F.hardtanh`` (``min_value``/``max_value``: PyTorch's
    deprecated spellings)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__()
        if min_value is not None or max_value is not None:
            warnings.warn("keyword argument `min_value` and `max_value` is deprecated and will be "
                          "removed in future, please use `min_val` and `max_val` instead", stacklevel=2)
        self.min_val = min_val if min_value is None else min_value
        self.max_val = max_val if max_value is None else max_value
        self.inplace = inplace
        if self.max_val <= self.min_val:
            raise ValueError(f"Hardtanh: max_val ({self.max_val}) must be greater than "
                             f"min_val ({self.min_val})")

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


# --------------------------------------------------------------------------- layer and group norm


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dims: ``F.layer_norm``.

    weight 1 and bias 0 of shape ``normalized_shape`` when ``elementwise_affine``
    (``bias=False`` drops the bias), PyTorch's state_dict keys ``weight`` / ``bias``.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(normalized_shape)
        self.normalized_shape = tuple(_positive_int(n, "LayerNorm", "normalized_shape") for n in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = _empty_param(self.normalized_shape, dtype)
            if bias:
                self.bias = _empty_param(self.normalized_shape, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalize each sample over groups of ``num_channels // num_groups`` channels: ``F.group_norm``.

    weight 1 and bias 0 of shape (num_channels,) when ``affine``.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *,
                 bias=True):
        super().__init__()
        self.num_groups = _positive_int(num_groups, "GroupNorm", "num_groups")
        self.num_channels = _positive_int(num_channels, "GroupNorm", "num_channels")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.eps, self.affine = eps, affine
        if affine:
            self.weight = _empty_param((num_channels,), dtype)
            if bias:
                self.bias = _empty_param((num_channels,), dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    reset_parameters = LayerNorm.reset_parameters

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


# --------------------------------------------------------------------------- embedding, unflatten


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``: ``F.embedding``.

    weight (num_embeddings, embedding_dim) drawn from N(0, 1), with row ``padding_idx``
    (if given) zero and never updated (its gradient is 0).  ``max_norm`` renormalizes the
    rows looked up, in place.  ``_weight`` starts from a given (V, D) Tensor, ``_freeze``
    makes it not require grad (as ``Embedding.from_pretrained``).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None,
                 dtype=None):
        super().__init__()
        op = "Embedding"
        self.num_embeddings = _positive_int(num_embeddings, op, "num_embeddings")
        self.embedding_dim = _positive_int(embedding_dim, op, "embedding_dim")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"{op}: padding_idx must be within num_embeddings, got {padding_idx} "
                                 f"for {num_embeddings} embeddings")
            padding_idx = int(padding_idx) % num_embeddings
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = _empty_param((num_embeddings, embedding_dim), dtype)
            self.reset_parameters()
        else:
            check_tensor(_weight, op, "_weight")
            if _weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"{op}: shape of _weight {_weight.shape} does not match "
                                 f"(num_embeddings, embedding_dim) = ({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight.array, requires_grad=not _freeze)
        _place(self, device)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.array[self.padding_idx] = 0
            self.weight._version_counter.n += 1

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is (a copy of) the 2-d Tensor ``embeddings``."""
        check_tensor(embeddings, "Embedding.from_pretrained", "embeddings")
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings parameter is expected to be "
                             f"2-dimensional, got shape {embeddings.shape}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        if self.sparse:
            s += ", sparse=True"
        return s


class Unflatten(Module):
    """Splits dimension ``dim`` into ``unflattened_size`` (the inverse of Flatten)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple or list of ints, "
                            f"got {type(unflattened_size).__name__}")
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):
        check_tensor(input, "Unflatten")
        d = self.dim % input.ndim if input.ndim else 0
        shape = input.shape[:d] + tuple(self.unflattened_size) + input.shape[d + 1:]
        return input.reshape(*shape)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# --------------------------------------------------------------------------- more losses


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above: ``F.smooth_l1_loss``."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, linear (slope delta) above: ``F.huber_loss``."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """KL divergence of log-probabilities against a target distribution: ``F.kl_div``
    (``reduction='batchmean'`` is the true KL per sample)."""

    _reductions = ("mean", "sum", "none", "batchmean")

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


# --------------------------------------------------------------------------- 1-d layers, adaptive max pool


def _single(v, op, name, minimum=0):
    return (single(v, op, name, minimum),)


class Conv1d(Module):
    """1-d convolution over an (N, C_in, L) input: ``F.conv1d`` (conv2d with a (1, k) kernel).

    weight (out_channels, in_channels // groups, k), bias (out_channels,); arguments,
    default init and ``repr`` as PyTorch's Conv1d.  Only ``padding_mode="zeros"``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        op = "Conv1d"
        self.in_channels = _positive_int(in_channels, op, "in_channels")
        self.out_channels = _positive_int(out_channels, op, "out_channels")
        self.groups = _positive_int(groups, op, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{op}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        self.kernel_size = _single(kernel_size, op, "kernel_size", 1)
        self.stride = _single(stride, op, "stride", 1)
        self.dilation = _single(dilation, op, "dilation", 1)
        if isinstance(padding, str):
            _conv_padding(padding, (1,) + self.stride, (1,) + self.dilation, (1,) + self.kernel_size, op)
            self.padding = padding
        else:
            self.padding = _single(padding, op, "padding")
        if padding_mode != "zeros":
            raise ValueError(f"{op}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.weight = _empty_param((out_channels, in_channels // groups, *self.kernel_size), dtype)
        if bias:
            self.bias = _empty_param((out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    reset_parameters = Conv2d.reset_parameters

    def forward(self, input):
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    extra_repr = Conv2d.extra_repr


class MaxPool1d(MaxPool2d):
    """1-d max pooling: ``F.max_pool1d``."""

    def forward(self, input):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class AvgPool1d(Module):
    """1-d average pooling: ``F.avg_pool1d``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        op = "AvgPool1d"
        self.kernel_size = _single(kernel_size, op, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _single(stride, op, "stride", 1)
        self.padding = _single(padding, op, "padding")
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed ``output_size``: ``F.adaptive_max_pool2d``."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Softmax2d(Module):
    """Softmax over the channels of a (N, C, H, W) or (C, H, W) input (dim -3)."""

    def forward(self, input):
        check_tensor(input, "Softmax2d")
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3-d or 4-d (C, H, W or N, C, H, W), "
                             f"got shape {input.shape}")
        return F.softmax(input, -3)


class Upsample(Module):
    """Nearest-neighbour upsampling to ``size`` or by ``scale_factor``: ``F.interpolate``."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        info = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return info + f", mode={self.mode!r}"
