"""``DataLoader``: shuffled, batched, prefetched NumPy batches from a dataset, resumable.

This is the loader ``tinyconv train`` uses.  For PyTorch's ``DataLoader`` (Tensor
batches, samplers, worker processes) use :class:`tinyconv.utils.data.DataLoader`;
this one builds on its pieces: the batches are a
:class:`~tinyconv.utils.data.BatchSampler` over the epoch's order, and collation is
:func:`tinyconv.utils.data.collate` with a map that stacks into NumPy arrays
(:data:`numpy_collate_fn_map`), so any sample structure works (tuples, dicts, ...).

Each iteration over the loader is one epoch and yields, for ``(image, label)``
samples, ``[images, labels]``: a float32 NCHW array and an int64 array.  The arrays
are plain NumPy; the training loop wraps them in tensors (this package never
touches autograd).

Determinism.  The order of epoch ``e`` is a permutation drawn from a generator
seeded by ``(seed, e)``, and each sample's random transforms draw from a generator
seeded by ``(seed, e, index)`` (installed with :func:`transforms.rng_scope`), so a
run repeats exactly under one seed whatever the number of threads.  The loader's
whole state is ``{"seed", "epoch", "batch"}`` (:meth:`state_dict`), so a checkpoint
can resume it at the very batch where it stopped (:meth:`load_state_dict`).  With
``seed=None`` the seed is drawn from tinyconv's global generator, so
``tinyconv.manual_seed`` makes the loader reproducible too.

Prefetch.  With ``num_workers > 0`` a pool of that many threads builds the next
``prefetch`` batches while the caller computes on the current one.  Threads, not
processes: Python's GIL lets one thread run Python at a time, but Pillow releases
the GIL while it decodes and resizes, and NumPy while it copies big arrays, so JPEG
decoding does overlap with the forward/backward pass (and the training step spends
its own time inside BLAS, which releases the GIL as well).  Transforms written in
pure Python per pixel would not overlap.
"""
import concurrent.futures
from collections import deque

import numpy as np

from ..utils.data.collate import collate as _collate
from ..utils.data.sampler import BatchSampler
from . import transforms as T


def _collate_arrays(batch, *, collate_fn_map=None):
    shapes = {a.shape for a in batch}
    if len(shapes) > 1:
        raise ValueError(f"DataLoader: images in a batch must share one shape, got {sorted(shapes)}; "
                         "add Resize/CenterCrop transforms")
    out = np.stack(batch)
    return out.astype(np.float32, copy=False) if out.dtype.kind == "f" else out


def _collate_pil(batch, *, collate_fn_map=None):
    to_array = T.ToArray()
    return _collate_arrays([to_array(img) for img in batch])


def _collate_scalars(batch, *, collate_fn_map=None):
    a = np.asarray(batch)
    kind = a.dtype.kind
    return a.astype(np.float32) if kind == "f" else a.astype(np.int64) if kind in "iu" else a


def _keep(batch, *, collate_fn_map=None):
    return batch


numpy_collate_fn_map = {
    np.ndarray: _collate_arrays,
    (np.bool_, np.number, float, int): _collate_scalars,
    (str, bytes): _keep,
}
if T.Image is not None:
    numpy_collate_fn_map[T.Image.Image] = _collate_pil


def collate(samples):
    """Samples -> a batch of NumPy arrays: for (image, label) pairs, [float32 NCHW
    images, int64 labels].  Arrays are stacked and numbers gathered; floating values
    become float32 (the engine's dtype; PyTorch's default_collate keeps float64),
    integers int64, bools stay bool; PIL images are converted with ``ToArray``
    first.  Containers are walked as by :func:`tinyconv.utils.data.collate`."""
    return _collate(samples, collate_fn_map=numpy_collate_fn_map)


class DataLoader:
    """Batches of ``dataset`` (see the module doc for order, seeding and threads)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 num_workers=0, prefetch=2):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if num_workers < 0 or prefetch < 1:
            raise ValueError(f"DataLoader: need num_workers >= 0 and prefetch >= 1, got "
                             f"{num_workers} and {prefetch}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch)
        if seed is None:
            from .. import random as _random
            seed = int(_random.generator().integers(2**31))
        self.seed = int(seed)
        self.epoch = 0          # the epoch the next iteration runs
        self.batch = 0          # the batch of that epoch it starts at (non-zero after a mid-epoch resume)

    def __len__(self):
        return len(BatchSampler(range(len(self.dataset)), self.batch_size, self.drop_last))

    # -- state -----------------------------------------------------------------
    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state):
        self.seed, self.epoch, self.batch = int(state["seed"]), int(state["epoch"]), int(state["batch"])

    # -- order -----------------------------------------------------------------
    def order(self, epoch):
        """The sample indices of ``epoch``, in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _batches(self, epoch):
        return list(BatchSampler(self.order(epoch).tolist(), self.batch_size, self.drop_last))

    def _make_batch(self, epoch, indices):
        fast = getattr(self.dataset, "get_batch", None)
        if fast is not None:
            out = fast(indices)
            if out is not None:
                return out
        samples = []
        for i in indices:
            # each sample's augmentation draws from its own generator, seeded by (seed, epoch, index)
            with T.rng_scope(np.random.default_rng([self.seed, epoch, int(i)])):
                samples.append(self.dataset[int(i)])
        return collate(samples)

    # -- iteration ---------------------------------------------------------------
    def __iter__(self):
        epoch, start = self.epoch, self.batch
        batches = self._batches(epoch)
        if self.num_workers == 0:
            for b in range(start, len(batches)):
                out = self._make_batch(epoch, batches[b])
                self.batch = b + 1
                yield out
        else:
            with concurrent.futures.ThreadPoolExecutor(self.num_workers,
                                                       thread_name_prefix="tinyconv-loader") as pool:
                pending = deque()
                nxt = start
                try:
                    for b in range(start, len(batches)):
                        while nxt < len(batches) and len(pending) < self.prefetch + 1:
                            pending.append(pool.submit(self._make_batch, epoch, batches[nxt]))
                            nxt += 1
                        out = pending.popleft().result()     # in order, whichever thread made it
                        self.batch = b + 1
                        yield out
                finally:
                    for f in pending:
                        f.cancel()
        self.epoch, self.batch = epoch + 1, 0

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"seed={self.seed}, num_workers={self.num_workers})")
