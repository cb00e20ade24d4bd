"""tinyconv.distributed, DistributedDataParallel and DistributedSampler.

The multi-rank tests launch 2 ranks with ``mpiexec`` (the MPICH wheel of the ``dist``
extra puts it beside the venv's python), each run bounded by a subprocess timeout; they
skip, saying why, where mpi4py or mpiexec is missing.  Each rank script asserts its
own results and exits non-zero on a failure; the test shows both ranks' output.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinyconv
import tinyconv.distributed as dist
from tinyconv.utils.data import DistributedSampler

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
needs_mpi = pytest.mark.skipif(not dist.is_mpi_available() or MPIEXEC is None,
                               reason="needs mpi4py and mpiexec: pip install 'tinyconv[dist]'")

PRELUDE = """
import sys
import numpy as np
import tinyconv
import tinyconv.distributed as dist
tinyconv.use_kernels(sys.argv[1] if len(sys.argv) > 1 else "reference")


def done(rank):                  # a file, not stdout, where the ranks' lines may interleave
    open(f"done.{rank}", "w").close()
"""


def run_ranks(tmp_path, body, n=2, args=(), timeout=240, pythonpath=()):
    script = tmp_path / "rank_script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    cmd = [MPIEXEC, "-n", str(n)]
    if "Open MPI" in subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout:
        cmd.append("--oversubscribe")
    path = [*map(str, pythonpath), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(path))
    r = subprocess.run(cmd + [sys.executable, str(script), *args], capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=tmp_path)
    r.cwd = tmp_path
    return r


def check_ok(r, n=2):
    """Every rank exited 0 and reached its end (its done.RANK file in the run's folder)."""
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert sorted(p.name for p in Path(r.cwd).glob("done.*")) == [f"done.{i}" for i in range(n)], out


# --------------------------------------------------------------------------- collectives


@needs_mpi
def test_collectives_on_two_ranks(tmp_path):
    check_ok(run_ranks(tmp_path, """
        dist.init_process_group("mpi")
        r, n = dist.get_rank(), dist.get_world_size()
        assert dist.is_initialized() and n == 2 and dist.get_backend() == "mpi"
        base = np.arange(6.0).reshape(2, 3)
        for op, want in [(dist.ReduceOp.SUM, base * 3), (dist.ReduceOp.AVG, base * 1.5),
                         (dist.ReduceOp.MAX, base * 2), (dist.ReduceOp.MIN, base),
                         (dist.ReduceOp.PRODUCT, base * base * 2)]:
            t = tinyconv.tensor(base * (r + 1))
            v = t._version
            dist.all_reduce(t, op=op)
            assert np.array_equal(t.numpy(), want), (op, t.numpy(), want)
            assert t._version == v + 1
        ints = tinyconv.tensor(np.array([1, 2, 3], np.int64) * (r + 1))
        dist.all_reduce(ints)
        assert ints.dtype == np.int64 and ints.numpy().tolist() == [3, 6, 9]
        m = tinyconv.tensor(base * (r + 1))
        view = m.T                                    # not contiguous: staged and written back
        dist.all_reduce(view)
        assert np.array_equal(m.numpy(), base * 3)
        w = tinyconv.tensor(base * (r + 1))
        work = dist.all_reduce(w, async_op=True)
        assert work.wait() and np.array_equal(w.numpy(), base * 3)
        b = tinyconv.tensor(np.full(4, float(r)))
        dist.broadcast(b, src=1)
        assert b.numpy().tolist() == [1.0] * 4
        outs = [tinyconv.zeros(2, 3, dtype=tinyconv.float64) for _ in range(n)]
        dist.all_gather(outs, tinyconv.tensor(base + 10 * r))
        assert np.array_equal(outs[0].numpy(), base) and np.array_equal(outs[1].numpy(), base + 10)
        out = tinyconv.zeros(3, dtype=tinyconv.float64)
        parts = [tinyconv.tensor(np.full(3, 1.0 + r)), tinyconv.tensor(np.full(3, 10.0 * (r + 1)))]
        dist.reduce_scatter(out, parts)
        assert out.numpy().tolist() == ([3.0] * 3 if r == 0 else [30.0] * 3), out
        dist.barrier()
        try:
            dist.all_gather([outs[0]], tinyconv.tensor(base))
        except ValueError as e:
            assert "world_size=2" in str(e)
        else:
            raise AssertionError("all_gather took a list of the wrong length")
        try:
            dist.broadcast(b, src=2)
        except ValueError as e:
            assert "src must be a rank in [0, 2)" in str(e)
        else:
            raise AssertionError("broadcast took src=2")
        dist.destroy_process_group()
        assert not dist.is_initialized()
        done(r)
    """))


def test_without_a_process_group_the_errors_say_so():
    with pytest.raises(RuntimeError, match="Default process group has not been initialized"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="Default process group has not been initialized"):
        dist.all_reduce(tinyconv.ones(2))
    with pytest.raises(RuntimeError, match="Default process group has not been initialized"):
        tinyconv.nn.parallel.DistributedDataParallel(tinyconv.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="process group is not initialized"):
        DistributedSampler(range(4))
    with pytest.raises(ValueError, match="backend must be 'mpi' or 'nccl'"):
        dist.init_process_group("gloo")
    with pytest.raises(NotImplementedError, match="only the default process group"):
        dist.all_reduce(tinyconv.ones(2), group=object())


@needs_mpi
def test_one_process_group_of_one(tmp_path):
    """A plain python (no launcher) is rank 0 of 1; RANK/WORLD_SIZE that disagree are refused.

    Run in a child process, so MPI is never initialised in the test process itself."""
    script = tmp_path / "single.py"
    script.write_text(PRELUDE + textwrap.dedent("""
        import os
        os.environ["WORLD_SIZE"] = "2"
        try:
            dist.init_process_group("mpi")
        except ValueError as e:
            assert "WORLD_SIZE=2 but the MPI launcher gives world_size 1" in str(e), e
        else:
            raise AssertionError("WORLD_SIZE=2 was accepted in a world of 1")
        os.environ.update(WORLD_SIZE="1", RANK="0")
        dist.init_process_group("mpi", timeout=10)
        assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
        t = tinyconv.tensor([1.0, 2.0])
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        assert t.numpy().tolist() == [1.0, 2.0]
        try:
            dist.init_process_group("mpi")
        except RuntimeError as e:
            assert "twice" in str(e)
        else:
            raise AssertionError("a second init_process_group was accepted")
        dist.destroy_process_group()
        done(0)
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env=env, cwd=tmp_path)
    r.cwd = tmp_path
    check_ok(r, n=1)


# --------------------------------------------------------------------------- a rank that dies


@needs_mpi
def test_a_stopped_rank_makes_the_other_fail_with_a_clear_error(tmp_path):
    r = run_ranks(tmp_path, """
        import os, signal
        dist.init_process_group("mpi", timeout=3)
        t = tinyconv.ones(3)
        dist.all_reduce(t)
        if dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGSTOP)      # alive but never calls again
        dist.all_reduce(t)
        print("NOT REACHED")
    """, timeout=90)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "NOT REACHED" not in out, out
    # the launcher tears the job down (MPICH and Open MPI report the signal), or our deadline fires
    assert "did not complete within 3 s" in out or "Killed" in out or "signal 9" in out, out
    assert "DistBackendError" in out and "all_reduce on rank 0 of 2 did not complete within 3 s" in out, out


@needs_mpi
def test_a_killed_rank_ends_the_job(tmp_path):
    """SIGKILL: the job ends (bounded by the subprocess timeout), saying why, with a failure code."""
    r = run_ranks(tmp_path, """
        import os, signal
        dist.init_process_group("mpi", timeout=3)
        t = tinyconv.ones(3)
        dist.all_reduce(t)
        if dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        dist.all_reduce(t)
        print("NOT REACHED")
    """, timeout=90)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "NOT REACHED" not in out, out
    # the launcher tears the job down (MPICH and Open MPI report the signal), or our deadline fires
    assert "did not complete within 3 s" in out or "Killed" in out or "signal 9" in out, out


# --------------------------------------------------------------------------- DistributedDataParallel

DDP_COMMON = """
from tinyconv import nn
from tinyconv.nn.parallel import DistributedDataParallel as DDP

def make_net():
    tinyconv.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3)).double()

