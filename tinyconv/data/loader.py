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
can resume it at the very batch where it stopped (:meth:`load_state_dict`).  Every
new iterator starts a new epoch, whole (peeking one batch with ``next(iter(loader))``
does not shorten the next epoch), unless a position was loaded or assigned since.  With
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
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{name} should be a boolean value, but got {name}={flag!r}")
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if not isinstance(prefetch, int) or isinstance(prefetch, bool) or prefetch < 1:
            raise ValueError(f"DataLoader: prefetch should be a positive int, got {prefetch!r}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(f"DataLoader: the dataset holds {len(dataset)} samples, fewer than one batch "
                             f"of {batch_size}, and drop_last=True serves whole batches only: no batch "
                             "at all; use a smaller batch_size, or drop_last=False for one smaller batch")
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
        self._epoch = 0         # the epoch the next iteration runs (see `epoch`)
        self._batch = 0         # the batch of that epoch it starts at (non-zero after a mid-epoch resume)
        self._open = None       # the iterator now serving epoch `_epoch`, if one has started it

    # -- position ----------------------------------------------------------------
    # ``epoch`` and ``batch`` say where the loader stands: while an iteration runs, the
    # epoch it serves and how many of its batches it has handed out; after one ends, the
    # next epoch and 0.  A new iterator starts a new epoch (so a peek with
    # ``next(iter(loader))`` costs the next epoch nothing) unless the position was set
    # since (``load_state_dict``, or assigning ``epoch``/``batch``), which resumes exactly there.
    @property
    def epoch(self):
        return self._epoch

    @epoch.setter
    def epoch(self, value):
        self._epoch, self._open = int(value), None

    @property
    def batch(self):
        return self._batch

    @batch.setter
    def batch(self, value):
        self._batch, self._open = int(value), None

    def __len__(self):
        return len(BatchSampler(range(len(self.dataset)), self.batch_size, self.drop_last))

    # -- state -----------------------------------------------------------------
    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state):
        """Resume at ``state``: the next iterator starts at its epoch and batch."""
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
        if self._open is not None:                  # an earlier iterator began this epoch
            self._epoch, self._batch = self._epoch + 1, 0
        token = self._open = object()
        return self._serve(self._epoch, self._batch, token)

    def _advance(self, token, epoch, batch):
        """Record the position, unless a newer iterator (or an assignment) took over."""
        if self._open is token:
            self._epoch, self._batch = epoch, batch
            if batch == 0:
                self._open = None

    def _serve(self, epoch, start, token):
        batches = self._batches(epoch)
        if self.num_workers == 0:
            for b in range(start, len(batches)):
                out = self._make_batch(epoch, batches[b])
                self._advance(token, epoch, b + 1)
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
                        self._advance(token, epoch, b + 1)
                        yield out
                finally:
                    for f in pending:
                        f.cancel()
        self._advance(token, epoch + 1, 0)

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"seed={self.seed}, num_workers={self.num_workers})")
