"""``DistributedSampler``: each rank reads its own shard of the dataset, as in PyTorch.

The indices (shuffled with ``seed + epoch`` when ``shuffle``) are padded by repeating
their start until they split evenly (or, with ``drop_last``, cut to a multiple of
``num_replicas``); rank r takes every ``num_replicas``-th from position r, so all
ranks get ``num_samples`` indices and run the same number of steps.  Call
``set_epoch(e)`` before each epoch for a new order.  The shuffled order is NumPy's
``default_rng(seed + epoch).permutation`` (PyTorch draws ``torch.randperm``), so it
is the same on every rank but not PyTorch's order.
"""
import math

import numpy as np

from .sampler import Sampler


def _from_process_group(what):
    from ... import distributed as dist      # only when not given: the samplers need no autograd
    if not dist.is_initialized():
        raise RuntimeError(f"DistributedSampler: {what} not given and the default process group is "
                           "not initialized (call tinyconv.distributed.init_process_group)")
    return dist.get_world_size() if what == "num_replicas" else dist.get_rank()


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None:
            num_replicas = _from_process_group("num_replicas")
        if rank is None:
            rank = _from_process_group("rank")
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, "
                             f"got {num_replicas!r}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def _order(self, n):
        if self.shuffle:
            return np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        return list(range(n))

    def __iter__(self):
        indices = self._order(len(self.dataset))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """The epoch whose order ``__iter__`` gives (shuffle=True): call it at each epoch's start."""
        self.epoch = epoch
