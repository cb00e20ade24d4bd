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
  layer's kernels, the paper's Figure 3) and the test-split accuracy.

Data parallelism: launched by MPI (``mpirun -n N tinyconv train`` or ``tinyconv train
--nproc N``, see :func:`launch_command`) ``train`` joins the process group and trains
data-parallel, as PyTorch's DDP recipe: ``batch_size`` is per rank, the **global batch**
is ``batch_size x N`` and ``lr`` applies to its mean gradient unchanged (no automatic
scaling; both are reported when the run starts).  The loader draws the one-process
order of global batches and rank ``r`` takes the ``r``-th slice of each (augmentation is
seeded per sample, so the union is exactly the one-process batch); gradients are
averaged by :class:`~tinyconv.nn.parallel.DistributedDataParallel`, the step's loss and
the epoch's counts are all-reduced, so ``N x B`` on N ranks trains as ``N*B`` on one
process up to float32 summation order (with dropout: each rank draws its own masks,
seeded by (seed, epoch, rank)).  Validation and test are sharded by whole batches of 256
(every image is evaluated in the same batch as in one process) and the counts are
summed, so the accuracies are exactly one process's.  Only rank 0 prints, writes
checkpoints and plots (the others wait at a barrier after each save); ``resume`` reads
the checkpoint on every rank (a shared folder, as for one machine).

Data: ``data`` names a bundled real set (``"mnist5k"``, the default, or ``"digits"``;
see :mod:`tinyconv.data.datasets`), or a folder with ``train/`` and ``val/`` (and
optionally ``test/``) sub-folders in ImageFolder layout.

