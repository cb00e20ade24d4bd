"""``tinyconv.distributed``: PyTorch's ``torch.distributed`` names, over MPI (CPU) and NCCL (GPU).

    mpiexec -n 2 python train.py          # pip install "tinyconv[dist]" brings mpi4py and MPICH

    import tinyconv.distributed as dist
    dist.init_process_group("mpi")        # rank and world size from the MPI launcher
    dist.all_reduce(t)                     # in place: t becomes the sum over the ranks

Transport is never home-made: the ``"mpi"`` backend calls mpi4py's buffer methods
(``Iallreduce``, ``Ibcast``, ...: the array's memory goes to MPI as it is, no pickling);
``"nccl"`` calls ``cupy.cuda.nccl`` (see :mod:`.nccl`), its unique id broadcast over MPI.
A CuPy array under the ``"mpi"`` backend is staged through host memory.

Every collective is non-blocking underneath and its wait polls with a deadline
(``timeout=``, 30 minutes by default as in PyTorch): a rank that dies or stops
calling makes the others raise :class:`DistBackendError` naming the collective, never
hang.  After such an error the process group is broken and the process ends with
``MPI_Abort`` instead of waiting forever in ``MPI_Finalize`` for the lost rank.
"""
import atexit
import datetime
import os
import sys
import time

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["DistBackendError", "ReduceOp", "Work", "all_gather", "all_reduce", "barrier", "broadcast",
           "destroy_process_group", "get_backend", "get_local_rank", "get_rank", "get_world_size",
           "init_process_group",
           "is_available", "is_initialized", "is_mpi_available", "is_nccl_available", "reduce_scatter"]

default_pg_timeout = datetime.timedelta(minutes=30)


class DistBackendError(RuntimeError):
    """A collective failed or timed out (as ``torch.distributed.DistBackendError``)."""


class ReduceOp:
    """How ``all_reduce`` / ``reduce_scatter`` combine the ranks' tensors."""
    SUM, PRODUCT, MIN, MAX, AVG = "sum", "product", "min", "max", "avg"


def is_mpi_available():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_nccl_available():
    try:
        from cupy.cuda import nccl  # noqa: F401
    except Exception:
        return False
    return True


def is_available():
    return True


class _Group:
    """The default process group: the MPI communicator, the timeout, the NCCL one if any."""

    def __init__(self, backend_name, comm, timeout, nccl_comm=None):
        self.backend, self.comm, self.timeout, self.nccl = backend_name, comm, timeout, nccl_comm
        self.rank, self.size, self.broken = comm.Get_rank(), comm.Get_size(), False
        self.device = None                  # the GPU index the "nccl" backend made current


_group = None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError("tinyconv.distributed: the 'mpi' backend needs mpi4py and an MPI library: "
                           f'pip install "tinyconv[dist]" (import failed: {e})') from None
    return MPI


def _seconds(timeout):
    if timeout is None:
        timeout = default_pg_timeout
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not seconds > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    return seconds


def _env_int(name, who="init_process_group"):
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{who}: environment variable {name}={value!r} is not an integer") from None


#: the environment variables by which launchers give a process's rank among those on its
#: machine: torchrun, Open MPI, MPICH/Hydra and Intel MPI, PMIx, Slurm (the first one set wins)
LOCAL_RANK_VARS = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                   "PMIX_LOCAL_RANK", "SLURM_LOCALID")


def get_local_rank():
    """This process's rank among the ranks on its machine (0 ... ranks per machine - 1).

    From the launcher's variables (:data:`LOCAL_RANK_VARS`: ``LOCAL_RANK`` as torchrun
    sets it, ``OMPI_COMM_WORLD_LOCAL_RANK``, ``MPI_LOCALRANKID``, ...); where none is set,
    MPI's own answer (the rank in the shared-memory split of the world) once in a process
    group, and 0 for a process on its own."""
    for name in LOCAL_RANK_VARS:
        value = _env_int(name, "get_local_rank")
        if value is not None:
            return value
    if _group is not None:
        MPI = _mpi()
        node = _group.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_rank()
        finally:
            node.Free()
    return 0


def _use_local_gpu(device_id, rank):
    """Make ``device_id`` (None: local rank modulo the GPUs seen) CuPy's current device."""
    import cupy
    count = cupy.cuda.runtime.getDeviceCount()
    if count < 1:
        raise RuntimeError(f"init_process_group: rank {rank} sees no GPU for the 'nccl' backend")
    index = get_local_rank() % count if device_id is None else _device_index(device_id)
    if not 0 <= index < count:
        raise ValueError(f"init_process_group: device_id {device_id!r} is not one of the {count} GPU(s) "
                         f"rank {rank} sees")
    cupy.cuda.Device(index).use()
    return index


def _device_index(device_id):
    if isinstance(device_id, int) and not isinstance(device_id, bool):
        return device_id
    dev = backend.device(device_id)
    if dev.type != "cuda":
        raise ValueError(f"init_process_group: device_id must be a CUDA device, got {device_id!r}")
    return 0 if dev.index is None else dev.index


