"""The training loop behind ``tinyconv train`` and ``examples/train_alexnet.py``.

``train(TrainConfig(...))`` trains an AlexNet variant the way the paper did (section 5):

* SGD, momentum 0.9, weight decay 5e-4, batches of ``batch_size``;
* the learning rate divided by 10 when the validation error stops improving
  (``ReduceLROnPlateau`` on the top-1 validation error, ``patience`` epochs);
* the paper's augmentation: random crops and horizontal flips (and PCA colour
  noise for RGB data); per-channel mean subtraction with the training set's mean;
* a tqdm bar per epoch with the running loss, accuracy and images/s, then the top-1
  and top-5 error on the validation split;
* after every epoch an atomic checkpoint ``OUT/last.npz`` (and ``OUT/best.npz`` when
  the validation error improves) with the model, optimizer, scheduler, RNG and
  loader state, so ``resume=True`` continues exactly as if never stopped;
* divergence (a NaN or infinite loss at any step, parameters or optimizer buffers that
  are not all finite before a save, a non-finite validation metric) stops the run with
  :class:`TrainingDiverged` before any file is written: ``last.npz`` and ``best.npz``
  keep the last good epochs and the message says which epoch each holds (``tinyconv
  train`` then exits with status 1); Ctrl-C leaves them intact and says where they are;
* at the end ``OUT/curves.png`` (the learning curves), ``OUT/filters.png`` (the first
  layer's kernels, the paper's Figure 3) and the test-split accuracy of ``best.npz``'s
  model, the checkpoint to predict with (a folder without ``test/`` is measured on
  ``val/``, which chose that checkpoint, and the message says so).

Data parallelism: launched by MPI (``mpirun -n N tinyconv train`` or ``tinyconv train
--nproc N``, see :func:`launch_command`) ``train`` joins the process group and trains
data-parallel.  ``batch_size`` is the **global batch**, the recipe's (the paper's 128,
the demo's 64), whatever the number of ranks: each of N ranks takes ``batch_size / N``
images of every step (N must divide it), and ``lr`` applies to the mean gradient over
the whole batch, so ``mpirun -n N tinyconv train`` is the one-process run, only split.
(PyTorch's own DDP scripts pass a per-process batch instead; here the per-rank and
global figures are both printed when the run starts.)  The loader draws the one-process
order of global batches and rank ``r`` takes the ``r``-th slice of each (augmentation is
seeded per sample, so the union is exactly the one-process batch); gradients are
averaged by :class:`~tinyconv.nn.parallel.DistributedDataParallel`, the step's loss and
the epoch's counts are all-reduced, so a run on N ranks trains as one process up to
float32 summation order.  Dropout too: every rank keeps the one seed and draws its
slice of the global batch's counter range (:func:`tinyconv.random.shard_counter`), so
with the fast CPU kernels rank ``r``'s masks are exactly the ``r``-th slice of the
one-process masks (with the reference or CUDA kernels they are other, independent
draws).  Validation and test are sharded by whole batches of 256 (every image is
evaluated in the same batch as in one process) and the counts are summed, so the
accuracies are exactly one process's.  Only rank 0 prints, writes checkpoints and
plots (the others wait for its word after each save, and stop with its error if the
write failed); ``resume`` reads the checkpoint on every rank (a shared folder, as for
one machine).  With ``device="cuda"`` the ranks use NCCL, each on its local GPU.

Data: ``data`` names a bundled real set (``"mnist5k"``, the default, or ``"digits"``;
see :mod:`tinyconv.data.datasets`), or a folder with ``train/`` and ``val/`` (and
optionally ``test/``) sub-folders in ImageFolder layout.

Checkpoint metadata (``meta`` of :func:`tinyconv.checkpoint.load_checkpoint`), which
``tinyconv predict`` reads: ``arch`` ("alexnet"), ``variant``, ``num_classes``,
``in_channels``, ``classes`` (names by label), ``preprocess`` (``mode`` "L"/"RGB",
``resize``, ``crop``, ``mean``, ``std``, ``hflip``: whether training mirrored images,
``invert_hint`` for the bundled digits), ``epoch`` (completed epochs), ``step``,
``history``, ``config``, ``loader``, ``scheduler``, ``best_val_error``, ``best_epoch``.
"""
import atexit
import contextlib
import dataclasses
import math
import operator
import os
import sys
import time

import numpy as np

from . import checkpoint as ckpt
from . import data as D
from . import distributed as dist
from .data import transforms as T

# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on (saved in each checkpoint as ``meta["config"]``)."""
    variant: str = "small28"         # an AlexNet variant of tinyconv.models.alexnet
    data: str = "mnist5k"            # a bundled set's name, or a folder with train/ and val/
    device: str = "cpu"              # "cpu" or "cuda"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    patience: int = 2                # epochs without a better val error before lr /= 10
    seed: int = 0
    out: str = "runs/alexnet"
    resume: bool = False             # continue from OUT/last.npz (or the path given here)
    resume_path: str = ""
    augment: bool = True
    num_workers: int = 1             # loader threads (decoding overlaps compute; see data.loader)
    init: str = ""                   # "paper", "default" or "kaiming"; "" = see default_init()
    dropout: float = -1.0            # >= 0 overrides every Dropout layer's p (-1: the model's own)
    progress: bool = True            # tqdm bars
    plots: bool = True
    kernels: str = ""                # "" leaves the mode; "reference" or "fast" forces it
    max_steps_per_epoch: int = 0     # 0 = whole epochs (tests use small numbers)
    eval_limit: int = 0              # N val/test images spread through each set (0 = all; quick runs)
    threads: int = 0                 # CPU threads for kernels and BLAS; 0 = auto (see cpu_threads())


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where the last good checkpoint is."""


_RESUME_KEEPS = ("variant", "data", "batch_size", "lr", "momentum", "weight_decay", "patience", "seed",
                 "augment", "init", "dropout", "max_steps_per_epoch")


# --------------------------------------------------------------------------- initialization


def default_init(variant):
    """The initialization ``train`` uses when none is asked for.

    The small variants get He (Kaiming) initialization: with PyTorch's default init
    (weights ~ U(+-1/sqrt(fan_in)), which shrinks the signal at every ReLU layer) and
    LRN's division by k^0.75 = 1.68 twice, the small28 net sits at chance (loss ln 10)
    for 3+ epochs of SGD on MNIST, in tinyconv and in PyTorch alike; with He init it
    learns from the first epoch.  The ImageNet-sized variants keep their own
    (the paper's N(0, 0.01) for "paper")."""
    return "kaiming" if variant.startswith("small") else ""


def kaiming_init_(model):
    """He-normal weights (std sqrt(2 / fan_in)) and zero biases for every conv and linear layer."""
    from .nn import Conv2d, Linear, init
    for m in model.modules():
        if isinstance(m, (Conv2d, Linear)):
            init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
    return model


# --------------------------------------------------------------------------- data


def build_data(cfg, model_shape):
    """(train, val, test datasets, classes, preprocess dict) for ``cfg.data``."""
    c, h, w = model_shape
    mode = "L" if c == 1 else "RGB"
    if cfg.data in D.BUNDLED:
        parts = {s: D.bundled_dataset(cfg.data, s) for s in ("train", "val", "test")}
        shape = parts["train"].images.shape[1:]
        if tuple(shape) != (c, h, w):
            raise ValueError(f"train: the bundled {cfg.data!r} images are {shape}, but variant "
                             f"{cfg.variant!r} expects {model_shape}; pick a variant for "
                             f"{shape[0]}x{shape[1]}x{shape[2]} input (e.g. small28 for mnist5k)")
        mean, std = T.channel_stats(parts["train"])
        norm = T.Normalize(mean, std)
        if cfg.augment:
            # the paper's random crops, for small images: translations of up to 2 pixels
            parts["train"].transform = T.Compose([T.RandomCrop(h, padding=max(1, h // 14)), norm])
        else:
            parts["train"].transform = norm
        parts["val"].transform = parts["test"].transform = norm
        preprocess = {"mode": mode, "resize": h, "crop": h, "mean": mean.tolist(), "std": std.tolist(),
                      "invert_hint": "MNIST digits are light strokes on a dark background",
                      "hflip": False}                     # random crops only (a mirrored 7 is no 7)
        return parts["train"], parts["val"], parts["test"], parts["train"].classes, preprocess

    root = cfg.data
    if not os.path.isdir(root):
        raise ValueError(f"train: data {root!r} is neither a bundled dataset ({sorted(D.BUNDLED)}) "
                         "nor a folder")
    if not os.path.isdir(os.path.join(root, "train")) or not os.path.isdir(os.path.join(root, "val")):
        raise ValueError(f"train: folder {root!r} needs train/ and val/ sub-folders, each with one "
                         "sub-folder of images per class")
    resize, crop = int(round(h * 256 / 224)), h
    plain = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToArray(mode)])
    stats_set = D.ImageFolder(os.path.join(root, "train"), transform=plain, mode=mode)
    mean, _ = T.channel_stats(stats_set, max_samples=1000)
    norm = T.Normalize(mean)                                 # the paper: mean subtraction only
    train_tf = [T.Resize(resize), T.RandomCrop(crop), T.RandomHorizontalFlip(), T.ToArray(mode)]
    if mode == "RGB":
        eigvals, eigvecs = T.rgb_pca(stats_set, max_samples=1000)
        train_tf.append(T.PCAColorAugment(eigvals, eigvecs))
    train = D.ImageFolder(os.path.join(root, "train"),
                          transform=T.Compose(train_tf + [norm]) if cfg.augment else
                          T.Compose([plain, norm]), mode=mode)
    test_tf = T.Compose([plain, norm])
    val = D.ImageFolder(os.path.join(root, "val"), transform=test_tf, mode=mode)
    test_root = os.path.join(root, "test")
    test = D.ImageFolder(test_root, transform=test_tf, mode=mode) if os.path.isdir(test_root) else val
    for name, ds in (("val", val), ("test", test)):
        if ds.classes != train.classes:
            raise ValueError(f"train: {name}/ has classes {ds.classes[:5]}..., train/ has "
                             f"{train.classes[:5]}...; they must be the same folders")
    preprocess = {"mode": mode, "resize": resize, "crop": crop, "mean": mean.tolist(), "std": None,
                  "hflip": bool(cfg.augment)}
    return train, val, test, train.classes, preprocess


class _spread:
    """``n`` samples of a dataset spread evenly through it (sample ``i`` is ``floor(i N / n)``):
    a folder dataset is sorted by class, so its first ``n`` would all be one class."""

    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, min(n, len(dataset))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i * len(self.dataset) // self.n]


# --------------------------------------------------------------------------- evaluation


def topk_errors(logits, labels, ks=(1, 5)):
    """Fraction of samples whose label is not among the k highest logits, for each k."""
    return [m / len(labels) for m in topk_misses(logits, labels, ks)]


def topk_misses(logits, labels, ks=(1, 5)):
    """How many samples' labels are not among the k highest logits, for each k."""
    logits = np.asarray(logits)
    order = np.argsort(-logits, axis=1, kind="stable")
    return [int(len(labels) - (order[:, :min(k, logits.shape[1])] == labels[:, None]).any(axis=1).sum())
            for k in ks]


def evaluate(model, loader, device="cpu"):
    """(mean loss, top-1 error, top-5 error) of ``model`` over ``loader``, in eval mode.

    In a process group each rank passes its shard (see :func:`_eval_shard`) and the
    sums are all-reduced: every rank gets the whole set's figures."""
    sums = _eval_sums(model, loader, device)
    if _world() > 1:
        sums = _all_reduce_sum(sums)
    loss_sum, miss1, miss5, total = sums
    return float(loss_sum / total), float(miss1 / total), float(miss5 / total)


def _eval_sums(model, loader, device):
    """[summed loss, top-1 misses, top-5 misses, images] over ``loader`` (float64)."""
    import tinyconv
    import tinyconv.nn.functional as F
    model.eval()
    sums = np.zeros(4)
    with tinyconv.no_grad():
        for images, labels in loader:
            x = tinyconv.tensor(images, device=device)
            y = tinyconv.tensor(labels, device=device)
            logits = model(x)
            miss1, miss5 = topk_misses(tinyconv.backend.to_device(logits.array, "cpu"), labels)
            sums += (float(F.cross_entropy(logits, y, reduction="sum").item()), miss1, miss5, len(labels))
    return sums


# --------------------------------------------------------------------------- data parallelism


def _world():
    return dist.get_world_size() if dist.is_initialized() else 1


def _rank():
    return dist.get_rank() if dist.is_initialized() else 0


def _abort_launch():
    from mpi4py import MPI
    MPI.COMM_WORLD.Abort(1)


def _all_reduce_sum(values):
    """The element-wise sum over the ranks of a float64 vector (NumPy in, NumPy out)."""
    import tinyconv
    t = tinyconv.tensor(np.asarray(values, dtype=np.float64))
    dist.all_reduce(t)
    return t.numpy()


#: the environment variables by which MPI launchers (MPICH/Hydra, Open MPI, Slurm's PMI) give the world size
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")


def launched_world_size():
    """How many ranks the MPI launcher started this process among (1 without one)."""
    for name in _LAUNCHER_SIZE_VARS:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def find_mpiexec():
    """``mpiexec`` (or ``mpirun``) beside the running Python (the ``dist`` extra's MPICH
    wheel puts it there), else on ``PATH``; a clear error where there is none."""
    import shutil
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    for name in ("mpiexec", "mpirun"):
        found = shutil.which(name, path=path)
        if found:
            return found
    raise ValueError("train: --nproc needs an MPI launcher (mpiexec), found neither beside "
                     f"{sys.executable} nor on PATH; pip install 'tinyconv[dist]' (mpi4py and MPICH)")


def launch_command(nproc, argv):
    """The command that runs ``tinyconv <argv>`` on ``nproc`` MPI ranks (``--nproc N``)."""
    if not dist.is_mpi_available():
        raise ValueError("train: --nproc needs mpi4py; pip install 'tinyconv[dist]'")
    cmd = [find_mpiexec(), "-n", str(int(nproc))]
    if "Open MPI" in _launcher_version(cmd[0]):
        cmd.append("--oversubscribe")                  # more ranks than cores is the user's choice
    return cmd + [sys.executable, "-m", "tinyconv.cli", *argv]


def _launcher_version(mpiexec):
    import subprocess
    try:
        return subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


#: bytes of rank 0's error message that a failed save sends the other ranks
_SAVE_MESSAGE_BYTES = 512


def _save_outcome(path, failure):
    """Every rank learns whether rank 0 wrote ``path``: rank 0 broadcasts ``failure``'s
    message (empty: written) and re-raises it; the others raise a :class:`RuntimeError`
    quoting it, so nobody waits for a checkpoint that will never come."""
    import tinyconv
    msg = np.zeros(_SAVE_MESSAGE_BYTES, np.uint8)
    if failure is not None:
        text = f"{type(failure).__name__}: {failure}".encode("utf-8", "replace")[:_SAVE_MESSAGE_BYTES - 1]
        msg[:len(text)] = np.frombuffer(text, np.uint8)
        msg[-1] = 1                                          # a flag: even an empty message is a failure
    t = tinyconv.tensor(msg)
    dist.broadcast(t, 0)
    if failure is not None:
        failure._every_rank_raised = True
        raise failure
    got = t.numpy()
    if got[-1]:
        text = bytes(got[:-1]).rstrip(b"\0").decode("utf-8", "replace")
        error = RuntimeError(f"train: rank 0 failed to write the checkpoint {path} ({text}); "
                             f"rank {_rank()} stops too")
        error._every_rank_raised = True
        raise error


class _ShardLoader(D.DataLoader):
    """The one-process loader of global batches (``batch_size x world``), serving this
    rank's slice of each: its position and ``state_dict`` are the same on every rank."""

    def __init__(self, dataset, batch_size, rank, world, **kwargs):
        super().__init__(dataset, batch_size * world, **kwargs)
        self.rank_batch, self.rank = batch_size, rank

    def _batches(self, epoch):
        lo, hi = self.rank * self.rank_batch, (self.rank + 1) * self.rank_batch
        return [b[lo:hi] for b in super()._batches(epoch)]


class _Subset:
    """The samples of ``dataset`` at ``indices``."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


def _eval_shard(dataset, batch, rank, world):
    """This rank's whole batches (``rank``, ``rank + world``, ...) of ``dataset`` in
    batches of ``batch``: each image lands in the same batch as in one process."""
    n = len(dataset)
    starts = range(rank * batch, n, world * batch)
    return _Subset(dataset, [i for s in starts for i in range(s, min(s + batch, n))])


def _eval_loader(dataset, cfg):
    if _world() > 1:
        dataset = _eval_shard(dataset, 256, _rank(), _world())
        if len(dataset) == 0:                  # fewer batches than ranks: this one has none
            return []
    return D.DataLoader(dataset, 256, seed=0, num_workers=cfg.num_workers)


# --------------------------------------------------------------------------- the loop


def _log(msg):
    if _rank() != 0:                                           # one voice in a process group
        return
    try:
        from tqdm import tqdm
        tqdm.write(msg, file=sys.stdout)
    except ImportError:                                        # pragma: no cover
        print(msg, flush=True)


def _progress(iterable, total, desc, enabled):
    if enabled and _rank() == 0:
        try:
            from tqdm import tqdm
            return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False,
                        dynamic_ncols=True, mininterval=0.5)
        except ImportError:                                    # pragma: no cover
            pass
    return iterable


def train(cfg=None, callback=None, **overrides):
    """Run training as configured; returns a dict with ``history``, ``test_top1_error``,
    ``test_top5_error``, ``test_accuracy`` and the paths written.

    ``callback(event, info)`` (optional) is called with ``"step"`` at every logging
    point (info: epoch, step, loss: the mean loss since the last one) -- after every
    optimizer step on the CPU, every ``LOG_EVERY`` steps and at the epoch's end on a GPU --
    and ``"epoch"`` after every checkpoint; tests use it to interrupt a run.
    """

    cfg = dataclasses.replace(cfg or TrainConfig(), **overrides)
    if dist.is_initialized() or launched_world_size() == 1:
        return _train(cfg, callback)
    # mpirun -n N tinyconv train: NCCL between GPUs (each rank on its local GPU), else MPI
    if cfg.device.startswith("cuda") and dist.is_nccl_available():
        dist.init_process_group("nccl", device_id=cfg.device if ":" in cfg.device else None)
    else:
        dist.init_process_group("mpi")
    try:
        result = _train(cfg, callback)
    except BaseException as e:
        if getattr(e, "_every_rank_raised", False):     # all ranks stop together (a failed save):
            dist.destroy_process_group()                # each leaves normally with its own error
        else:
            # a rank that stops must stop the others (they would wait in a collective, and this
            # one in MPI_Finalize): abort the whole launch at exit, after the error is printed
            atexit.register(_abort_launch)
        raise
    # left only after a success: a failed collective's broken group must reach the MPI_Abort at exit
    dist.destroy_process_group()
    return result


def _train(cfg, callback):
    import tinyconv
    if _rank() == 0:
        try:
            os.makedirs(cfg.out, exist_ok=True)
        except OSError as e:                                # a file in the way, no permission
            raise ValueError(f"train: cannot use {cfg.out!r} as the output folder: "
                             f"{e.strerror or e}") from None
    resumed = None
    if cfg.resume:
        path = cfg.resume_path or os.path.join(cfg.out, "last.npz")
        resumed = ckpt.load_checkpoint(path)
        saved = resumed["meta"].get("config", {})
        # the run's identity comes from the checkpoint; epochs, device and display may change
        cfg = dataclasses.replace(cfg, **{k: saved[k] for k in _RESUME_KEEPS if k in saved})
    if cfg.device not in ("cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ValueError(f"train: device must be 'cpu' or 'cuda', got {cfg.device!r}")
    if not (cfg.dropout == -1 or 0 <= cfg.dropout <= 1):
        raise ValueError(f"train: dropout must be a probability in [0, 1] (or -1: the model's own), "
                         f"got {cfg.dropout}")
    for name in ("max_steps_per_epoch", "eval_limit", "num_workers", "patience", "threads"):
        if getattr(cfg, name) < 0:                           # 0 means "all" / "none" / "auto"; no silent -1
            raise ValueError(f"train: {name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise ValueError(f"train: need epochs >= 1, batch_size >= 1 and lr > 0, got {cfg.epochs}, "
                         f"{cfg.batch_size}, {cfg.lr}")
    try:
        seed = None if isinstance(cfg.seed, bool) else operator.index(cfg.seed)     # ints, NumPy ints
    except TypeError:
        seed = None
    if seed is None or not -2**63 <= seed < 2**64:
        raise ValueError(f"train: seed must be an int from -2**63 to 2**64 - 1 (torch.manual_seed's "
                         f"range), got {cfg.seed!r}")
    cfg = dataclasses.replace(cfg, seed=seed % 2**64)         # a negative seed as torch.manual_seed takes it
    if _world() > 1:
        dist.barrier()                                      # the folder exists before anyone reads it
    with contextlib.ExitStack() as stack:
        if cfg.kernels:
            stack.enter_context(tinyconv.use_kernels(cfg.kernels))
        if cfg.device == "cpu":
            stack.enter_context(_cpu_threads(cpu_threads(cfg)))
        if _world() > 1:                  # rank r's dropout masks: the r-th slice of the global batch's
            tinyconv.random.shard_counter(_rank(), _world())
            stack.callback(tinyconv.random.shard_counter)
        return _run(cfg, resumed, callback)


def cpu_threads(cfg):
    """The CPU thread count a run uses: ``cfg.threads``, or for 0 one thread for the
    small variants and the library's default (None) for the others.

    The small nets' GEMMs and kernels are tiny (a 64-image batch of small28 is about
    1 GFLOP), so a parallel region costs more in thread wake-up and spin-waiting than it
    saves; measured on a 2-core machine shared with other jobs, one thread ran a
    small28 step about 10x faster than two (0.8 vs 11 ms of CPU per image)."""
    if cfg.threads:
        return int(cfg.threads)
    return 1 if cfg.variant.startswith("small") else None


@contextlib.contextmanager
def _cpu_threads(n):
    """Run with ``n`` Numba and BLAS threads (None: leave them), then restore the counts."""
    if n is None:
        yield
        return
    import numba

    import tinyconv
    from .kernels._numba_threads import ensure_pool
    ensure_pool()                      # Numba's threading layer, chosen before its pool starts
    before = numba.get_num_threads()
    try:
        blas_before = tinyconv.get_num_threads()["blas"]
        tinyconv.set_num_threads(n)
    except (ImportError, RuntimeError):          # no threadpoolctl: BLAS keeps its own count
        blas_before = None
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)
        if blas_before:
            from threadpoolctl import threadpool_limits
            threadpool_limits(limits=blas_before, user_api="blas")


def _all_finite(arrays):
    """Whether every element of every floating array is finite: one device-to-host
    transfer (a bool) per array module, however many arrays there are."""
    from .backend import array_module
    checks = {}
    for a in arrays:
        if a.dtype.kind in "fc":
            xp = array_module(a)
            checks.setdefault(xp, []).append(xp.isfinite(a).all())
    return all(bool(xp.stack(c).all()) for xp, c in checks.items())


#: on a GPU, the steps between two reads of the loss and accuracy (the logging points)
LOG_EVERY = 25


class _StepMetrics:
    """The training loss and accuracy, summed on the step's device and read at logging points.

    :meth:`add` records a step with device operations only (a product, an arg-max, two
    sums); :meth:`flush` reads the sums since the last flush in one transfer -- which also
    reports any deferred device check (a bad class target; see
    :mod:`tinyconv.device_checks`) -- checks them for divergence, updates the bar and
    calls the run's ``"step"`` callback.  On the CPU the loop flushes after every step.
    """

    def __init__(self, run, epoch, t0, bar):
        self.run, self.epoch, self.t0, self.bar = run, epoch, t0, bar
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0
        self.pending, self.first_step, self.images = 0, run.step + 1, 0
        self.acc = None                      # [sum of loss * n, hits] of the pending steps, on the device

    def add(self, loss, logits, labels, n):
        from .backend import array_module
        xp = array_module(loss)
        hits = (xp.argmax(logits, axis=1) == labels).sum()
        step = xp.stack([loss.astype(xp.float64) * n, hits.astype(xp.float64)])
        self.acc = step if self.acc is None else self.acc + step
        self.pending += 1
        self.images += n

    def flush(self):
        if not self.pending:
            return
        from .backend import to_device
        run = self.run
        loss_sum, hits = (float(v) for v in to_device(self.acc, "cpu"))
        value = loss_sum / self.images                     # the mean loss of the pending steps
        if run.world > 1:                                  # the global batch's loss: every rank sees a NaN
            value = float(_all_reduce_sum([value])[0]) / run.world
        steps = (f"step {run.step}" if self.pending == 1
                 else f"steps {self.first_step}-{run.step} (their mean)")
        if not math.isfinite(value):
            raise run.diverged(f"the loss became {value} at epoch {self.epoch + 1}, {steps}")
        self.loss_sum += loss_sum
        self.correct += int(round(hits))
        self.seen += self.images
        self.acc, self.pending, self.images, self.first_step = None, 0, 0, run.step + 1
        bar = self.bar
        if bar is not run.loader:
            rate = self.seen * run.world / max(time.perf_counter() - self.t0, 1e-9)
            bar.set_postfix(loss=f"{self.loss_sum / self.seen:.3f}", acc=f"{self.correct / self.seen:.1%}",
                            img_s=f"{rate:.0f}", refresh=False)
        if run.callback is not None:
            run.callback("step", {"epoch": self.epoch, "step": run.step, "loss": value})


class _Prefetch:
    """(x, y, n) Tensors on ``device`` for the batches of ``loader``, at most ``limit`` of them.

    On a GPU the next batch is copied while the current step computes: the host batch is
    written into a pinned (page-locked) buffer, and its copy to the device is queued on a
    side stream, asynchronously.  Stream ordering:

    * the device buffers are allocated on the compute stream, and the side stream first
      waits for an event recorded on it then: memory the pool hands back may still be
      read by compute queued earlier, and the copy must not overwrite it;
    * the compute stream waits for the copy's event before the step that uses the batch
      (``wait_event``: the GPU waits, the host does not);
    * a pinned buffer is reused only once its copy's event is done (a query, never a
      wait); otherwise a fresh one is taken from CuPy's pinned pool.

    On the CPU it only wraps the arrays in Tensors.
    """

    def __init__(self, loader, device, limit):
        self.loader, self.device, self.limit = loader, device, limit

    def __iter__(self):
        import tinyconv
        if self.device == "cpu":
            for i, (images, labels) in enumerate(self.loader):
                if i >= self.limit:
                    return
                yield tinyconv.tensor(images), tinyconv.tensor(labels), len(labels)
            return
        from .backend import _import_cupy, device
        index = device(self.device).index or 0
        cupy = _import_cupy(index)
        with cupy.cuda.Device(index):
            self.side = cupy.cuda.Stream(non_blocking=True)
            self.buffers = []                               # (pinned array, the event of its last copy)
            batches = iter(self.loader)
            ahead = None
            for i in range(self.limit + 1):
                batch = next(batches, None) if i < self.limit else None
                staged = None if batch is None else self._stage(cupy, *batch)   # overlaps the step below
                if ahead is not None:
                    x, y, n, ready = ahead
                    cupy.cuda.get_current_stream().wait_event(ready)
                    yield tinyconv.Tensor(x), tinyconv.Tensor(y), n
                if staged is None:
                    return
                ahead = staged

    def _pinned(self, cupy, a):
        import cupyx
        for i, (buf, event) in enumerate(self.buffers):
            if buf.shape == a.shape and buf.dtype == a.dtype and event.done:
                return self.buffers.pop(i)[0]
        return cupyx.empty_pinned(a.shape, a.dtype)

    def _stage(self, cupy, images, labels):
        compute = cupy.cuda.get_current_stream()
        freed = compute.record()                    # the pool may hand out memory compute still reads
        pairs = []
        for a in (np.ascontiguousarray(images), np.ascontiguousarray(labels, dtype=np.int64)):
            host = self._pinned(cupy, a)
            host[...] = a
            pairs.append((host, cupy.empty(a.shape, a.dtype)))
        self.side.wait_event(freed)
        for host, dev in pairs:
            dev.set(host, stream=self.side)
        ready = self.side.record()
        self.buffers += [(host, ready) for host, _ in pairs]
        return pairs[0][1], pairs[1][1], len(labels), ready


class _Run:
    """One run's model, optimizer, loaders and bookkeeping; :func:`_run` drives its three
    steps per epoch: :meth:`train_epoch`, :meth:`evaluate_epoch`, :meth:`checkpoint`.

    Divergence guard: the loss is checked at every logging point (every step on the CPU,
    every ``LOG_EVERY`` steps on a GPU, where it is read anyway), the parameters and
    optimizer buffers before every save, and the validation metrics before they can
    choose ``best.npz``; anything non-finite raises :class:`TrainingDiverged` before a
    file is touched, so ``last.npz`` and ``best.npz`` keep the last good epochs and the
    message says which ones they hold.
    """

    def __init__(self, cfg, callback):
        import tinyconv
        from tinyconv.models import alexnet
        from tinyconv.models.alexnet import VARIANTS
        from tinyconv.optim import SGD
        from tinyconv.optim.lr_scheduler import ReduceLROnPlateau

        self.cfg, self.callback = cfg, callback
        self.last_path, self.best_path = os.path.join(cfg.out, "last.npz"), os.path.join(cfg.out, "best.npz")
        if cfg.device != "cpu":
            try:                                                  # fail now, not after loading the data
                tinyconv.zeros(1).to(cfg.device)
            except RuntimeError as e:
                raise ValueError(f"train: cannot use device {cfg.device!r}: {e}") from None
        tinyconv.manual_seed(cfg.seed)
        if cfg.variant not in VARIANTS:
            raise ValueError(f"train: unknown variant {cfg.variant!r}; expected one of {sorted(VARIANTS)}")
        probe = alexnet(variant=cfg.variant, in_channels=VARIANTS[cfg.variant][1], num_classes=2)
        self.model_shape = model_shape = probe.input_shape
        del probe
        train_set, val_set, test_set, self.classes, self.preprocess = build_data(cfg, model_shape)
        self.world, self.rank = _world(), _rank()
        self.global_batch = cfg.batch_size
        if cfg.batch_size % self.world:
            raise ValueError(f"train: batch_size {cfg.batch_size} (the global batch) does not split evenly "
                             f"over {self.world} ranks; use a multiple of {self.world}, e.g. "
                             f"--batch-size {max(1, cfg.batch_size // self.world) * self.world}")
        self.rank_batch = cfg.batch_size // self.world
        if len(train_set) < self.global_batch:
            raise ValueError(f"train: batch_size {self.global_batch} is larger than the training set "
                             f"({len(train_set)} images), and an epoch takes whole batches only; use "
                             f"--batch-size {len(train_set)} or less")
        self.test_split = "val" if test_set is val_set else "test"     # a folder without test/
        if cfg.eval_limit:
            val_set, test_set = _spread(val_set, cfg.eval_limit), _spread(test_set, cfg.eval_limit)
        self.train_set, self.val_set, self.test_set = train_set, val_set, test_set

        tinyconv.manual_seed(cfg.seed)                           # the model's init depends on the seed only
        init = cfg.init or default_init(cfg.variant)
        self.model = model = alexnet(num_classes=len(self.classes), variant=cfg.variant,
                                     in_channels=model_shape[0],
                                     init="default" if init == "kaiming" else (init or None))
        if init == "kaiming":
            kaiming_init_(model)
        if cfg.dropout >= 0:
            from .nn import Dropout
            for m in model.modules():
                if isinstance(m, Dropout):
                    m.p = float(cfg.dropout)
        if cfg.device != "cpu":
            model.to(cfg.device)
        self.opt = SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.sched = ReduceLROnPlateau(self.opt, mode="min", factor=0.1, patience=cfg.patience)
        # the model each step runs: the gradients averaged over the ranks (self.model stays the bare net)
        self.net = model
        if self.world > 1:
            from .nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(model)
        loader_args = dict(shuffle=True, drop_last=True, seed=cfg.seed, num_workers=cfg.num_workers)
        self.loader = (_ShardLoader(train_set, self.rank_batch, self.rank, self.world, **loader_args)
                       if self.world > 1 else D.DataLoader(train_set, cfg.batch_size, **loader_args))
        self.val_loader = _eval_loader(val_set, cfg)
        self.history = {k: [] for k in ("train_loss", "train_error", "val_loss", "val_top1_error",
                                        "val_top5_error", "lr", "epoch_time", "images_per_s")}
        self.start_epoch, self.step, self.best, self.best_epoch = 0, 0, math.inf, None
        self.saved = {self.last_path: None, self.best_path: None}     # path -> the epoch it holds

    def resume(self, resumed):
        import tinyconv
        ckpt.check_model_state(self.model.state_dict(), resumed["model_state"], resumed["path"],
                               resumed["meta"])
        self.model.load_state_dict(resumed["model_state"])
        self.opt.load_state_dict(resumed["optimizer_state"])
        meta = resumed["meta"]
        self.sched.load_state_dict(meta["scheduler"])
        self.loader.load_state_dict(meta["loader"])
        tinyconv.set_rng_state(resumed["rng_state"])
        self.history = {k: list(v) for k, v in meta["history"].items()}
        self.start_epoch, self.step = int(meta["epoch"]), int(meta["step"])
        best = float(meta["best_val_error"])
        self.best = best if math.isfinite(best) else math.inf
        errors = self.history["val_top1_error"]
        if self.best in errors:
            self.best_epoch = meta.get("best_epoch") or errors.index(self.best) + 1
        self.saved[self.last_path] = self.start_epoch
        before = int(meta.get("world_size", 1))
        before_batch = int(meta.get("hyper", {}).get("global_batch_size", self.global_batch))
        if before != self.world or before_batch != self.global_batch:
            _log(f"note: {resumed['path']} was written by a run on {before} rank(s) (global batch "
                 f"{before_batch}); this one runs {self.world} (global batch {self.global_batch})")
        if os.path.exists(self.best_path):
            self.saved[self.best_path] = self.best_epoch
        _log(f"resumed from {resumed['path']} after epoch {self.start_epoch} (step {self.step})")

    # -- what is kept ----------------------------------------------------------------
    def kept(self):
        """Which files hold which epochs (for the messages on divergence and Ctrl-C)."""
        last, best = self.saved[self.last_path], self.saved[self.best_path]
        if last is None:
            return "no checkpoint was written yet"
        msg = f"the last good checkpoint is {self.last_path} (epoch {last})"
        return msg + (f", the best {self.best_path} (epoch {best})" if best is not None else "")

    def use_best(self):
        """Load ``best.npz``'s weights for the test evaluation (the checkpoint to predict
        with); -> its path and epoch (last.npz's when there is no best.npz)."""
        best = self.saved[self.best_path]
        if best is None or not os.path.exists(self.best_path):
            return {"tested_checkpoint": self.last_path, "best_epoch": self.saved[self.last_path]}
        if best != self.saved[self.last_path]:
            self.model.load_state_dict(ckpt.load_checkpoint(self.best_path)["model_state"])
        return {"tested_checkpoint": self.best_path, "best_epoch": best}

    def diverged(self, what):
        return TrainingDiverged(f"train: {what} (lr {self.opt.param_groups[0]['lr']:g}); stopping, no file "
                                f"was overwritten. {self.kept()}. Try a smaller --lr.")

    # -- the three steps of an epoch ---------------------------------------------------
    def train_epoch(self, epoch):
        """One epoch of SGD steps -> (mean loss, error, images seen, seconds).

        The step's loss and correct count are summed where the step ran, and read on the
        host only at a logging point (every step on the CPU, every :data:`LOG_EVERY` steps
        and at the epoch's end on a GPU): between them a GPU step never waits for the
        device (see :class:`_StepMetrics` and :class:`_Prefetch`).
        """
        cfg, model, loader = self.cfg, self.net, self.loader
        model.train()
        t0 = time.perf_counter()
        steps_this_epoch = len(loader) - loader.batch
        if cfg.max_steps_per_epoch:
            steps_this_epoch = min(steps_this_epoch, cfg.max_steps_per_epoch)
        bar = _progress(loader, steps_this_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        metrics = _StepMetrics(self, epoch, t0, bar)
        for x, y, n in _Prefetch(bar, cfg.device, steps_this_epoch):
            self.train_step(x, y, metrics, n)
            if metrics.pending >= (1 if cfg.device == "cpu" else LOG_EVERY):
                metrics.flush()
        metrics.flush()
        if hasattr(bar, "close") and bar is not loader:
            bar.close()
        loader.epoch, loader.batch = epoch + 1, 0           # an epoch cut short still counts as one
        loss_sum, correct, seen = metrics.loss_sum, metrics.correct, metrics.seen
        if self.world > 1:                                  # the epoch's figures over every rank's images
            loss_sum, correct, seen = _all_reduce_sum([loss_sum, correct, seen]).tolist()
            seen = int(seen)
        # the last step's update is in no loss yet: the parameters themselves must be finite
        if not self.state_finite():
            raise self.diverged(f"the parameters became non-finite in epoch {epoch + 1} (by step "
                                f"{self.step}, the loss was still finite)")
        return loss_sum / seen, 1 - correct / seen, seen, time.perf_counter() - t0

    def train_step(self, x, y, metrics, n):
        """One SGD step on batch (x, y) of ``n`` images; its loss and hits go to ``metrics``,
        on the step's device (nothing is read back here)."""
        import tinyconv.nn.functional as F
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1
        metrics.add(loss.array, logits.array, y.array, n)

    def state_finite(self):
        """Every parameter, buffer and optimizer buffer finite (checked before every save)."""
        # the live arrays, where they are (state_dict() would copy each to the host first)
        arrays = [v.array for v in (*self.model.parameters(), *self.model.buffers())]
        arrays += [v.array if hasattr(v, "array") else v for s in self.opt.state.values()
                   for v in s.values() if hasattr(v, "dtype")]
        return _all_finite(arrays)

    def evaluate_epoch(self, epoch, train_stats):
        """Validation metrics appended to the history; non-finite ones are divergence."""
        train_loss, train_error, seen, train_time = train_stats
        val_loss, top1, top5 = evaluate(self.model, self.val_loader, self.cfg.device)   # sharded, summed
        if not (math.isfinite(val_loss) and math.isfinite(top1)):
            raise self.diverged(f"the validation loss became {val_loss} after epoch {epoch + 1}")
        h = self.history
        for key, value in (("train_loss", train_loss), ("train_error", train_error), ("val_loss", val_loss),
                           ("val_top1_error", top1), ("val_top5_error", top5),
                           ("lr", self.opt.param_groups[0]["lr"]), ("epoch_time", train_time),
                           ("images_per_s", seen / train_time)):
            h[key].append(value)
        self.sched.step(top1)
        return val_loss, top1, top5

    def checkpoint(self, epoch, top1):
        """``last.npz`` after every epoch, ``best.npz`` when the (finite) top-1 error improved."""
        improved = top1 < self.best
        if improved:
            self.best, self.best_epoch = top1, epoch
        self.save(self.last_path, epoch)
        if improved:
            self.save(self.best_path, epoch)

    def save(self, path, epoch):
        """Rank 0 writes (atomically), the others wait for it; all record what the file holds.

        In a process group rank 0 then broadcasts how the write went (see
        :func:`_save_outcome`): an exception on rank 0 (a full disk, Ctrl-C) stops every
        rank at once with rank 0's error; a rank 0 that dies is reported by the launcher,
        which ends the others."""
        if self.world == 1:
            self._write(path, epoch)
        else:
            failure = None
            if self.rank == 0:
                try:
                    self._write(path, epoch)
                except BaseException as e:
                    failure = e
            _save_outcome(path, failure)
        self.saved[path] = epoch

    def _write(self, path, epoch):
        import tinyconv
        cfg, opt = self.cfg, self.opt
        meta = {"arch": "alexnet", "variant": cfg.variant, "num_classes": len(self.classes),
                "in_channels": self.model_shape[0], "input_shape": list(self.model_shape),
                "classes": list(self.classes), "preprocess": self.preprocess, "epoch": epoch,
                "step": self.step, "history": self.history, "config": dataclasses.asdict(cfg),
                "loader": self.loader.state_dict(), "scheduler": self.sched.state_dict(),
                "best_val_error": self.best, "best_epoch": self.best_epoch,
                "world_size": self.world,
                "hyper": {"lr": opt.param_groups[0]["lr"], "momentum": cfg.momentum,
                          "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size,
                          "global_batch_size": self.global_batch, "rank_batch_size": self.rank_batch}}
        ckpt.save_checkpoint(path, self.model.state_dict(), opt.state_dict(), meta, tinyconv.get_rng_state())


def _run(cfg, resumed, callback):
    import tinyconv
    run = _Run(cfg, callback)
    if resumed is not None:
        run.resume(resumed)
    n_params = sum(p.numel() for p in run.model.parameters())
    _log(f"training AlexNet {cfg.variant!r} ({n_params:,} parameters) on {cfg.data!r}: "
         f"{len(run.train_set)} train / {len(run.val_set)} val / {len(run.test_set)} test images, "
         f"{len(run.classes)} classes, device {cfg.device}, kernels {tinyconv.kernel_mode()}")
    per_rank = (f"data-parallel on {run.world} ranks x batch {run.rank_batch} = " if run.world > 1 else "")
    _log(f"{per_rank}global batch {run.global_batch}, lr {run.opt.param_groups[0]['lr']:g} "
         f"(momentum {cfg.momentum:g}, weight decay {cfg.weight_decay:g})")
    t_run = time.perf_counter()
    history = run.history
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            stats = run.train_epoch(epoch)
            val_loss, top1, top5 = run.evaluate_epoch(epoch, stats)
            run.checkpoint(epoch + 1, top1)
            train_loss, train_error, seen, train_time = stats
            lr, new_lr = history["lr"][-1], run.opt.param_groups[0]["lr"]
            _log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f} err {train_error:.2%} | "
                 f"val loss {val_loss:.4f} top-1 err {top1:.2%} top-5 err {top5:.2%} | lr {lr:g} | "
                 f"{train_time:.1f} s, {seen / train_time:.0f} img/s"
                 + (f" | lr -> {new_lr:g}" if new_lr != lr else ""))
            if callback is not None:
                callback("epoch", {"epoch": epoch + 1, "step": run.step})
    except KeyboardInterrupt:
        _log(f"\ninterrupted: {run.kept()}; continue with --resume --out {cfg.out}")
        raise

    result = {"history": history, "rank": run.rank, "world_size": run.world,
              "checkpoint": run.last_path, "best_checkpoint": run.best_path,
              "wall_time": time.perf_counter() - t_run, "classes": list(run.classes)}
    result.update(run.use_best())
    test_loader = _eval_loader(run.test_set, cfg)
    test_loss, t1, t5 = evaluate(run.model, test_loader, cfg.device)
    result.update(test_loss=test_loss, test_top1_error=t1, test_top5_error=t5, test_accuracy=1 - t1,
                  test_split=run.test_split)
    if cfg.plots and run.rank == 0:
        result.update(_plots(run.model, history, cfg.out, cfg))
    _log(_final_message(run, result))
    return result