Checkpoint metadata (``meta`` of :func:`tinyconv.checkpoint.load_checkpoint`), which
``tinyconv predict`` reads: ``arch`` ("alexnet"), ``variant``, ``num_classes``,
``in_channels``, ``classes`` (names by label), ``preprocess`` (``mode`` "L"/"RGB",
``resize``, ``crop``, ``mean``, ``std``), ``epoch`` (completed epochs), ``step``,
``history``, ``config``, ``loader``, ``scheduler``, ``best_val_error``, ``best_epoch``.
"""
import atexit
import contextlib
import dataclasses
import math
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
    eval_limit: int = 0              # evaluate on the first N val/test images only (0 = all; quick runs)
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
                      "invert_hint": "MNIST digits are light strokes on a dark background"}
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
    preprocess = {"mode": mode, "resize": resize, "crop": crop, "mean": mean.tolist(), "std": None}
    return train, val, test, train.classes, preprocess


class _first:
    """The first ``n`` samples of a dataset."""

    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, min(n, len(dataset))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i]


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

    ``callback(event, info)`` (optional) is called with ``"step"`` after every
    optimizer step (info: epoch, step, loss) and ``"epoch"`` after every checkpoint;
    tests use it to interrupt a run.
    """

    cfg = dataclasses.replace(cfg or TrainConfig(), **overrides)
    if dist.is_initialized() or launched_world_size() == 1:
        return _train(cfg, callback)
    dist.init_process_group("mpi")                          # mpirun -n N tinyconv train
    try:
        result = _train(cfg, callback)
    except BaseException:
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
        os.makedirs(cfg.out, exist_ok=True)
    resumed = None
    if cfg.resume:
        path = cfg.resume_path or os.path.join(cfg.out, "last.npz")
        resumed = ckpt.load_checkpoint(path)
        saved = resumed["meta"].get("config", {})
        # the run's identity comes from the checkpoint; epochs, device and display may change
        cfg = dataclasses.replace(cfg, **{k: saved[k] for k in _RESUME_KEEPS if k in saved})
    if cfg.device not in ("cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ValueError(f"train: device must be 'cpu' or 'cuda', got {cfg.device!r}")
    if cfg.dropout > 1:
        raise ValueError(f"train: dropout must be a probability in [0, 1], got {cfg.dropout}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise ValueError(f"train: need epochs >= 1, batch_size >= 1 and lr > 0, got {cfg.epochs}, "
                         f"{cfg.batch_size}, {cfg.lr}")
    if _world() > 1:
        dist.barrier()                                      # the folder exists before anyone reads it
    with contextlib.ExitStack() as stack:
        if cfg.kernels:
            stack.enter_context(tinyconv.use_kernels(cfg.kernels))
        if cfg.device == "cpu":
            stack.enter_context(_cpu_threads(cpu_threads(cfg)))
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


class _Run:
    """One run's model, optimizer, loaders and bookkeeping; :func:`_run` drives its three
    steps per epoch: :meth:`train_epoch`, :meth:`evaluate_epoch`, :meth:`checkpoint`.

    Divergence guard: the loss is checked at every step (the loop reads it to the host
    anyway), the parameters and optimizer buffers before every save, and the
    validation metrics before they can choose ``best.npz``; anything non-finite raises
    :class:`TrainingDiverged` before a file is touched, so ``last.npz`` and
    ``best.npz`` keep the last good epochs and the message says which ones they hold.
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
        self.global_batch = cfg.batch_size * self.world
        if len(train_set) < self.global_batch:
            per = (f" ({cfg.batch_size} per rank x {self.world} ranks)" if self.world > 1 else "")
            raise ValueError(f"train: batch_size {self.global_batch}{per} is larger than the training set "
                             f"({len(train_set)} images), and an epoch takes whole batches only; use "
                             f"--batch-size {len(train_set) // self.world} or less")
        if cfg.eval_limit:
            val_set, test_set = _first(val_set, cfg.eval_limit), _first(test_set, cfg.eval_limit)
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
        self.loader = (_ShardLoader(train_set, cfg.batch_size, self.rank, self.world, **loader_args)
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
        if before != self.world:
            _log(f"note: {resumed['path']} was written by a run on {before} rank(s) (global batch "
                 f"{self.cfg.batch_size * before}); this one runs {self.world} "
                 f"(global batch {self.global_batch})")
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

    def diverged(self, what):
        return TrainingDiverged(f"train: {what} (lr {self.opt.param_groups[0]['lr']:g}); stopping, no file "
                                f"was overwritten. {self.kept()}. Try a smaller --lr.")

    # -- the three steps of an epoch ---------------------------------------------------
    def train_epoch(self, epoch):
        """One epoch of SGD steps -> (mean loss, error, images seen, seconds)."""
        import tinyconv
        import tinyconv.nn.functional as F
        cfg, model, opt, loader = self.cfg, self.net, self.opt, self.loader
        model.train()
        if self.world > 1:                  # each rank its own dropout masks, as reproducible as one process
            seq = np.random.SeedSequence([cfg.seed, epoch, self.rank])
            tinyconv.manual_seed(int(seq.generate_state(1)[0]))
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        steps_this_epoch = len(loader) - loader.batch
        if cfg.max_steps_per_epoch:
            steps_this_epoch = min(steps_this_epoch, cfg.max_steps_per_epoch)
        bar = _progress(loader, steps_this_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        for i, (images, labels) in enumerate(bar):
            x = tinyconv.tensor(images, device=cfg.device)
            y = tinyconv.tensor(labels, device=cfg.device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            value = float(loss.item())                    # the loop's one host sync per step
            if self.world > 1:                            # the global batch's loss: every rank sees a NaN
                value = float(_all_reduce_sum([value])[0]) / self.world
            if not math.isfinite(value):
                raise self.diverged(f"the loss became {value} at epoch {epoch + 1}, step {self.step + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.step += 1
            n = len(labels)
            pred = np.argmax(tinyconv.backend.to_device(logits.array, "cpu"), axis=1)
            correct += int((pred == labels).sum())
            seen += n
            loss_sum += value * n
            if bar is not loader:
                rate = seen * self.world / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.1%}",
                                img_s=f"{rate:.0f}", refresh=False)
            if self.callback is not None:
                self.callback("step", {"epoch": epoch, "step": self.step, "loss": value})
            if cfg.max_steps_per_epoch and i + 1 >= cfg.max_steps_per_epoch:
                break
        if hasattr(bar, "close") and bar is not loader:
            bar.close()
        loader.epoch, loader.batch = epoch + 1, 0           # an epoch cut short still counts as one
        if self.world > 1:                                  # the epoch's figures over every rank's images
            loss_sum, correct, seen = _all_reduce_sum([loss_sum, correct, seen]).tolist()
            seen = int(seen)
        # the last step's update is in no loss yet: the parameters themselves must be finite
        if not self.state_finite():
            raise self.diverged(f"the parameters became non-finite in epoch {epoch + 1} (by step "
                                f"{self.step}, the loss was still finite)")
        return loss_sum / seen, 1 - correct / seen, seen, time.perf_counter() - t0

    def state_finite(self):
        """Every parameter, buffer and optimizer buffer finite (checked before every save)."""
        arrays = [v.array for v in self.model.state_dict().values()]
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
        """Rank 0 writes (atomically), the others wait for it; all record what the file holds."""
        if self.rank == 0:
            self._write(path, epoch)
        if self.world > 1:
            dist.barrier()
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
                          "global_batch_size": self.global_batch}}
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
    per_rank = (f"data-parallel on {run.world} ranks x batch {cfg.batch_size} = " if run.world > 1 else "")
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
    test_loader = _eval_loader(run.test_set, cfg)
    test_loss, t1, t5 = evaluate(run.model, test_loader, cfg.device)
    result.update(test_loss=test_loss, test_top1_error=t1, test_top5_error=t5, test_accuracy=1 - t1)
    if cfg.plots and run.rank == 0:
        result.update(_plots(run.model, history, cfg.out, cfg))
    _log(f"test accuracy {1 - t1:.2%} (top-1 error {t1:.2%}, top-5 error {t5:.2%}) on "
         f"{len(run.test_set)} test images; checkpoint {run.last_path}")
    return result


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
