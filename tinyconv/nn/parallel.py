"""``DistributedDataParallel``: one model replica per rank, gradients averaged during backward.

    dist.init_process_group("mpi")
    model = DistributedDataParallel(net)       # every rank now holds rank 0's weights
    loss_fn(model(x_shard), y_shard).backward() # .grad is the mean over all ranks' batches
    opt.step()

How (as PyTorch's reducer): the trainable parameters are grouped, in reverse order of
registration (roughly the order backward produces their gradients), into buckets of
at most ``bucket_cap_mb``.  A post-accumulate-grad hook marks a parameter ready; when
a bucket's last parameter is ready its gradients are copied into one flat buffer and
a non-blocking all-reduce (MPI ``Iallreduce``; NCCL on a side stream) starts, while
backward goes on with earlier layers.  MPI progresses a non-blocking collective only
inside MPI calls, so every later hook tests the launched buckets.  At the end of
backward (a callback queued with :func:`tinyconv.autograd.queue_callback`) every
bucket is waited for and its mean is copied back into each ``.grad``.  A parameter
that got no gradient this pass contributes zeros (every rank must reduce the same
buckets).

``no_sync()`` skips the reduction, so gradients accumulate locally; the next synced
backward then averages the accumulated sums.  With ``broadcast_buffers=True`` (the
default) rank 0's buffers (BatchNorm's running statistics) are broadcast to all ranks
at the start of each forward run with gradients enabled and outside ``no_sync`` (PyTorch's rule).
"""
import contextlib

from .. import backend
from .. import distributed as dist
from ..autograd import Tensor, is_grad_enabled, queue_callback
from .module import Module


class _Bucket:
    def __init__(self, params):
        self.params, self.ready, self.work, self.flat = params, set(), None, None

    def launch(self):
        """Flatten the gradients (zeros for a missing one) and start their all-reduce."""
        p0 = self.params[0]
        xp = backend.array_module(p0.array)
        self.flat = Tensor(xp.concatenate([
            (p.grad.array if p.grad is not None else xp.zeros(p.shape, p.dtype)).reshape(-1)
            for p in self.params]))
        self.work = dist.all_reduce(self.flat, dist.ReduceOp.SUM, async_op=True)

    def finish(self, world):
        self.work.wait()
        flat, offset = self.flat.array / world, 0
        for p in self.params:
            g = flat[offset:offset + p.array.size].reshape(p.shape)
            offset += p.array.size
            if p.grad is None:
                p.grad = Tensor(g.copy())
            else:
                p.grad.array[...] = g
                p.grad._version_counter.n += 1
        self.ready, self.work, self.flat = set(), None, None


class DistributedDataParallel(Module):
    """Data parallelism over the default process group, as ``torch.nn.parallel.DistributedDataParallel``.

    ``module`` is the wrapped model (``state_dict`` keys start with ``module.``).
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False,
                 gradient_as_bucket_view=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a Module, got {type(module).__name__}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: Default process group has not been initialized, "
                               "please make sure to call init_process_group.")
        if process_group is not None:
            raise NotImplementedError("DistributedDataParallel: only the default process group "
                                      "(process_group=None) is supported")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self.world_size = dist.get_world_size()
        for t in list(module.parameters()) + list(module.buffers()):   # everyone starts as rank 0
            dist.broadcast(t, 0)
        self._buckets, self._bucket_of = self._make_buckets(module, bucket_cap_mb * 2 ** 20), {}
        for b in self._buckets:
            for p in b.params:
                self._bucket_of[id(p)] = b
                p.register_post_accumulate_grad_hook(self._grad_ready)
        self._finishing = False

    @staticmethod
    def _make_buckets(module, cap_bytes):
        buckets, current, size = [], [], 0
        for p in reversed([p for p in module.parameters() if p.requires_grad]):
            same_kind = not current or (current[0].dtype == p.dtype and current[0].device == p.device)
            if current and (size + p.array.nbytes > cap_bytes or not same_kind):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.array.nbytes
        if current:
            buckets.append(_Bucket(current))
        return buckets

    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self.require_backward_grad_sync and is_grad_enabled() \
                and self.world_size > 1:
            for b in self.module.buffers():
                dist.broadcast(b, 0)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, backward only accumulates ``.grad`` locally (no communication)."""
        old, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def _grad_ready(self, p):
        if not self.require_backward_grad_sync:
            return
        if not self._finishing:
            self._finishing = True
            queue_callback(self._finish_backward)
        bucket = self._bucket_of[id(p)]
        bucket.ready.add(id(p))
        if len(bucket.ready) == len(bucket.params) and bucket.work is None:
            bucket.launch()
        for b in self._buckets:             # MPI moves a non-blocking collective's data only
            if b.work is not None:          # inside MPI calls: a test at each hook lets the
                b.work.is_completed()       # launched buckets progress while backward goes on

    def _finish_backward(self):
        """End of backward: launch what is left (in bucket order, the same on every rank), wait all."""
        self._finishing = False
        for b in self._buckets:
            if b.work is None:
                b.launch()
        for b in self._buckets:
            b.finish(self.world_size)