def batches(step, size):
    g = np.random.default_rng(100 + step)
    return tinyconv.tensor(g.standard_normal((size, 2, 5, 5))), tinyconv.tensor(g.integers(0, 3, size))

def close(a, b, name):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=name)

dist.init_process_group("mpi")
r, n = dist.get_rank(), dist.get_world_size()
B = 3
loss_fn = nn.CrossEntropyLoss()
"""


@needs_mpi
@pytest.mark.parametrize("bucket_cap_mb", [25, 1e-4])      # one bucket / one bucket per parameter
def test_ddp_two_ranks_match_one_process_with_twice_the_batch(tmp_path, kernel_mode, bucket_cap_mb):
    check_ok(run_ranks(tmp_path, DDP_COMMON + textwrap.dedent(f"""
        net = make_net()
        if r == 1:                                     # DDP must start every rank from rank 0's weights
            for p in net.parameters():
                p.data.add_(1.0)
        model = DDP(net, bucket_cap_mb={bucket_cap_mb})
        assert model.module is net
        assert list(model.state_dict())[0] == "module.0.weight"
        assert len(model._buckets) == (1 if {bucket_cap_mb} > 1 else 4)
        opt = tinyconv.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        ref = make_net()
        ref_opt = tinyconv.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
        for step in range(3):
            X, y = batches(step, 2 * B)
            opt.zero_grad()
            loss_fn(model(X[r * B:(r + 1) * B]), y[r * B:(r + 1) * B]).backward()
            opt.step()
            ref_opt.zero_grad()
            loss_fn(ref(X), y).backward()
            ref_opt.step()
            for (name, p), q in zip(net.named_parameters(), ref.parameters()):
                close(p.grad, q.grad, name)
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            close(p, q, name)
        done(r)
    """), args=(kernel_mode,)))


@needs_mpi
def test_ddp_in_float32_is_as_accurate_as_one_process(tmp_path, kernel_mode):
    """float32: 2 ranks x B against one process with 2B, both against the float64 truth.

    The two runs compute the same sums in different orders (a rank's mean over B then
    the average of 2, against one mean over 2B; the GEMMs' inner sums split likewise),
    so they differ by float32 rounding: each result's error is bounded by
    gamma_K * sum|terms| (K the terms summed, u = 2^-24), and no finer claim holds
    element by element.  What must hold is that neither order is worse: over each
    parameter, the norm of the two-rank error against the float64 run (same data, same
    start) is within twice the one-process float32 error, plus a floor of 16 u times
    the gradient's norm for a parameter whose one-process error happens to be tiny.
    A wrong average (a sum, a stale or missing bucket) is off by O(1), 10^6 u or more."""
    check_ok(run_ranks(tmp_path, DDP_COMMON + textwrap.dedent("""
        u = 2.0 ** -24

        def check(ours, theirs, exact, what):
            for (name, a), b, c in zip(ours, theirs, exact):
                a, b, c = (np.asarray(t.detach().numpy(), np.float64) for t in (a, b, c))
                mine, one = np.linalg.norm(a - c), np.linalg.norm(b - c)
                assert 0 < one < 1e-5 * np.linalg.norm(c), (what, name, one)   # float32 rounding, > 0
                assert mine <= 2 * one + 16 * u * np.linalg.norm(c), (what, name, mine, one)

        net = make_net().float()
        model = DDP(net)
        opt = tinyconv.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        ref, exact = make_net().float(), make_net()
        ref_opt = tinyconv.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
        exact_opt = tinyconv.optim.SGD(exact.parameters(), lr=0.1, momentum=0.9)
        for step in range(3):
            X, y = batches(step, 2 * B)
            X32 = X.float()
            for o in (opt, ref_opt, exact_opt):
                o.zero_grad()
            loss_fn(model(X32[r * B:(r + 1) * B]), y[r * B:(r + 1) * B]).backward()
            loss_fn(ref(X32), y).backward()
            loss_fn(exact(X), y).backward()
            grads = lambda m: [p.grad for p in m.parameters()]
            check([(n, p.grad) for n, p in net.named_parameters()], grads(ref), grads(exact), f"grad {step}")
            for o in (opt, ref_opt, exact_opt):
                o.step()
        check(list(net.named_parameters()), list(ref.parameters()), list(exact.parameters()), "weights")
        done(r)
    """), args=(kernel_mode,)))


@needs_mpi
def test_ddp_no_sync_accumulates_locally_then_averages(tmp_path):
    check_ok(run_ranks(tmp_path, DDP_COMMON + textwrap.dedent("""
        net = make_net()
        model = DDP(net)
        ref = make_net()
        X1, y1 = batches(0, 2 * B)
        X2, y2 = batches(1, 2 * B)
        local = make_net()
        loss_fn(local(X1[r * B:(r + 1) * B]), y1[r * B:(r + 1) * B]).backward()
        with model.no_sync():
            loss_fn(model(X1[r * B:(r + 1) * B]), y1[r * B:(r + 1) * B]).backward()
        for p, q in zip(net.parameters(), local.parameters()):     # no communication happened
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
        loss_fn(model(X2[r * B:(r + 1) * B]), y2[r * B:(r + 1) * B]).backward()
        loss_fn(ref(X1), y1).backward()
        loss_fn(ref(X2), y2).backward()
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            close(p.grad, q.grad, name)
        done(r)
    """)))


@needs_mpi
def test_ddp_broadcasts_rank_0s_buffers_at_forward(tmp_path):
    check_ok(run_ranks(tmp_path, """
        from tinyconv import nn
        from tinyconv.nn.parallel import DistributedDataParallel as DDP
        dist.init_process_group("mpi")
        r = dist.get_rank()
        net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).double()
        model = DDP(net)
        x = tinyconv.tensor(np.random.default_rng(r).standard_normal((4, 1, 3, 3)))
        model(x)                                       # each rank updates the statistics with its batch
        gathered = [tinyconv.zeros(2, dtype=tinyconv.float64) for _ in range(2)]
        dist.all_gather(gathered, net[1].running_mean)
        assert not np.allclose(gathered[0].numpy(), gathered[1].numpy())
        with tinyconv.no_grad():
            model(x)                                   # no broadcast without gradients (as PyTorch)
        mine = net[1].running_mean.numpy().copy()
        model.eval()
        model(x)                                       # grad enabled: rank 0's buffers first
        dist.all_gather(gathered, net[1].running_mean)
        np.testing.assert_array_equal(gathered[0].numpy(), gathered[1].numpy())
        if r == 0:
            np.testing.assert_array_equal(net[1].running_mean.numpy(), mine)
        done(r)
    """))


# --------------------------------------------------------------------------- DistributedSampler


@pytest.mark.parametrize("n", [10, 11, 3, 1])
@pytest.mark.parametrize("replicas", [1, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_shards_as_pytorch(torch, monkeypatch, n, replicas, drop_last, shuffle):
    """Same shards, lengths and padding as torch's; with shuffle, the same from the same permutation."""
    from torch.utils.data import DistributedSampler as TorchSampler
    if drop_last and n < replicas:
        return
    for rank in range(replicas):
        theirs = TorchSampler(range(n), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=7,
                              drop_last=drop_last)
        ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=7,
                                  drop_last=drop_last)
        for epoch in (0, 3):
            theirs.set_epoch(epoch)
            ours.set_epoch(epoch)
            if shuffle:
                g = torch.Generator()
                g.manual_seed(7 + epoch)
                perm = torch.randperm(n, generator=g).tolist()
                monkeypatch.setattr(ours, "_order", lambda k, perm=perm: list(perm))
            assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_by_seed_and_epoch():
    a = DistributedSampler(range(20), num_replicas=2, rank=0, seed=1)
    b = DistributedSampler(range(20), num_replicas=2, rank=1, seed=1)
    first = list(a)
    assert sorted(first + list(b)) == list(range(20))      # the two shards split one permutation
    assert list(a) == first
    a.set_epoch(1)
    assert list(a) != first and sorted(list(a) + (b.set_epoch(1) or list(b))) == list(range(20))
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


