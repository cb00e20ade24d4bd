"""Differentiable exchange between ranks: the all-gather that model parallelism needs.

The collectives of :mod:`tinyconv.distributed` write into Tensors in place and are not
part of the autograd graph.  A model split across ranks (each rank holding some of a
layer's kernels, as AlexNet's two GPUs did) needs an exchange that backward goes
through too; :class:`AllGather` is that exchange, and :func:`all_gather_cat` calls it.
"""
from .. import backend
from ..autograd import Function, Tensor
from . import all_gather, get_rank, get_world_size, reduce_scatter


class AllGather(Function):
    """Concatenate every rank's ``x`` along ``dim``, on every rank.

    forward, on rank r of W:  y = cat([x_0, x_1, ..., x_{W-1}], dim)       (all-gather)

    backward: x_r reaches the loss through y on *every* rank, so its gradient sums the
    r-th slice of each rank's gradient of y (gy_s below is rank s's):

        gx_r = sum_s gy_s[r-th slice]                                         (reduce-scatter)

    That is right when each rank computes something different from y (its own kernels
    of the next layer).  When every rank computes the same thing from y (the same loss
    from gathered logits), the gy_s are W copies of one gradient; summing them would
    count the loss W times, so ``replicated=True`` takes the slice and sends nothing:

        gx_r = gy_r[r-th slice]
    """

    def __init__(self, dim=1, replicated=False):
        self.dim, self.replicated = dim, replicated
        self.rank, self.world = get_rank(), get_world_size()

    def forward(self, x):
        xp = backend.array_module(x)
        parts = [Tensor(xp.empty_like(x)) for _ in range(self.world)]
        all_gather(parts, Tensor(xp.ascontiguousarray(x)))
        self.size = x.shape[self.dim]
        return xp.concatenate([p.array for p in parts], axis=self.dim)

    def backward(self, gy):
        xp = backend.array_module(gy)
        lead = (slice(None),) * self.dim
        slices = [xp.ascontiguousarray(gy[lead + (slice(s * self.size, (s + 1) * self.size),)])
                  for s in range(self.world)]
        if self.replicated:
            return (slices[self.rank],)
        gx = Tensor(xp.empty_like(slices[self.rank]))
        reduce_scatter(gx, [Tensor(s) for s in slices])
        return (gx.array,)


def all_gather_cat(x, dim=1, replicated=False):
    """``cat`` of every rank's ``x`` along ``dim``, differentiable (see :class:`AllGather`).

    Every rank must call it, in the same order, with tensors of one shape and dtype.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"all_gather_cat: x must be a Tensor, got {type(x).__name__}")
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(f"all_gather_cat: dim {dim} is out of range for a {x.ndim}-d tensor")
    return AllGather(dim % x.ndim, replicated)(x)
