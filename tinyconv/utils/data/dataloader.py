"""``DataLoader``, as ``torch.utils.data.DataLoader``: batches of Tensors from a dataset.

One ``for batch in loader`` is one epoch.  The loader asks its *batch sampler* for
lists of indices (built from ``batch_size``, ``shuffle``/``sampler`` and
``drop_last``), reads those samples and hands the list to ``collate_fn``
(:func:`~tinyconv.utils.data.default_collate`: tensors, arrays and numbers become
stacked tensors).  ``batch_size=None`` turns batching off: each sample is passed
through :func:`~tinyconv.utils.data.default_convert`.

Worker processes.  With ``num_workers=0`` everything runs in the calling process.
With ``num_workers=N`` the loader starts N processes (``multiprocessing``, the
platform's default start method unless ``multiprocessing_context`` says otherwise);
batch ``k`` goes to worker ``k mod N`` (skipping finished ones), at most
``prefetch_factor * N`` batches are in flight, and the batches come back in order
(or as they finish, with ``in_order=False``).  Each worker seeds Python's ``random``,
NumPy's global generator and tinyconv's generator from a base seed drawn (from
``generator``, or tinyconv's global generator) each time an iteration starts, plus
its worker id, so random transforms differ between workers and repeat under
``tinyconv.manual_seed``.  The workers stop when the epoch ends, when the iterator
is dropped (a ``break`` out of the loop), when a worker raises (the exception is
re-raised here with the same type, naming the worker and carrying its traceback),
when a worker dies, and at interpreter exit.  ``persistent_workers=True`` keeps
them across epochs (they stop when the loader is deleted).  Samples travel between
processes by pickling, so the dataset, ``collate_fn`` and ``worker_init_fn`` must be
picklable when the start method is not ``fork``.

Differences from PyTorch: ``generator`` is a ``numpy.random.Generator`` (tinyconv
has no ``torch.Generator``); ``pin_memory`` and ``pin_memory_device`` are accepted
and do nothing (there is no CUDA pinned-memory pool: batches are CPU arrays and
``.to("cuda")`` copies them); batches cross processes by pickling, not shared memory;
after a worker raises, the workers are shut down even with ``persistent_workers``
(the next ``iter()`` starts fresh ones).
"""
import atexit
import functools
import itertools
import multiprocessing
import os
import queue
import types
import weakref

from . import _worker
from ._rng import draw_seed, numpy_generator
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler

_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Batches of ``dataset``, as Tensors (see the module doc for the order, the workers
    and the differences from PyTorch).  ``pin_memory`` is accepted and is a no-op: the
    batches stay ordinary CPU arrays."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="", in_order=True):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int) or prefetch_factor < 1):
            raise ValueError(f"prefetch_factor option should be a positive int, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if generator is not None:
            numpy_generator(generator, "DataLoader")        # a wrong kind fails now, not at iter()

        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} "
                                     f"option, but got {name}={value}")
        elif shuffle not in (None, False) and sampler is not None:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)
        self.pin_memory = pin_memory                 # accepted; a no-op (see the module doc)
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self._iterator = None
        self._initialized = True

    def __setattr__(self, name, value):
        if getattr(self, "_initialized", False) and name in _FROZEN:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is "
                             "initialized")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        return _length(self._settings())

    def _settings(self):
        """What an iterator needs, copied: an iterator must not hold its loader (a
        persistent iterator is held by it, and the cycle would outlive ``del loader``)."""
        return types.SimpleNamespace(
            dataset=self.dataset, iterable=self._iterable, batch_size=self.batch_size,
            drop_last=self.drop_last, index_sampler=self._index_sampler,
            auto_collation=self._auto_collation, collate_fn=self.collate_fn,
            num_workers=self.num_workers, prefetch_factor=self.prefetch_factor, timeout=self.timeout,
            worker_init_fn=self.worker_init_fn, multiprocessing_context=self.multiprocessing_context,
            generator=self.generator, persistent_workers=self.persistent_workers, in_order=self.in_order)

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return _MultiProcessIter(self)
        if self._iterator is None or self._iterator._shut_down:
            self._iterator = _MultiProcessIter(self)
        else:
            self._iterator._reset(self)
        return self._iterator

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"num_workers={self.num_workers})")


def _length(lo):
    if lo.iterable:
        n = len(lo.dataset)             # TypeError for a dataset without len, as PyTorch
        if lo.batch_size is not None:
            n = n // lo.batch_size if lo.drop_last else -(-n // lo.batch_size)
        return n
    return len(lo.index_sampler)


class _BaseIter:
    def __init__(self, loader):
        self._cfg = lo = loader._settings()
        self._batches = iter(lo.index_sampler)
        self._base_seed = draw_seed(lo.generator, "DataLoader")     # drawn every epoch, as PyTorch

    def __iter__(self):
        return self

    def __len__(self):
        return _length(self._cfg)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._dataset_iter = iter(loader.dataset) if loader._iterable else None

    def __next__(self):
        lo = self._cfg
        indices = next(self._batches)
        return _worker.fetch(lo.dataset, indices, lo.collate_fn, lo.auto_collation,
                             self._dataset_iter, lo.drop_last)


_live = weakref.WeakSet()                # iterators with running workers, for the atexit hook