def test_queue_callback_runs_after_backward_and_only_inside_it():
    from tinyconv.autograd import queue_callback
    with pytest.raises(RuntimeError, match="no backward pass is running"):
        queue_callback(lambda: None)
    w = tinyconv.ones(3, requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda p: queue_callback(lambda: seen.append(p.grad.numpy().copy())))
    (w * 2).sum().backward()
    assert [s.tolist() for s in seen] == [[2.0, 2.0, 2.0]]


# --------------------------------------------------------------------------- the NCCL backend's logic

FAKE_NCCL = '''
import ctypes, types
import cupy                                   # tests/fake_cupy: NumPy arrays that say they are cupy
from mpi4py import MPI
import tinyconv.distributed.nccl as tnccl

tnccl._ptr = lambda a: a.ctypes.data          # the fake's "device" memory is host memory
TYPES = {0: np.float32, 1: np.float64, 2: np.int64}
made = []


class FakeComm:
    """NCCL's calls, done by MPI on the memory at the addresses (to check what tinyconv passes)."""
    def __init__(self, ndev, uid, rank):
        made.append((ndev, uid, rank))
    def _view(self, ptr, count, dt):
        dt = np.dtype(TYPES[dt])
        return np.frombuffer((ctypes.c_char * (count * dt.itemsize)).from_address(ptr), dt)
    def allReduce(self, send, recv, count, dt, op, stream):
        assert send == recv and op == 10 and stream == 77
        MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, self._view(recv, count, dt), MPI.SUM)
    def bcast(self, buf, count, dt, root, stream):
        MPI.COMM_WORLD.Bcast(self._view(buf, count, dt), root=root)
    def check_async_error(self):
        pass
    def abort(self):
        pass
    def destroy(self):
        made.append("destroyed")


class Event:
    done = True
    def record(self, stream=None):
        pass


class Stream:
    ptr = 77
    def __init__(self, non_blocking=False):
        pass
    def wait_event(self, event):
        pass


class Device(cupy.cuda.Device):
    """The fake's device, remembering which one each rank made current."""
    def __init__(self, index=None):
        super().__init__(0 if index is None else index)
    def use(self):
        used.append(self.id)


used = []
cupy.cuda.Event, cupy.cuda.Stream, cupy.cuda.Device = Event, Stream, Device
cupy.cuda.runtime.getDeviceCount = lambda: 4                 # one machine with 4 "GPUs"
cupy.cuda.get_current_stream = lambda: Stream()
cupy.cuda.nccl = types.SimpleNamespace(
    get_unique_id=lambda: tuple(int(b) for b in np.random.default_rng().integers(-128, 128, 128)),
    NcclCommunicator=FakeComm, NCCL_FLOAT16=9, NCCL_FLOAT32=0, NCCL_FLOAT64=1, NCCL_INT8=5, NCCL_UINT8=6,
    NCCL_INT32=7, NCCL_INT64=2, NCCL_SUM=10, NCCL_PROD=11, NCCL_MIN=12, NCCL_MAX=13)
sys.modules["cupy.cuda.nccl"] = cupy.cuda.nccl
'''


