"""The ``"nccl"`` backend: CuPy arrays reduced by NCCL (``cupy.cuda.nccl``), GPU to GPU.

Rank 0 makes NCCL's unique id; MPI broadcasts its 128 bytes to the other ranks (as a
NumPy buffer); each rank then joins ``NcclCommunicator(world_size, uid, rank)``.  Each
rank uses CuPy's current device, which ``init_process_group`` sets first (its
``device_id``, else the launcher's local rank modulo the GPUs seen).

The collectives run on a side stream that first waits for the current stream (so it
sees the values the compute wrote), and record an event when done.  ``wait`` polls
that event against the deadline; on timeout the communicator is aborted
(``ncclCommAbort``) so no kernel is left waiting for a lost rank.  This module imports
CuPy only when a communicator is made.
"""
import numpy as np

UNIQUE_ID_BYTES = 128


def _dtype(nccl, dt):
    table = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
             "int8": nccl.NCCL_INT8, "uint8": nccl.NCCL_UINT8, "int32": nccl.NCCL_INT32,
             "int64": nccl.NCCL_INT64}
    if str(dt) not in table:
        raise TypeError(f"tinyconv.distributed (nccl): dtype {dt} is not supported, "
                        f"expected one of {sorted(table)}")
    return table[str(dt)]


def _op(nccl, op):
    from . import ReduceOp
    return {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_SUM, ReduceOp.PRODUCT: nccl.NCCL_PROD,
            ReduceOp.MIN: nccl.NCCL_MIN, ReduceOp.MAX: nccl.NCCL_MAX}[op]


def _ptr(a):
    """The device address of a CuPy array's first element."""
    return a.data.ptr


class _EventRequest:
    """An MPI-request look-alike for a CUDA event, so :class:`Work` waits on either."""

    def __init__(self, event, comm):
        self.event, self.comm = event, comm

    def Test(self):
        self.comm.check_async_error()
        return self.event.done


def unique_id(mpi_comm, rank, nccl):
    """Rank 0's NCCL unique id, on every rank (broadcast over MPI as bytes, not pickled)."""
    buf = np.zeros(UNIQUE_ID_BYTES, np.int8)
    if rank == 0:
        buf[:] = np.array(nccl.get_unique_id(), dtype=np.int64).astype(np.int8)
    mpi_comm.Bcast(buf, root=0)
    return tuple(int(b) for b in buf)


class Communicator:
    def __init__(self, mpi_comm, rank, size):
        import cupy
        from cupy.cuda import nccl
        self.cupy, self.nccl, self.rank, self.size = cupy, nccl, rank, size
        self.comm = nccl.NcclCommunicator(size, unique_id(mpi_comm, rank, nccl), rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _launch(self, name, call, async_op, finish):
        from . import Work, _default_group
        cupy = self.cupy
        ready = cupy.cuda.Event()
        ready.record(cupy.cuda.get_current_stream())
        self.stream.wait_event(ready)
        call(self.stream.ptr)
        done = cupy.cuda.Event()
        done.record(self.stream)
        group = _default_group(name)

        def on_done():
            cupy.cuda.get_current_stream().wait_event(done)
            if finish is not None:
                finish()
        work = Work(group, name, _EventRequest(done, self.comm), on_done)
        work.abort = self.comm.abort
        if async_op:
            return work
        try:
            work.wait()
        except Exception:
            self.comm.abort()
            raise
        return None

    def all_reduce(self, a, op, async_op, finish):
        from . import ReduceOp
        n = self.nccl

        def after():
            if op == ReduceOp.AVG:
                a[...] = a / self.size
            finish()
        return self._launch("all_reduce", lambda s: self.comm.allReduce(
            _ptr(a), _ptr(a), a.size, _dtype(n, a.dtype), _op(n, op), s), async_op, after)

    def broadcast(self, a, src, async_op, finish):
        n = self.nccl
        return self._launch("broadcast", lambda s: self.comm.bcast(
            _ptr(a), a.size, _dtype(n, a.dtype), src, s), async_op, finish)

    def destroy(self):
        self.comm.destroy()