def _shutdown_all():
    for it in list(_live):
        it._shutdown_workers()


@functools.cache
def _register_atexit():
    """Shut live workers down at interpreter exit (registered when the first ones start,
    not at import)."""
    atexit.register(_shutdown_all)


class _MultiProcessIter(_BaseIter):
    """The main process's side of the worker protocol (see ``_worker``'s module doc)."""

    def __init__(self, loader):
        super().__init__(loader)
        lo = self._cfg
        n = lo.num_workers
        ctx = lo.multiprocessing_context
        ctx = multiprocessing.get_context(ctx) if ctx is None or isinstance(ctx, str) else ctx
        self._result_queue = ctx.Queue()
        self._done_event = ctx.Event()
        self._index_queues, self._workers = [], []
        self._shut_down = False
        _register_atexit()
        _live.add(self)
        try:
            for wid in range(n):
                q = ctx.Queue()
                q.cancel_join_thread()            # never let an unread task block our exit
                w = ctx.Process(target=_worker.worker_loop, daemon=True, name=f"tinyconv-loader-{wid}",
                                args=(lo.dataset, lo.iterable, q, self._result_queue, self._done_event,
                                      lo.auto_collation, lo.collate_fn, lo.drop_last, self._base_seed,
                                      lo.worker_init_fn, wid, n, os.getpid()))
                w.start()
                self._index_queues.append(q)
                self._workers.append(w)
        except BaseException:
            self._shutdown_workers()
            raise
        self._epoch = 0
        self._start_epoch()

    # -- bookkeeping ---------------------------------------------------------------
    def _start_epoch(self):
        self._active = [True] * len(self._workers)
        self._sent = {}                     # task id -> worker, until its batch is handed out
        self._ready = {}                    # task id -> batch that arrived ahead of its turn
        self._next_send = 0
        self._turn = itertools.cycle(range(len(self._workers)))
        self._sampler_done = False
        self._refill()

    def _reset(self, loader):
        """Next epoch with the same (persistent) workers: drain what the last one left."""
        self._batches = iter(loader._index_sampler)
        self._epoch += 1
        resume = _worker._Resume(self._epoch)
        for q in self._index_queues:
            q.put(resume)
        waiting = len(self._workers)
        while waiting:
            task_id, _ = self._get()
            waiting -= task_id == resume
        self._start_epoch()

    def _refill(self):
        cap = self._cfg.prefetch_factor * len(self._workers)
        while len(self._sent) < cap and not self._sampler_done and any(self._active):
            try:
                indices = next(self._batches)
            except StopIteration:
                self._sampler_done = True
                return
            w = next(i for i in self._turn if self._active[i])
            self._index_queues[w].put((self._next_send, indices))
            self._sent[self._next_send] = w
            self._next_send += 1

    def _get(self):
        """The next (task id, data) from any worker; errors if workers died or the timeout passed."""
        timeout = self._cfg.timeout
        while True:
            try:
                return self._result_queue.get(timeout=timeout or _worker.STATUS_INTERVAL)
            except queue.Empty:
                dead = [w.pid for w, active in zip(self._workers, self._active)
                        if active and not w.is_alive()]
                if dead:
                    self._shutdown_workers()
                    raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(map(str, dead))}) exited "
                                       "unexpectedly") from None
                if timeout:
                    self._shutdown_workers()
                    raise RuntimeError(f"DataLoader timed out after {timeout} seconds") from None

    def _hand_out(self, task_id, data):
        del self._sent[task_id]
        self._refill()
        if isinstance(data, _worker._Failure):
            self._shutdown_workers()
            data.reraise()
        return data

    def __next__(self):
        if self._shut_down:
            raise StopIteration
        while True:
            # a worker whose IterableDataset copy ran out answers none of its later tasks
            for t in [t for t, w in self._sent.items() if not self._active[w] and t not in self._ready]:
                del self._sent[t]
            self._refill()
            if not self._sent:
                if not self._cfg.persistent_workers:
                    self._shutdown_workers()
                raise StopIteration
            head = min(self._sent)                        # the batch whose turn it is
            if head in self._ready:
                return self._hand_out(head, self._ready.pop(head))
            task_id, data = self._get()
            if isinstance(data, _worker._IterableEnd):
                self._active[data.worker_id] = False
                if not self._cfg.persistent_workers:
                    self._index_queues[data.worker_id].put(None)      # let it exit now
            elif task_id == head or not self._cfg.in_order:
                return self._hand_out(task_id, data)
            else:
                self._ready[task_id] = data

    # -- shutdown ------------------------------------------------------------------
    def _shutdown_workers(self):
        """Stop every worker: ask, wait a moment, then terminate; idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        _live.discard(self)
        try:
            self._done_event.set()
            for q in self._index_queues:
                try:
                    q.put(None)
                except (OSError, ValueError):      # the queue is already closed
                    pass
            for w in self._workers:
                w.join(timeout=_worker.STATUS_INTERVAL)
            for q in self._index_queues:
                q.close()
            self._result_queue.cancel_join_thread()
            self._result_queue.close()
        finally:
            for w in self._workers:
                if w.is_alive():
                    w.terminate()
                    w.join()

    def __del__(self):
        if not getattr(self, "_shut_down", True):
            self._shutdown_workers()