@needs_mpi
def test_nccl_backend_bootstraps_and_calls_nccl_on_fake_cupy(tmp_path):
    """The NCCL path on fake CuPy: one unique id (broadcast over MPI) on every rank, each rank's
    communicator made with (world, uid, rank), all_reduce/broadcast of "device" arrays through
    NCCL's calls (done here by MPI at the addresses given), everything else staged on the host."""
    r = run_ranks(tmp_path, FAKE_NCCL + textwrap.dedent("""
        import os
        dist.init_process_group("nccl")
        r = dist.get_rank()
        assert os.environ["MPI_LOCALRANKID"] == str(r)         # MPICH's Hydra says the local rank
        assert used == [r] and dist.get_local_rank() == r, used  # each rank made its own GPU current
        (ndev, uid, rank), = made
        assert (ndev, rank, len(uid)) == (2, r, 128)
        uids = MPI.COMM_WORLD.allgather(uid)
        assert uids[0] == uids[1]
        t = tinyconv.Tensor(cupy.asarray(np.arange(4.0) * (r + 1)))
        assert tinyconv.backend.is_cuda_array(t.array)
        dist.all_reduce(t)
        assert np.array_equal(np.asarray(t.array), np.arange(4.0) * 3)
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        assert np.array_equal(np.asarray(t.array), np.arange(4.0) * 3)
        b = tinyconv.Tensor(cupy.asarray(np.full(3, float(r), np.float32)))
        dist.broadcast(b, src=1)
        assert np.array_equal(np.asarray(b.array), np.ones(3, np.float32))
        outs = [tinyconv.Tensor(cupy.asarray(np.zeros(2))) for _ in range(2)]
        dist.all_gather(outs, tinyconv.Tensor(cupy.asarray(np.full(2, float(r)))))   # host-staged
        assert [np.asarray(o.array).tolist() for o in outs] == [[0.0, 0.0], [1.0, 1.0]]
        dist.destroy_process_group()
        assert made[-1] == "destroyed"
        for name in dist.LOCAL_RANK_VARS:                      # no launcher variable: MPI's node split
            os.environ.pop(name, None)
        os.environ["LOCAL_RANK"] = str(5 + r)                  # torchrun's variable comes first: 5 % 4
        dist.init_process_group("nccl")
        assert used[-1] == (5 + r) % 4, used
        del os.environ["LOCAL_RANK"]
        assert dist.get_local_rank() == r                      # both ranks share this machine
        dist.destroy_process_group()
        dist.init_process_group("nccl", device_id="cuda:3")    # an explicit device wins
        assert used[-1] == 3, used
        dist.destroy_process_group()
        try:
            dist.init_process_group("nccl", device_id=4)
        except ValueError as e:
            assert "device_id 4 is not one of the 4 GPU(s)" in str(e), e
        else:
            raise AssertionError("device_id 4 of 4 GPUs was taken")
        assert not dist.is_initialized()
        done(r)
    """), pythonpath=[ROOT / "tests" / "fake_cupy"])
    check_ok(r)


