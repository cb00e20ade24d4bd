"""What runs inside a DataLoader worker process, and the messages it exchanges.

Each worker owns an *index queue* (tasks from the main process) and shares one
*result queue*.  A task is ``(task_id, indices)``; the worker fetches and collates
that batch and puts ``(task_id, batch)`` back, or ``(task_id, _Failure)`` if it
raised.  ``None`` on the index queue means "exit"; a :class:`_Resume` (persistent
workers, next epoch) means "start over", answered with the same object once every
earlier task is done, so the main process knows the stale results have drained.

For an IterableDataset the indices are placeholders: the worker pulls the next
``batch_size`` samples from its own iterator, and answers
:class:`_IterableEnd` once its copy is exhausted.
"""
import dataclasses
import os
import queue
import random
import traceback

import numpy as np

STATUS_INTERVAL = 1.0       # seconds between "is my parent alive?" / "are my workers alive?" checks

_info = None                # this process's WorkerInfo (None in the main process)


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """What :func:`get_worker_info` tells code running in a worker."""
    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info():
    """In a DataLoader worker process its :class:`WorkerInfo` (``id``, ``num_workers``,
    ``seed``, ``dataset``: this worker's copy); None in the main process."""
    return _info


class _Failure:
    """An exception raised in a worker, carried to the main process as text."""

    def __init__(self, worker_id, exc):
        self.exc_type = type(exc)
        self.message = (f"Caught {type(exc).__name__} in DataLoader worker process {worker_id}.\n"
                        f"Original {traceback.format_exc()}")

    def reraise(self):
        """Raise the same exception type with the worker's traceback in its message."""
        msg = self.message
        if self.exc_type is KeyError:            # KeyError would repr() the message: keep it readable
            msg = _KeyErrorMessage(msg)
        try:
            exc = self.exc_type(msg)
        except Exception:                        # an exception type that wants other arguments
            raise RuntimeError(msg) from None
        raise exc


class _KeyErrorMessage(str):
    def __repr__(self):
        return str(self)


@dataclasses.dataclass(frozen=True)
class _Resume:
    epoch: int


@dataclasses.dataclass(frozen=True)
class _IterableEnd:
    worker_id: int


def fetch(dataset, indices, collate_fn, auto_collation, iterator=None, drop_last=False):
    """One batch: the samples at ``indices`` (or, with ``iterator``, the next
    ``len(indices)`` of an IterableDataset), collated.  StopIteration when an
    iterator has nothing (or, with ``drop_last``, too little) left."""
    if iterator is not None:
        if not auto_collation:
            return collate_fn(next(iterator))
        data = []
        for _ in indices:
            try:
                data.append(next(iterator))
            except StopIteration:
                break
        if not data or (drop_last and len(data) < len(indices)):
            raise StopIteration
        return collate_fn(data)
    if not auto_collation:
        return collate_fn(dataset[indices])
    many = getattr(dataset, "__getitems__", None)
    data = many(indices) if callable(many) else [dataset[i] for i in indices]
    return collate_fn(data)


def seed_worker(base_seed, worker_id):
    """Seed Python's, NumPy's and tinyconv's generators for worker ``worker_id``
    (PyTorch seeds ``random`` and torch with ``base_seed + worker_id``)."""
    from ... import random as _random
    seed = base_seed + worker_id
    random.seed(seed)
    _random.manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    return seed


def worker_loop(dataset, iterable, index_queue, result_queue, done_event, auto_collation, collate_fn,
                drop_last, base_seed, init_fn, worker_id, num_workers, parent_pid):
    """The body of worker process ``worker_id``; returns when told to, or when its
    parent is gone."""
    global _info
    try:
        seed = seed_worker(base_seed, worker_id)
        _info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
        init_failure, iterator, exhausted = None, None, False
        try:
            if init_fn is not None:
                init_fn(worker_id)
            if iterable:
                iterator = iter(dataset)                   # this worker's own pass over its copy
        except Exception as e:
            init_failure = _Failure(worker_id, e)          # reported with the first task
        while True:
            try:
                task = index_queue.get(timeout=STATUS_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent_pid:            # the main process died: stop
                    return
                continue
            if task is None or done_event.is_set():
                break
            if isinstance(task, _Resume):
                if iterable:
                    try:
                        iterator, exhausted = iter(dataset), False
                    except Exception as e:
                        init_failure = _Failure(worker_id, e)
                result_queue.put((task, None))
                continue
            task_id, indices = task
            if init_failure is not None:
                data, init_failure = init_failure, None
            elif exhausted:
                continue                                   # the main process knows; ignore leftovers
            else:
                try:
                    data = fetch(dataset, indices, collate_fn, auto_collation,
                                 iterator if iterable else None, drop_last)
                except StopIteration:
                    exhausted = True
                    data = _IterableEnd(worker_id)
                except Exception as e:
                    data = _Failure(worker_id, e)
            result_queue.put((task_id, data))
            del data
    except KeyboardInterrupt:                              # Ctrl-C: the main process handles it
        pass
    if done_event.is_set():
        result_queue.cancel_join_thread()                  # nobody will read what is left
        result_queue.close()

