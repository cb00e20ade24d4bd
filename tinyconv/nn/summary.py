"""``summary(model, input_shape)``: each layer's output shape, parameter count and forward FLOPs.

It runs one real forward pass (batch ``batch_size``, zeros, ``no_grad``, eval mode, so no
dropout draw and no BatchNorm statistics update) and records every leaf layer as it is
called; the model is left exactly as it was.  Returns a :class:`ModelSummary`, a list of
:class:`SummaryRow` (name, type, output shape, parameters, FLOPs) with the totals as
attributes; printing it gives the table that ``model.summary()`` and ``tinyconv summary``
show.

How FLOPs are counted (forward, inference, for the whole batch):

* a multiply-add is 2 FLOPs.  Conv2d: ``2 * (C_in/groups) * kh * kw`` per output element,
  plus 1 per output element for the bias; Linear: ``2 * in_features`` per output, plus the
  bias.  These are the products that matter: they are nearly all of a CNN's work.
* ReLU: 1 per element (a max).  MaxPool2d: ``kh*kw - 1`` comparisons per output.
  AdaptiveAvgPool2d / AvgPool2d: one add per window element (the last being the divide).
* LocalResponseNorm: ``2*size + 4`` per element (a multiply-add per square in the window,
  then k + alpha/n * s, the power and the product).  BatchNorm: 2 per element (the
  normalization folded into one multiply-add, as at inference).
* Dropout, Flatten, Identity: 0 (identity at inference).  Any other layer shows ``-`` and
  adds nothing to the total.

With this count the paper's AlexNet needs 1.45 GFLOPs per 227x227 image (724 million
multiply-adds in its convolutions and fully connected layers); a training step costs about
three forward passes (forward, gradient of the input, gradient of the weights).
"""
import math
from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..creation import zeros

#: one line of the table; ``flops`` is None for a layer type whose cost is not counted
SummaryRow = namedtuple("SummaryRow", ["name", "type", "output_shape", "params", "flops"])


class ModelSummary(list):
    """The rows of a summary (a list of :class:`SummaryRow`) and its totals.

    Attributes: ``model_name``, ``input_shape`` and ``output_shape`` (with the batch
    dimension), ``total_params``, ``trainable_params``, ``total_flops``.
    """

    def __init__(self, rows, model_name, input_shape, output_shape, total_params, trainable_params):
        super().__init__(rows)
        self.model_name = model_name
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.total_params = total_params
        self.trainable_params = trainable_params
        self.total_flops = sum(r.flops for r in rows if r.flops is not None)

    def as_dicts(self):
        """The rows as plain dicts (JSON-able), for the CLI and the docs."""
        return [dict(r._asdict(), output_shape=list(r.output_shape)) for r in self]

    def __str__(self):
        head = ("Layer (type)", "Output shape", "Params", "FLOPs")
        body = [(f"{r.name} ({r.type})", str(r.output_shape), f"{r.params:,}",
                 "-" if r.flops is None else f"{r.flops:,}") for r in self]
        total = ("Total", str(self.output_shape), f"{self.total_params:,}", f"{self.total_flops:,}")
        widths = [max(len(row[i]) for row in [head, total] + body) for i in range(4)]

        def line(cells):
            return (f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  "
                    f"{cells[2]:>{widths[2]}}  {cells[3]:>{widths[3]}}")

        rule = "-" * len(line(head))
        out = [f"{self.model_name}: input {self.input_shape}", rule, line(head), rule]
        out += [line(b) for b in body]
        out += [rule, line(total), rule,
                f"Parameters: {self.total_params:,} ({self.trainable_params:,} trainable, "
                f"{_human(self.total_params * 4, 'B', 1024)} as float32)",
                f"Forward: {_human(self.total_flops, 'FLOPs')} "
                f"(batch {self.input_shape[0]}; a multiply-add counts as 2)"]
        return "\n".join(out)


def _human(n, unit, base=1000):
    """1449551424 -> '1.45 GFLOPs'; with base 1024, 243860896 -> '232.57 MiB'."""
    prefixes = ["", "K", "M", "G", "T"]
    i = 0
    while abs(n) >= base and i < len(prefixes) - 1:
        n, i = n / base, i + 1
    if i == 0:
        return f"{n} {unit}"
    return f"{n:.2f} {prefixes[i]}{'i' if base == 1024 else ''}{unit}"


# --------------------------------------------------------------------------- FLOP counters