def _final_message(run, r):
    """Which checkpoint to use and why, and what its accuracy was measured on."""
    n = len(run.test_set)
    figures = f"{r['test_accuracy']:.2%} (top-1 error {r['test_top1_error']:.2%}, top-5 error " \
              f"{r['test_top5_error']:.2%})"
    if run.test_split == "test":
        measured = f"test accuracy {figures} on {n} test images"
    else:
        measured = (f"val accuracy {figures} on {n} val images (no test/ split; this set chose the best "
                    "checkpoint, so it is no unbiased test)")
    return (f"{measured}, with {r['tested_checkpoint']} (epoch {r['best_epoch']}, the lowest validation "
            f"top-1 error), the one to predict with; {run.last_path} (epoch {run.saved[run.last_path]}) "
            "is the one to --resume")


def _plots(model, history, out, cfg):
    from . import plots
    if not plots.available():
        _log("(matplotlib is not installed: no plots; pip install 'tinyconv[demo]')")
        return {}
    from .nn import Conv2d
    first = next(m for m in model.modules() if isinstance(m, Conv2d))
    import tinyconv
    weight = tinyconv.backend.to_device(first.weight.array, "cpu")
    curves = plots.plot_training_curves(history, os.path.join(out, "curves.png"),
                                        title=f"AlexNet {cfg.variant} on {cfg.data}")
    filters = plots.plot_filters(weight, os.path.join(out, "filters.png"),
                                 title=f"AlexNet {cfg.variant} conv1")
    _log(f"plots: {curves}, {filters}")
    return {"curves_png": curves, "filters_png": filters}
