"""AlexNet's two towers on two ranks: the paper's model-parallel split, run for real.

Krizhevsky et al. (2012) put half of every layer's kernels on each of two GPUs, and
"the GPUs communicate only in certain layers": conv3 and the fully connected layers
see both towers, conv2, conv4 and conv5 see only their own (the ``groups=2`` of the
single-device net).  ``AlexNetTowers(model, rank)`` builds rank ``rank``'s tower of a
grouped AlexNet (``paper``, ``small28``, ``small32``) from that net's own weights:

* a convolution with ``groups=2`` keeps its own group (half the kernels, its own input);
* any other convolution or linear layer keeps half of its output kernels (rows) and,
  if its input is split across the towers, first gathers it from both
  (:class:`Exchange`, an all-gather whose backward is a reduce-scatter);
* ReLU, max-pooling and dropout act on each tower's own channels or units;
* the last layer's halves are gathered (``replicated=True``), so every rank ends with the
  full logits and computes the same loss.

LRN, in the single-device net, normalizes over neighbouring channels across the tower
boundary; the paper's GPUs normalized each tower on its own.  ``lrn_across_towers=True``
(the default) exchanges before each LRN so the towers equal the single-device net
exactly; ``False`` is the paper's communication pattern (only into conv3 and the fully
connected layers).  Run ``examples/alexnet_two_towers.py`` with ``mpiexec -n 2``.
"""
import copy

from .. import distributed, nn
from ..distributed.exchange import all_gather_cat

TOWERS = 2


class Exchange(nn.Module):
    """Gather the towers' halves along ``dim`` (see :class:`tinyconv.distributed.exchange.AllGather`)."""

    def __init__(self, dim=1, replicated=False):
        super().__init__()
        self.dim, self.replicated = dim, replicated

    def forward(self, x):
        return all_gather_cat(x, self.dim, self.replicated)

    def extra_repr(self):
        return f"dim={self.dim}" + (", replicated=True" if self.replicated else "")


class OwnHalf(nn.Module):
    """Keep this tower's half of the channels (dim 1) of a gathered tensor."""

    def __init__(self, rank):
        super().__init__()
        self.rank = rank

    def forward(self, x):
        c = x.shape[1] // TOWERS
        return x[:, self.rank * c:(self.rank + 1) * c]

    def extra_repr(self):
        return f"rank={self.rank}"


def _half(param, rank, dim=0):
    """This tower's half of ``param`` along ``dim``, a copy (the tower owns it)."""
    n = param.shape[dim] // TOWERS
    index = [slice(None)] * param.ndim
    index[dim] = slice(rank * n, (rank + 1) * n)
    return param.array[tuple(index)].copy()


def _own(layer, weight, bias):
    for param, value in ((layer.weight, weight), (layer.bias, bias)):
        if value is not None:
            param.array[...] = value
            param._version_counter.n += 1
    return layer


def _tower_conv(m, rank):
    if m.groups not in (1, TOWERS) or m.out_channels % TOWERS:
        raise ValueError(f"AlexNetTowers: cannot split {m} into {TOWERS} towers")
    in_channels = m.in_channels // TOWERS if m.groups == TOWERS else m.in_channels
    conv = nn.Conv2d(in_channels, m.out_channels // TOWERS, m.kernel_size, m.stride, m.padding,
                     m.dilation, bias=m.bias is not None).to(m.weight.dtype)
    return _own(conv, _half(m.weight, rank), None if m.bias is None else _half(m.bias, rank))


def _tower_linear(m, rank):
    if m.out_features % TOWERS:
        raise ValueError(f"AlexNetTowers: cannot split {m} into {TOWERS} towers")
    fc = nn.Linear(m.in_features, m.out_features // TOWERS, bias=m.bias is not None).to(m.weight.dtype)
    return _own(fc, _half(m.weight, rank), None if m.bias is None else _half(m.bias, rank))


class AlexNetTowers(nn.Module):
    """Rank ``rank``'s tower of the grouped AlexNet ``model`` (see the module docstring).

    ``forward(x)``: ``x`` is the whole batch on every rank; returns the full logits on
    every rank.  Every rank must call forward and backward together.
    """

    def __init__(self, model, rank, lrn_across_towers=True):
        super().__init__()
        if not 0 <= rank < TOWERS:
            raise ValueError(f"AlexNetTowers: rank must be 0 or 1, got {rank}")
        if getattr(model, "variant", None) not in ("paper", "small28", "small32"):
            raise ValueError("AlexNetTowers: expected a grouped AlexNet (variant 'paper', 'small28' "
                             f"or 'small32'), got variant {getattr(model, 'variant', None)!r}")
        self.rank, self.input_shape = rank, model.input_shape
        self.features = nn.Sequential(*self._split(model.features, rank, lrn_across_towers, 4))
        self.flatten_and_classify = nn.Sequential(*self._split(model.classifier, rank, False, 2))

    @staticmethod
    def _split(layers, rank, lrn_across_towers, ndim):
        """The tower's layers, with an Exchange wherever a layer needs both towers' inputs.

        ``split`` tracks whether the running activation holds this tower's half (True) or
        all of it (False: the image, or a gathered tensor)."""
        split = ndim == 2            # the classifier starts from conv5's split output
        out = []
        for m in layers:
            if isinstance(m, nn.Conv2d):
                if m.groups == 1 and split:
                    out.append(Exchange(dim=1))               # conv3: into all of conv2's maps
                out.append(_tower_conv(m, rank))
                split = True
            elif isinstance(m, nn.Linear):
                if split:
                    out.append(Exchange(dim=1))               # fc6, fc7, fc8: all of the layer below
                out.append(_tower_linear(m, rank))
                split = True
            elif isinstance(m, nn.LocalResponseNorm) and split and lrn_across_towers:
                out += [Exchange(dim=1), copy.deepcopy(m), OwnHalf(rank)]   # neighbours across
            elif isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.LocalResponseNorm)):
                out.append(copy.deepcopy(m))
            else:
                raise ValueError(f"AlexNetTowers: no tower rule for layer {m}")
        if ndim == 2:
            out.append(Exchange(dim=1, replicated=True))      # every rank gets all the logits
        return out

    def forward(self, x):
        if distributed.get_world_size() != TOWERS:
            raise RuntimeError(f"AlexNetTowers: the towers run on {TOWERS} ranks (mpiexec -n {TOWERS}), "
                               f"got world_size {distributed.get_world_size()}")
        x = self.features(x)
        # flattening each tower's (N, C/2, H, W) keeps the single-device net's channel-major
        # order, so gathering the flattened halves gives its flattened vector
        return self.flatten_and_classify(x.reshape(x.shape[0], -1))