def init_process_group(backend="mpi", init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the default process group.

    Rank and world size come from the MPI launcher (``mpiexec -n N``; a plain
    ``python`` is one rank of one).  ``rank``/``world_size`` arguments and the
    ``RANK``/``WORLD_SIZE`` environment variables, where given, must agree with it.
    ``init_method`` and ``MASTER_ADDR``/``MASTER_PORT`` are not needed: MPI already
    connects the ranks.

    With ``"nccl"`` each rank first makes its GPU CuPy's current device: ``device_id``
    (an index, ``"cuda:N"``) where given, else its local rank (:func:`get_local_rank`)
    modulo the GPUs it sees, so ``mpirun -n 8`` on an 8-GPU machine puts one rank on
    each GPU, as torchrun users' ``set_device(LOCAL_RANK)`` does.
    """
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be 'mpi' or 'nccl', got {backend!r}")
    if init_method not in (None, "env://") and not str(init_method).startswith("mpi"):
        raise ValueError(f"init_process_group: init_method {init_method!r} is not supported; tinyconv's "
                         "ranks meet through the MPI launcher (leave init_method=None)")
    seconds = _seconds(timeout)
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    for what, given, env, actual in (("rank", rank, "RANK", comm.Get_rank()),
                                     ("world_size", world_size, "WORLD_SIZE", comm.Get_size())):
        for source, value in ((what, given), (env, _env_int(env))):
            if value is not None and value != -1 and value != actual:
                raise ValueError(f"init_process_group: {source}={value} but the MPI launcher gives "
                                 f"{what} {actual} (run with mpiexec -n N, or leave {source} unset)")
    group = _Group(backend, comm, seconds)
    if backend == "nccl":
        from . import nccl
        _group = group                                      # get_local_rank may ask MPI
        try:
            group.device = _use_local_gpu(device_id, group.rank)
            group.nccl = nccl.Communicator(comm, group.rank, group.size)
        except BaseException:
            _group = None
            raise
    _group = group
    atexit.register(_abort_if_broken)


def _abort_if_broken():
    if _group is not None and _group.broken:
        # the error is written by now; MPI_Abort makes the launcher kill the job, and lines
        # still in its stdio pipes can be lost: flush, and give it a moment to forward them
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        time.sleep(1.0)
        _group.comm.Abort(1)


def _default_group(op, group=None):
    if group is not None:
        raise NotImplementedError(f"{op}: only the default process group (group=None) is supported")
    if _group is None:
        raise RuntimeError(f"{op}: Default process group has not been initialized, please make sure to "
                           "call init_process_group.")
    if _group.broken:
        raise DistBackendError(f"{op}: the process group is broken by an earlier failed collective")
    return _group


def is_initialized():
    return _group is not None


def get_rank(group=None):
    return _default_group("get_rank", group).rank


def get_world_size(group=None):
    return _default_group("get_world_size", group).size


def get_backend(group=None):
    return _default_group("get_backend", group).backend


def destroy_process_group(group=None):
    """Leave the process group (MPI itself is finalized at exit, by mpi4py)."""
    global _group
    if _group is not None and _group.nccl is not None and not _group.broken:
        _group.nccl.destroy()
    _group = None


# --------------------------------------------------------------------------- waiting with a deadline


def _wait_request(test, what, seconds, on_timeout=None):
    """Poll ``test()`` (True when done) until done or ``seconds`` have passed; then raise."""
    deadline = time.monotonic() + seconds
    pause = 0.0
    while not test():
        if time.monotonic() > deadline:
            if on_timeout is not None:
                on_timeout()
            raise DistBackendError(what)
        time.sleep(pause)
        pause = min(1e-3, pause + 1e-5)


class Work:
    """What an ``async_op=True`` collective returns: ``wait()`` finishes it (as PyTorch's Work)."""

    def __init__(self, group, name, request, finish=None):
        self.group, self.name, self.request, self.finish, self.done = group, name, request, finish, False

    def is_completed(self):
        return self.done or bool(self.request.Test())

    def wait(self, timeout=None):
        if self.done:
            return True
        g = self.group
        seconds = g.timeout if timeout is None else _seconds(timeout)

        def broken():
            g.broken = True

        _wait_request(self.request.Test, f"tinyconv.distributed: {self.name} on rank {g.rank} of {g.size} "
                      f"did not complete within {seconds:g} s: another rank died, hung or stopped "
                      f"calling {self.name} (timeout={seconds:g} s, set by init_process_group)",
                      seconds, broken)
        self.done = True
        if self.finish is not None:
            self.finish()
        return True


class _DoneWork(Work):
    def __init__(self, finish=None):
        if finish is not None:
            finish()
        self.done = True

    def is_completed(self):
        return True


# --------------------------------------------------------------------------- buffers


def _check_tensor(op, t, name="tensor"):
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")


def _host_buffer(t):
    """A C-contiguous NumPy array MPI can read and write, and how to put it back into ``t``."""
    a = t.array
    if backend.is_cuda_array(a):
        host = a.get()

        def back(buf):
            a[...] = backend.array_module(a).asarray(buf)
        return host, back
    if a.flags.c_contiguous and a.flags.writeable:
        return a, (lambda buf: None)
    host = np.ascontiguousarray(a)

    def back(buf):
        a[...] = buf
    return host, back


def _written(t):
    t._version_counter.n += 1        # an in-place write, as PyTorch's collectives count it


def _mpi_op(op, name):
    MPI = _mpi()
    ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
           ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}
    if op not in ops:
        raise ValueError(f"{name}: op must be a ReduceOp (SUM, PRODUCT, MIN, MAX, AVG), got {op!r}")
    return ops[op]


def _run(g, name, start, finish, async_op):
    """Start a non-blocking MPI call; return its Work (async) or wait for it now."""
    work = Work(g, name, start(), finish)
    if async_op:
        return work
    work.wait()
    return None


def _use_nccl(g, *tensors):
    return g.nccl is not None and all(backend.is_cuda_array(t.array) and t.array.flags.c_contiguous
                                      for t in tensors)


# --------------------------------------------------------------------------- collectives


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` over all ranks, in place: every rank ends with the result."""
    _check_tensor("all_reduce", tensor)
    g = _default_group("all_reduce", group)
    mpi_op = _mpi_op(op, "all_reduce")
    if _use_nccl(g, tensor):
        return g.nccl.all_reduce(tensor.array, op, async_op, lambda: _written(tensor))
    buf, back = _host_buffer(tensor)

    def finish():
        if op == ReduceOp.AVG:
            np.divide(buf, g.size, out=buf, casting="unsafe")
        back(buf)
        _written(tensor)
    if g.size == 1:
        return _DoneWork(finish) if async_op else finish()
    return _run(g, "all_reduce", lambda: g.comm.Iallreduce(_mpi().IN_PLACE, buf, mpi_op), finish, async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor``."""
    _check_tensor("broadcast", tensor)
    g = _default_group("broadcast", group)
    if not 0 <= src < g.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {g.size}), got {src}")
    if _use_nccl(g, tensor):
        return g.nccl.broadcast(tensor.array, src, async_op, lambda: _written(tensor))
    buf, back = _host_buffer(tensor)

    def finish():
        if g.rank != src:
            back(buf)
            _written(tensor)
    if g.size == 1:
        return _DoneWork() if async_op else None
    return _run(g, "broadcast", lambda: g.comm.Ibcast(buf, root=src), finish, async_op)


def _same_as(op, ref, ts, names):
    for i, t in enumerate(ts):
        _check_tensor(op, t, f"{names}[{i}]")
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise ValueError(f"{op}: {names}[{i}] has shape {tuple(t.shape)} and dtype {t.dtype}, "
                             f"expected shape {tuple(ref.shape)} and dtype {ref.dtype}")


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor``, on every rank."""
    _check_tensor("all_gather", tensor)
    g = _default_group("all_gather", group)
    if len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list must hold world_size={g.size} tensors, "
                         f"got {len(tensor_list)}")
    _same_as("all_gather", tensor, tensor_list, "tensor_list")
    send = np.ascontiguousarray(backend.to_device(tensor.array, "cpu"))
    recv = np.empty((g.size,) + send.shape, send.dtype)

    def finish():
        for t, part in zip(tensor_list, recv):
            t.array[...] = backend.array_module(t.array).asarray(part)
            _written(t)
    if g.size == 1:
        recv[0] = send
        return _DoneWork(finish) if async_op else finish()
    return _run(g, "all_gather", lambda: g.comm.Iallgather(send, recv), finish, async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``input_list`` over the ranks; rank r's ``output`` gets the r-th reduced tensor."""
    _check_tensor("reduce_scatter", output)
    g = _default_group("reduce_scatter", group)
    mpi_op = _mpi_op(op, "reduce_scatter")
    if len(input_list) != g.size:
        raise ValueError(f"reduce_scatter: input_list must hold world_size={g.size} tensors, "
                         f"got {len(input_list)}")
    _same_as("reduce_scatter", output, input_list, "input_list")
    send = np.stack([np.asarray(backend.to_device(t.array, "cpu")) for t in input_list])
    recv = np.empty(output.shape, send.dtype)

    def finish():
        if op == ReduceOp.AVG:
            np.divide(recv, g.size, out=recv, casting="unsafe")
        output.array[...] = backend.array_module(output.array).asarray(recv)
        _written(output)
    if g.size == 1:
        recv[...] = send[0]
        return _DoneWork(finish) if async_op else finish()
    return _run(g, "reduce_scatter", lambda: g.comm.Ireduce_scatter_block(send, recv, mpi_op),
                finish, async_op)


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank has called ``barrier``."""
    g = _default_group("barrier", group)
    if g.size == 1:
        return _DoneWork() if async_op else None
    return _run(g, "barrier", g.comm.Ibarrier, None, async_op)
