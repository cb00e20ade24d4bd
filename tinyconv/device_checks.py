"""Input checks that run on the GPU and report at the next host read (no sync of their own).

Checking a value that lives on the device (is every class target in range?) means
reading it back, and a read waits for every kernel queued before it: one such check per
training step serialises the CPU with the GPU.  So on a GPU an op computes its check on
the device into a small int64 *record* and hands it here with :func:`defer`, together
with a function that turns the record, once on the host, into the error (or None).
The records are read, all in one transfer, by :func:`raise_pending`, which runs whenever
tinyconv reads a device array anyway: ``Tensor.item()`` (so ``loss.item()``), ``float()``,
``tolist()``, ``.cpu()`` / ``.to("cpu")``, ``tinyconv.cuda.synchronize()``, and the
training loop's reads at each logging point.  The error then names the op, the bad
value and the limit, as the CPU's immediate check does.

On the CPU nothing is deferred: the checks there are immediate, as before.
"""
import numpy as np

#: pending (record, make_error) pairs, oldest first
_pending = []
#: read the records once this many are pending (a loop that never reads anything back
#: still reports a bad input within this many checks)
MAX_PENDING = 256


def defer(record, make_error):
    """Hold ``record`` (a 1-d int64 device array) until the next host read; then
    ``make_error(host_record)`` gives the exception to raise, or None."""
    _pending.append((record, make_error))
    if len(_pending) >= MAX_PENDING:
        raise_pending()


def pending():
    """How many deferred checks wait for the next host read."""
    return len(_pending)


def raise_pending():
    """Read every pending record (one device-to-host copy per GPU) and raise the first error.

    The records are dropped whether or not one fails, so an error is raised once.
    """
    if not _pending:
        return
    items = list(_pending)
    _pending.clear()
    by_device = {}
    for i, (record, _) in enumerate(items):
        by_device.setdefault(record.device.id, []).append(i)
    host = [None] * len(items)
    import cupy
    for dev, idx in by_device.items():
        with cupy.cuda.Device(dev):
            flat = cupy.concatenate([items[i][0].ravel() for i in idx]).get()
        start = 0
        for i in idx:
            n = items[i][0].size
            host[i] = np.asarray(flat[start:start + n])
            start += n
    for (_, make_error), h in zip(items, host):
        err = make_error(h)
        if err is not None:
            raise err