def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def _conv_flops(m, x, y):
    kh, kw = _pair(m.kernel_size)
    per_output = 2 * (m.in_channels // m.groups) * kh * kw + (1 if m.bias is not None else 0)
    return per_output * _numel(y)


def _linear_flops(m, x, y):
    return (2 * m.in_features + (1 if m.bias is not None else 0)) * _numel(y)


def _maxpool_flops(m, x, y):
    kh, kw = _pair(m.kernel_size)
    return (kh * kw - 1) * _numel(y)


def _avgpool_flops(m, x, y):
    kh, kw = _pair(m.kernel_size)
    return kh * kw * _numel(y)


def _adaptive_avgpool_flops(m, x, y):
    # PyTorch's windows: rows floor(i*H/OH) .. ceil((i+1)*H/OH) for output row i (same for columns)
    def total_window(n_in, n_out):
        return sum(math.ceil((i + 1) * n_in / n_out) - (i * n_in) // n_out for i in range(n_out))
    n, c, h, w = x
    oh, ow = y[2], y[3]
    return n * c * total_window(h, oh) * total_window(w, ow)


def _lrn_flops(m, x, y):
    return (2 * m.size + 4) * _numel(y)


def _elementwise(cost):
    return lambda m, x, y: cost * _numel(y)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


#: layer type name -> f(module, input shape, output shape) -> FLOPs
FLOP_COUNTERS = {
    "Conv2d": _conv_flops,
    "Linear": _linear_flops,
    "ReLU": _elementwise(1),
    "MaxPool2d": _maxpool_flops,
    "AvgPool2d": _avgpool_flops,
    "AdaptiveAvgPool2d": _adaptive_avgpool_flops,
    "LocalResponseNorm": _lrn_flops,
    "BatchNorm1d": _elementwise(2),
    "BatchNorm2d": _elementwise(2),
    "Dropout": _elementwise(0),
    "Flatten": _elementwise(0),
    "Identity": _elementwise(0),
}


# --------------------------------------------------------------------------- tracing


def _model_name(model):
    extra = model.extra_repr().split("\n")[0] if type(model).__name__ != "Sequential" else ""
    return f"{type(model).__name__}({extra})"


def summary(model, input_shape=None, batch_size=1, dtype=None, print_fn=print):
    """Print and return the layer table of ``model`` for inputs of ``input_shape``.

    ``input_shape`` is one sample's shape, without the batch dimension (``(3, 227, 227)``);
    it defaults to ``model.input_shape`` when the model has one (every AlexNet does).
    The forward pass uses ``batch_size`` samples of the model's dtype on its device.
    ``print_fn=None`` prints nothing.  Returns a :class:`ModelSummary`.
    """
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError(f"summary: {type(model).__name__} has no input_shape attribute; "
                             f"pass input_shape, one sample's shape without the batch dimension")
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in input_shape):
        raise ValueError(f"summary: input_shape must be positive ints (one sample, no batch "
                         f"dimension), got {input_shape!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")

    params = list(model.parameters())
    if dtype is None:
        dtype = params[0].dtype if params else np.float32
    device = params[0].device if params else backend.CPU
    x = zeros(batch_size, *input_shape, dtype=dtype, device=device)

    records = []        # (name, module, input shape, output shape) in call order
    traced = []

    def trace(name, m):
        original = m.forward

        def forward(*args, **kwargs):
            y = original(*args, **kwargs)
            records.append((name, m, tuple(args[0].shape) if args else None, tuple(y.shape)))
            return y
        m.forward = forward          # an instance attribute, found before the class method
        traced.append(m)

    for name, m in model.named_modules():
        if not any(True for _ in m.children()) or any(p is not None for p in m._parameters.values()):
            trace(name or type(m).__name__, m)
    modes = {id(m): m.training for m in model.modules()}
    try:
        model.eval()
        with no_grad():
            y = model(x)
    finally:
        for m in traced:
            del m.forward
        for m in model.modules():
            object.__setattr__(m, "training", modes[id(m)])

    rows, counted = [], set()
    for name, m, in_shape, out_shape in records:
        own = [p for p in m._parameters.values() if p is not None and id(p) not in counted]
        counted.update(id(p) for p in own)
        counter = FLOP_COUNTERS.get(type(m).__name__)
        flops = counter(m, in_shape, out_shape) if counter is not None and in_shape is not None else None
        rows.append(SummaryRow(name, type(m).__name__, out_shape, sum(p.numel() for p in own), flops))
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    result = ModelSummary(rows, _model_name(model), tuple(x.shape), tuple(y.shape), total, trainable)
    if print_fn is not None:
        print_fn(str(result))
    return result