def test_local_rank_comes_from_the_launchers_variables(monkeypatch):
    for name in dist.LOCAL_RANK_VARS:
        monkeypatch.delenv(name, raising=False)
    assert dist.get_local_rank() == 0                          # a process on its own
    for i, name in enumerate(reversed(dist.LOCAL_RANK_VARS)):  # the first in the list wins
        monkeypatch.setenv(name, str(i + 1))
        assert dist.get_local_rank() == i + 1, name
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ValueError, match="get_local_rank: environment variable LOCAL_RANK='x' is not"):
        dist.get_local_rank()


def test_sharded_counter_gives_each_rank_its_slice_of_the_global_dropout_masks(kernel_mode):
    """Two "ranks" (shard_counter(r, 2)) with one seed: with the counter-keyed fast kernels
    their masks of B rows are the halves of the one-process masks of 2B rows, over two
    calls; with the reference kernels they are at least different draws per rank."""
    import tinyconv.nn.functional as F
    from tinyconv.random import shard_counter

    def masks(rows, rank=0, world=1):
        tinyconv.manual_seed(5)
        shard_counter(rank, world)
        try:
            x = tinyconv.ones(rows, 40)
            return [F.dropout(x, 0.5).numpy() for _ in range(2)]
        finally:
            shard_counter()

    one, r0, r1 = masks(6), masks(3, 0, 2), masks(3, 1, 2)
    if kernel_mode == "fast":
        for k in range(2):
            np.testing.assert_array_equal(np.concatenate([r0[k], r1[k]]), one[k])
    assert not np.array_equal(r0[0], r1[0]) and not np.array_equal(r0[1], r1[1])
    assert not np.array_equal(r0[0], r0[1])
    with pytest.raises(ValueError, match="shard_counter: need 0 <= rank < world, got rank 2, world 2"):
        shard_counter(2, 2)


