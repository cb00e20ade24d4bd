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

import numpy as np

from .. import backend
from .. import functional as F
from ..functional._checks import check_tensor, pair
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
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
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
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

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


class ReLU(Module):
    """max(x, 0): ``F.relu`` (``inplace=True`` writes into the input, as in PyTorch)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


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

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        name = type(self).__name__
        reduction = _legacy_reduction(size_average, reduce, reduction, name)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
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