@needs_mpi
def test_bench_distributed_quick_writes_well_formed_results(tmp_path):
    """The scaling benchmark's smoke run (small28, 1 and 2 ranks, 2 steps): its JSON and
    Markdown are written and hold every figure; no timing is asserted."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_distributed.py"), "--quick",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (js,), (md,) = tmp_path.glob("distributed-*-quick.json"), tmp_path.glob("distributed-*-quick.md")
    import json
    data = json.loads(js.read_text())
    assert {"date_utc", "cpu", "logical_cores", "load_average_at_start"} <= set(data["machine"])
    one, two = data["results"]
    assert (one["ranks"], two["ranks"], one["net"], two["net"]) == (1, 2, "small28", "small28")
    assert two["global_batch"] == 2 * two["batch_per_rank"] and two["backend"] == "mpi"
    for res in (one, two):
        assert len(res["step_times_s"]) == 2 and res["images_per_s"] > 0 and res["efficiency"] > 0
        for key in ("step_s", "forward_s", "backward_s", "optimizer_s", "wait_s", "skew_s",
                    "allreduce_alone_s"):
            assert isinstance(res[key], float) and res[key] >= 0, (key, res[key])
    assert one["efficiency"] == 1.0 and one["hidden_share"] is None
    assert two["allreduce_alone_s"] > 0 and 0 <= two["hidden_share"] <= 1
    assert "| small28 | 2 | 32 |" in md.read_text()


def _gpus_for_nccl():
    """How many GPUs CuPy sees where it has NCCL (0 without either, or on the fake CuPy)."""
    if not dist.is_nccl_available():
        return 0
    import cupy
    if cupy.__version__.endswith("fake"):
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


@needs_mpi
@pytest.mark.gpu
@pytest.mark.skipif(_gpus_for_nccl() < 2, reason="needs CuPy with NCCL and at least 2 CUDA GPUs")
def test_nccl_on_two_gpus_each_rank_on_its_own_and_ddp_matches_one_process(tmp_path):
    check_ok(run_ranks(tmp_path, DDP_COMMON.replace('dist.init_process_group("mpi")',
                                                    'dist.init_process_group("nccl")') + textwrap.dedent("""
        import cupy
        assert cupy.cuda.runtime.getDevice() == r and dist.get_backend() == "nccl"
        t = tinyconv.tensor(np.arange(4.0) * (r + 1), device="cuda")
        dist.all_reduce(t)
        assert np.array_equal(t.cpu().numpy(), np.arange(4.0) * 3)
        net = make_net().to("cuda")
        model = DDP(net)
        ref = make_net().to("cuda")
        X, y = batches(0, 2 * B)
        X, y = X.to("cuda"), y.to("cuda")
        loss_fn(model(X[r * B:(r + 1) * B]), y[r * B:(r + 1) * B]).backward()
        loss_fn(ref(X), y).backward()
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            close(p.grad.cpu(), q.grad.cpu(), name)
        done(r)
    """)))
