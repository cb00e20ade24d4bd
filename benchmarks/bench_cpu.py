#!/usr/bin/env python3
"""CPU benchmarks: tinyconv (NumPy reference and Numba kernels) against PyTorch, in one run.

    python benchmarks/bench_cpu.py                  # everything, 2 threads each side
    python benchmarks/bench_cpu.py --threads 1 --quick
    python3 dev.py bench [ARGS]                     # the same, from a fresh checkout

What it measures, at the paper AlexNet's shapes (batch 1 and 16), each forward and
forward+backward, for ``ref`` (tinyconv with ``use_kernels("reference")``), ``fast``
(tinyconv's Numba kernels) and ``torch`` (PyTorch on the CPU, oneDNN underneath):

* every layer type: the five convolutions, the two LRNs, the three 3/2 max-pools, ReLU,
  dropout and the three fully connected layers;
* the whole training step (forward, cross-entropy, backward, SGD with momentum 0.9 and
  weight decay 5e-4) of the paper AlexNet at batch 16 and of ``small28`` at batch 128.

Both sides get the same thread count (``tinyconv.set_num_threads`` sets Numba's and
BLAS's; ``torch.set_num_threads`` PyTorch's).  Each timing is the median of
``--repeats`` runs, with the implementations taking turns (each timed run right after
an untimed one of its own, see ``bench_interleaved``) so that other load on the
machine hits all of them alike; the ratios are what to quote.  PyTorch runs in a child process of its own, so
that each side keeps its own OpenMP runtime and settings (see ``TorchProcess``).
Numba's compile (or cache load) is paid by ``tinyconv.warmup()`` first and reported
apart.

The paper step is timed three ways (``--step-methods``), since they have disagreed on a
loaded machine: ``interleaved`` as above; ``separate``, each framework in fresh processes
one after the other, paired round by round (the ratio of each round's medians); and
``same``, both in one fresh process with PyTorch imported first, as in a notebook.  Each
is reported with its spread (median, IQR, min-max over rounds) and each side's peak RSS;
the Markdown names the most conservative ratio, the one to quote.  ``--tune-effect`` adds
a tinyconv process without ``tinyconv.tune_process()`` to each separate round;
``--conv-algorithm`` passes ``tinyconv.backends.conv_algorithm`` through (or times the step
per algorithm with ``all``) when this tinyconv has that choice.  fc6/fc7 with SGD are set
against the bytes they must move and the machine's measured bandwidth (STREAM-like copy
and triad).

Each convolution's achieved GFLOP/s is set against NumPy's plain float32 GEMM rate on
the same machine (this engine's ceiling: its convolutions are im2col + that GEMM), and
a fourth implementation, ``gemms``, times only the matrix products conv2d does, at its
shapes and in its orientations: the floor of im2col + BLAS, interleaved with the rest.

Writes ``benchmarks/results/cpu-<date>.json`` and ``.md`` (and ``.png`` when matplotlib
is installed), with the machine: CPU model, cores, BLAS and its kernel as threadpoolctl
reports them.  OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set in the environment, can
slow NumPy's GEMM: the script restarts itself without them, and with
OPENBLAS_THREAD_TIMEOUT=4 so that OpenBLAS's idle workers stop spinning on the cores the
Numba kernels need (``--keep-openblas-env`` keeps the environment as it is); all of it
is recorded.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import tinyconv
import tinyconv.nn.functional as F
import tinyconv.optim
from tinyconv.functional.conv import conv_output_size
from tinyconv.functional.lrn import ALEXNET_LRN
from tinyconv import nn

ROOT = Path(__file__).resolve().parent
IMPLS = ("ref", "fast", "torch")

# --------------------------------------------------------------------------- the machine


def source_commit():
    """The git commit of the tinyconv being measured ("+changes" if its checkout has uncommitted
    changes), or None outside a git checkout: results name the code they measured."""
    import subprocess
    src = os.path.dirname(os.path.abspath(tinyconv.__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def machine_info(threads):
    from threadpoolctl import threadpool_info
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, "logical_cores": os.cpu_count(), "threads": threads,
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__, "tinyconv": tinyconv.__version__,
        "tinyconv_commit": source_commit(),
        "blas": [{k: p.get(k) for k in ("internal_api", "version", "architecture", "threading_layer",
                                         "num_threads", "prefix")}
                 for p in threadpool_info() if p.get("user_api") == "blas"],
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS",
                                               "OMP_WAIT_POLICY", "NUMBA_NUM_THREADS")},
        "env_dropped_for_this_run": json.loads(os.environ.get("TINYCONV_BENCH_DROPPED_ENV", "{}")),
        "env_added_for_this_run": json.loads(os.environ.get("TINYCONV_BENCH_ADDED_ENV", "{}")),
        # other work on the machine skews parallel timings (both sides alike, but noisier)
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    return info


# --------------------------------------------------------------------------- timing


def _timed(fn):
    """Seconds one call of ``fn`` takes (what it returns, for a run timed in another process)."""
    if getattr(fn, "times_itself", False):
        return fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


#: untimed work before each timed run (at least one run)
WARM_S = 0.02


def bench_interleaved(fns, repeats, raw=None):
    """{impl: median seconds}: ``repeats`` rounds, each running every impl twice and timing the second.

    The untimed run just before each timed one is what keeps the comparison fair when
    the implementations take turns: while one runs, the other's threads sit idle, and on
    this project's 2-core virtual machine a parallel region started after some 50 ms of
    idling waited milliseconds for its second core (measured: tinyconv's LRN fwd+bwd
    7.6 ms back to back, 12-14 ms after a 50 ms sleep; PyTorch alike), and PyTorch's
    OpenMP threads spin for a few ms after each of its runs.  The untimed run absorbs
    both, as a training loop's steady state does.  ``raw``, a dict, receives every timed run.
    """
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            warm = 0.0
            while warm < WARM_S:             # short runs: several, until the cores are awake
                warm += _timed(fn)
            times[k].append(_timed(fn))
    if raw is not None:
        raw.update(times)
    return {k: statistics.median(v) for k, v in times.items()}


def gemm_rate(threads, repeats=5, n=2048):
    """NumPy's float32 GEMM rate in GFLOP/s (2 n^3 flops per n x n product)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    t = statistics.median(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / t / 1e9


def memory_bandwidth(mb=128, repeats=5):
    """The machine's memory bandwidth in GB/s, STREAM-like, on arrays far larger than the caches.

    ``copy``: NumPy ``copyto`` (one thread), 2 arrays moved; ``triad``: ``a = b + s c`` in a
    parallel Numba loop on all of Numba's threads, 3 arrays moved.  Bytes are counted as
    STREAM counts them (a write counts once, though the CPU may also read the line first).
    """
    import numba

    @numba.njit(parallel=True, cache=False)
    def triad(a, b, c, s):
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]
    n = (mb << 20) // 4
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    triad(a, b, c, np.float32(0.5))
    np.copyto(a, b)
    t_copy = min(_timed(lambda: np.copyto(a, b)) for _ in range(repeats))
    t_triad = min(_timed(lambda: triad(a, b, c, np.float32(0.5))) for _ in range(repeats))
    return {"copy": 2 * a.nbytes / t_copy / 1e9, "triad": 3 * a.nbytes / t_triad / 1e9, "array_mb": mb}


def fc_sgd_traffic(batch=16, repeats=3):
    """fc6 and fc7 at ``batch``: forward, backward and momentum SGD, timed against the bytes they must move.

    With batch 16 these layers are bound by memory, not arithmetic: per step each weight W
    (fc6 151 MB, fc7 67 MB in float32) is read by the forward GEMM and by the input-gradient
    GEMM, its gradient written once, and the fused SGD kernel reads W, .grad and the
    momentum buffer and writes W and the buffer: 8 passes over W's size, the least any
    implementation keeping PyTorch's semantics (``.grad`` populated, the update a separate
    ``step()``) can move.  Returns per layer the time, those bytes, and the GB/s achieved.
    """
    out = {}
    for name, i, o in (("fc6", 9216, 4096), ("fc7", 4096, 4096)):
        tinyconv.manual_seed(0)
        layer = nn.Linear(i, o)
        opt = tinyconv.optim.SGD(layer.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x = tinyconv.randn(batch, i, requires_grad=True)

        def step(opt=opt, x=x, layer=layer):
            opt.zero_grad()
            x.grad = None
            layer(x).sum().backward()
            opt.step()
        step()
        step()
        t = statistics.median(_timed(step) for _ in range(repeats))
        w_bytes = layer.weight.array.nbytes
        out[name] = {"ms": t * 1e3, "weight_mb": w_bytes / 1e6, "passes": 8,
                     "gb_moved": 8 * w_bytes / 1e9, "gb_s": 8 * w_bytes / t / 1e9}
    return out


# --------------------------------------------------------------------------- layer cases


def _layer_cases(batches):
    """(name, batch, kind, tinyconv fn, torch fn, input shapes, extra) for the paper's layers."""
    cases = []
    convs = [  # name, C, H, O, k, stride, pad, groups
        ("conv1", 3, 227, 96, 11, 4, 0, 1), ("conv2", 96, 27, 256, 5, 1, 2, 2),
        ("conv3", 256, 13, 384, 3, 1, 1, 1), ("conv4", 384, 13, 384, 3, 1, 1, 2),
        ("conv5", 384, 13, 256, 3, 1, 1, 2)]
    lrn = ALEXNET_LRN
    for N in batches:
        for name, C, H, O, k, s, p, g in convs:
            OH = conv_output_size(H, k, s, p)
            flops = 2 * N * O * (C // g) * k * k * OH * OH
            cases.append(dict(
                name=name, batch=N, shapes=[(N, C, H, H), (O, C // g, k, k), (O,)], flops=flops,
                gemms=lambda N=N, O=O, K=C // g * k * k, L=OH * OH, g=g: _conv_gemm_fns(N, O, K, L, g),
                tc=lambda x, w, b, s=s, p=p, g=g: F.conv2d(x, w, b, stride=s, padding=p, groups=g),
                pt=lambda x, w, b, s=s, p=p, g=g: _torch().nn.functional.conv2d(
                    x, w, b, stride=s, padding=p, groups=g)))
        for name, C, H in (("lrn1", 96, 55), ("lrn2", 256, 27)):
            cases.append(dict(name=name, batch=N, shapes=[(N, C, H, H)],
                              tc=lambda x: F.local_response_norm(x, **lrn),
                              pt=lambda x: _torch().nn.functional.local_response_norm(x, **lrn)))
        for name, C, H in (("pool1", 96, 55), ("pool2", 256, 27), ("pool5", 256, 13)):
            cases.append(dict(name=name, batch=N, shapes=[(N, C, H, H)],
                              tc=lambda x: F.max_pool2d(x, 3, 2),
                              pt=lambda x: _torch().nn.functional.max_pool2d(x, 3, 2)))
        cases.append(dict(name="relu1", batch=N, shapes=[(N, 96, 55, 55)], tc=F.relu,
                          pt=lambda x: _torch().relu(x)))
        cases.append(dict(name="dropout6", batch=N, shapes=[(N, 4096)],
                          tc=lambda x: F.dropout(x, 0.5, True),
                          pt=lambda x: _torch().nn.functional.dropout(x, 0.5, True)))
        for name, i, o in (("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)):
            cases.append(dict(name=name, batch=N, shapes=[(N, i), (o, i), (o,)], flops=2 * N * i * o,
                              tc=F.linear, pt=lambda x, w, b: _torch().nn.functional.linear(x, w, b)))
    return cases


def _conv_gemm_fns(N, O, K, L, G):
    """{"fwd": fn, "fwdbwd": fn}: only the matrix products conv2d does, in NumPy, on its shapes.

    The same products in the same orientations as ``Conv2dFn`` (forward Wg @ cols;
    backward cols @ gy^T and Wg^T @ gy), into preallocated outputs, with none of the op's
    other work (im2col, col2im, copies).  Their time is what im2col + BLAS cannot go below.
    """
    rng = np.random.default_rng(2)
    M = O // G
    w = rng.standard_normal((G, M, K), dtype=np.float32)
    w_t = np.ascontiguousarray(w.transpose(0, 2, 1))
    cols = rng.standard_normal((G, K, N * L), dtype=np.float32)
    gy = rng.standard_normal((G, M, N * L), dtype=np.float32)
    y, gcols = np.empty((G, M, N * L), np.float32), np.empty((G, K, N * L), np.float32)

    def fwd():
        np.matmul(w, cols, out=y)

    def fwdbwd():
        fwd()
        cols @ gy.transpose(0, 2, 1)
        np.matmul(w_t, gy, out=gcols)
    return {"fwd": fwd, "fwdbwd": fwdbwd}


def _torch():
    import torch
    return torch


def _layer_data(case, seed=0):
    """The case's float32 inputs and the upstream gradient for its output, the same in every process."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s, dtype=np.float32) * (0.1 if i else 1.0)
              for i, s in enumerate(case["shapes"])]
    gy_cache = {}

    def gy_for(shape):
        shape = tuple(shape)
        if shape not in gy_cache:
            gy_cache[shape] = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
        return gy_cache[shape]
    return arrays, gy_for


def _layer_fns(case):
    """{impl: {"fwd": fn, "fwdbwd": fn}} for tinyconv's two paths (and the conv GEMMs alone)."""
    arrays, gy_for = _layer_data(case)
    tcs = [tinyconv.tensor(a, requires_grad=True) for a in arrays]

    def tc_pair(mode):
        def fwd():
            with tinyconv.use_kernels(mode), tinyconv.no_grad():
                case["tc"](*tcs)

        def fwdbwd():
            with tinyconv.use_kernels(mode):
                for t in tcs:
                    t.grad = None
                y = case["tc"](*tcs)
                y.backward(tinyconv.from_numpy(gy_for(y.shape)))
        return {"fwd": fwd, "fwdbwd": fwdbwd}

    out = {"ref": tc_pair("reference"), "fast": tc_pair("fast")}
    if "gemms" in case:
        out["gemms"] = case["gemms"]()
    return out


def _torch_layer_fns(case):
    """{"fwd": fn, "fwdbwd": fn} for PyTorch, on the same data as :func:`_layer_fns` (torch worker)."""
    torch = _torch()
    arrays, gy_for = _layer_data(case)
    pts = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]

    def pt_fwd():
        with torch.no_grad():
            case["pt"](*pts)

    def pt_fwdbwd():
        for t in pts:
            t.grad = None
        y = case["pt"](*pts)
        y.backward(torch.from_numpy(gy_for(y.shape)))
    return {"fwd": pt_fwd, "fwdbwd": pt_fwdbwd}


# --------------------------------------------------------------------------- training steps


def _build_tc_model(variant):
    try:
        from tinyconv.models import alexnet
        return alexnet(variant=variant)
    except ImportError:   # before tinyconv.models existed: the paper net built here
        if variant != "paper":
            raise
        lrn = ALEXNET_LRN
        features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**lrn),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))
        classifier = nn.Sequential(nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
                                   nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
                                   nn.Linear(4096, 1000))
        return nn.Sequential(features, nn.Flatten(), classifier)


def _torch_twin(module):
    """The same network in torch.nn, layer for layer, with tinyconv's weights copied in."""
    torch = _torch()
    tnn = torch.nn
    name = type(module).__name__
    if hasattr(module, "features") and hasattr(module, "classifier"):      # tinyconv AlexNet
        parts = [_torch_twin(module.features)]
        if getattr(module, "avgpool", None) is not None:
            parts.append(_torch_twin(module.avgpool))
        return tnn.Sequential(*parts, tnn.Flatten(), _torch_twin(module.classifier))
    if name == "Sequential":
        return tnn.Sequential(*[_torch_twin(m) for m in module])
    if name == "Conv2d":
        w = module.weight.array
        m = tnn.Conv2d(w.shape[1] * module.groups, w.shape[0], w.shape[2:], stride=module.stride,
                       padding=module.padding, groups=module.groups, bias=module.bias is not None)
    elif name == "Linear":
        w = module.weight.array
        m = tnn.Linear(w.shape[1], w.shape[0], bias=module.bias is not None)
    elif name == "ReLU":
        return tnn.ReLU()
    elif name == "LocalResponseNorm":
        return tnn.LocalResponseNorm(module.size, module.alpha, module.beta, module.k)
    elif name == "MaxPool2d":
        return tnn.MaxPool2d(module.kernel_size, module.stride, module.padding)
    elif name == "Dropout":
        return tnn.Dropout(module.p)
    elif name == "Flatten":
        return tnn.Flatten()
    else:
        raise NotImplementedError(f"bench_cpu: no torch twin for {name}")
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(module.weight.array))
        if module.bias is not None:
            m.bias.copy_(torch.from_numpy(module.bias.array))
    return m


def _step_data(variant, batch, classes=None):
    """The model (seeded), its input batch and targets: the same in every process."""
    tinyconv.manual_seed(0)
    model = _build_tc_model(variant)
    in_shape = getattr(model, "input_shape", (3, 227, 227))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(in_shape), dtype=np.float32)
    n_classes = classes or (1000 if variant == "paper" else 10)
    return model, x, rng.integers(0, n_classes, batch)


def _step_fns(variant, batch, classes=None):
    """{"ref": fn, "fast": fn}: one training step (forward, loss, backward, SGD) of tinyconv."""
    model, x, t = _step_data(variant, batch, classes)
    opt = tinyconv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xt, tt = tinyconv.from_numpy(x), tinyconv.from_numpy(t)

    def tc_step(mode):
        def step():
            with tinyconv.use_kernels(mode):
                opt.zero_grad()
                loss = F.cross_entropy(model(xt), tt)
                loss.backward()
                opt.step()
        return step
    return {"ref": tc_step("reference"), "fast": tc_step("fast")}


def _torch_step_fn(variant, batch, classes=None):
    """The same step in PyTorch, on a torch.nn twin with the same weights (torch worker)."""
    torch = _torch()
    model, x, t = _step_data(variant, batch, classes)
    tmodel = _torch_twin(model)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xp_, tp_ = torch.from_numpy(x), torch.from_numpy(t)

    def pt_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tmodel(xp_), tp_)
        loss.backward()
        topt.step()
    return pt_step


# --------------------------------------------------------------------------- PyTorch's process


def _torch_worker(conn, threads, batches):
    """Serve PyTorch timings to the benchmark: ("layer", name, batch, pass) or ("step", variant, batch).

    Runs in a process of its own, so that PyTorch keeps its OpenMP runtime and settings
    (see :class:`TorchProcess`).  Answers each request with the seconds one run took.
    """
    try:
        torch = _torch()
    except ImportError:
        conn.send(None)
        return
    torch.set_num_threads(threads)
    conn.send({"torch": str(torch.__version__), "torch_mkldnn": bool(torch.backends.mkldnn.is_available()),
               "torch_threads": torch.get_num_threads(),
               "torch_env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}})
    cases = {(c["name"], c["batch"]): c for c in _layer_cases(batches)}
    fns = {}
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, *key = msg
        if kind == "rss":
            conn.send(_peak_rss_mb())
            continue
        if tuple(key) not in fns:
            if kind == "layer":
                name, batch, pss = key
                fns.update({(name, batch, p): f for p, f in _torch_layer_fns(cases[name, batch]).items()})
            else:
                fns[tuple(key)] = _torch_step_fn(*key)
        conn.send(_timed(fns[tuple(key)]))


class TorchProcess:
    """PyTorch, timed in a child process, one run per request.

    Why not in this process: PyTorch loads its OpenMP runtime into the global symbol
    scope, so that Numba's parallel kernels, started after it, run on PyTorch's runtime
    and its settings (its threads spin for a while after each parallel region; on two
    cores they then steal the cores from the next GEMM: measured here, that made
    tinyconv's paper step 40% slower).  tinyconv's Numba kernels want
    ``OMP_WAIT_POLICY=PASSIVE``, which in turn makes some of PyTorch's small
    convolutions up to 1.7x slower.  In a process each, both run as their users get
    them.  The runs still alternate one at a time, so machine load hits both alike.
    """

    def __init__(self, threads, batches):
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_torch_worker, args=(child, threads, batches), daemon=True)
        self.proc.start()
        self.info = self.conn.recv()          # None: PyTorch is not installed

    def fn(self, *request):
        """A function that runs ``request`` once over there and returns the seconds it took."""
        def run():
            self.conn.send(request)
            return self.conn.recv()
        run.times_itself = True
        return run

    def peak_rss_mb(self):
        self.conn.send(("rss",))
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.proc.join(timeout=30)


# --------------------------------------------------------------------------- steps in fresh processes


def _peak_rss_mb():
    """This process's peak resident memory in MB.

    Linux: ``VmHWM`` of /proc/self/status, which starts afresh at exec (``getrusage``'s
    ``ru_maxrss`` keeps the parent's peak across fork and exec, so a child started from
    this benchmark would report the benchmark's own).  Elsewhere ``getrusage``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _set_conv_algorithm(name):
    """Select tinyconv's conv2d algorithm (``tinyconv.backends.conv_algorithm``) if this tinyconv has it.

    Returns the name in force, or None when the attribute does not exist (then nothing is set).
    """
    backends = getattr(tinyconv, "backends", None)
    if name is None or backends is None or not hasattr(backends, "conv_algorithm"):
        return None
    backends.conv_algorithm = name
    return backends.conv_algorithm


def conv_algorithms():
    """The conv algorithm names this tinyconv knows (empty when it has no ``conv_algorithm`` choice)."""
    if not hasattr(getattr(tinyconv, "backends", None), "conv_algorithm"):
        return ()
    try:
        from tinyconv.functional.conv_winograd import ALGORITHMS
        return tuple(ALGORITHMS)
    except ImportError:
        return (tinyconv.backends.conv_algorithm,)


def _child_step(spec):
    """Body of one fresh process (``--child``): time ``spec["steps"]`` training steps, print JSON.

    spec: side ("fast", "torch" or "both": PyTorch and tinyconv in this one process, PyTorch
    imported first as in a notebook), variant, batch, threads, steps, tune (call
    ``tinyconv.tune_process()`` first), conv_algorithm (or None).  For "both" the two
    steps alternate, each timed run right after an untimed one of its own.
    """
    torch = None
    if spec["side"] in ("torch", "both"):
        torch = _torch()
        torch.set_num_threads(spec["threads"])
    tuned = tinyconv.tune_process() if spec["tune"] and spec["side"] != "torch" else None
    out = {"spec": spec, "tuned": tuned, "ms": {}, "cpu_ms": {}}
    fns = {}
    if spec["side"] in ("fast", "both"):
        out["conv_algorithm"] = _set_conv_algorithm(spec.get("conv_algorithm"))
        tinyconv.set_num_threads(spec["threads"])
        tinyconv.warmup(("float32",))
        fns["fast"] = _step_fns(spec["variant"], spec["batch"])["fast"]
    if torch is not None:
        fns["torch"] = _torch_step_fn(spec["variant"], spec["batch"])
    for k, fn in fns.items():
        out["ms"][k], out["cpu_ms"][k] = [], []
        fn()                                        # first step: allocations, page faults, caches
    for _ in range(spec["steps"]):
        for k, fn in fns.items():
            if len(fns) > 1:
                fn()                                # untimed, as bench_interleaved does
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            out["ms"][k].append((time.perf_counter() - t0) * 1e3)
            out["cpu_ms"][k].append((time.process_time() - c0) * 1e3)
    from threadpoolctl import threadpool_info
    import numba
    out["peak_rss_mb"] = _peak_rss_mb()
    out["threading_layer"] = numba.threading_layer() if "fast" in fns else None
    out["pools"] = [(p["internal_api"], p["num_threads"], os.path.basename(p["filepath"]))
                    for p in threadpool_info()]
    print("CHILD " + json.dumps(out), flush=True)


def run_child(spec, env):
    """Run :func:`_child_step` in a fresh Python with environment ``env``; its JSON result."""
    import subprocess
    run = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                         env=env, capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("CHILD ")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"bench_cpu: child {spec} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    return json.loads(lines[-1][len("CHILD "):])


def spread(values):
    """{"median", "q1", "q3", "min", "max", "n"} of a list of numbers (None for an empty one)."""
    if not values:
        return None
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q1": q[0], "q3": q[2], "min": v[0], "max": v[-1], "n": len(v)}


def step_in_fresh_processes(variant, batch, threads, rounds, steps, env, same_process=False, tune=True,
                            conv_algorithm=None, untuned_too=False):
    """The training step timed in fresh processes, paired round by round.

    Each round starts a tinyconv process and then a PyTorch process (the order alternating
    from round to round), each timing ``steps`` steps; the round's ratio is the two
    medians' quotient, so machine load that changes between rounds cancels in it.  With
    ``same_process`` a round is instead one process running both, PyTorch imported first
    (a learner's notebook comparing the two).  ``untuned_too`` adds a tinyconv process
    without :func:`tinyconv.tune_process` to each round (its paired effect).
    """
    base = dict(variant=variant, batch=batch, threads=threads, steps=steps, tune=tune,
                conv_algorithm=conv_algorithm)
    per_round, children = [], []
    for r in range(rounds):
        if same_process:
            sides = [("both", tune)]
        else:
            sides = [("fast", tune), ("torch", False)]
            if r % 2:
                sides.reverse()
            if untuned_too:
                sides.append(("fast-untuned", False))
        got = {}
        for side, tn in sides:
            res = run_child({**base, "side": side.split("-")[0], "tune": tn}, env)
            children.append({"side": side, "round": r, "peak_rss_mb": res["peak_rss_mb"],
                             "threading_layer": res["threading_layer"], "pools": res["pools"],
                             "tuned": res["tuned"], "conv_algorithm": res.get("conv_algorithm")})
            for k, v in res["ms"].items():
                key = "fast-untuned" if side == "fast-untuned" else k
                got[key] = {"ms": v, "cpu_ms": res["cpu_ms"][k], "peak_rss_mb": res["peak_rss_mb"]}
        per_round.append(got)
        print(f"  round {r}: " + "  ".join(f"{k} {statistics.median(v['ms']):.0f} ms "
                                          f"(cpu {statistics.median(v['cpu_ms']):.0f})"
                                          for k, v in got.items()), flush=True)
    out = {"rounds": per_round, "children": children}
    keys = sorted({k for g in per_round for k in g})
    out["ms"] = {k: spread([statistics.median(g[k]["ms"]) for g in per_round if k in g]) for k in keys}
    out["all_ms"] = {k: spread([t for g in per_round if k in g for t in g[k]["ms"]]) for k in keys}
    out["cpu_ms"] = {k: spread([statistics.median(g[k]["cpu_ms"]) for g in per_round if k in g])
                     for k in keys}
    out["peak_rss_mb"] = {k: max(g[k]["peak_rss_mb"] for g in per_round if k in g) for k in keys}
    if "torch" in keys and "fast" in keys:
        med = statistics.median
        out["fast_over_torch"] = spread([med(g["fast"]["ms"]) / med(g["torch"]["ms"]) for g in per_round])
    if "fast-untuned" in keys:
        out["tuned_over_untuned"] = spread([statistics.median(g["fast"]["ms"])
                                            / statistics.median(g["fast-untuned"]["ms"]) for g in per_round])
    return out


# --------------------------------------------------------------------------- report


def _ratio(a, b):
    return None if a is None or b is None else a / b


def _fmt_ms(v):
    return "-" if v is None else f"{v * 1e3:9.2f}"


def _fmt_r(v):
    return "-" if v is None else f"{v:6.2f}"


def render_table(rows, gemm):
    """Markdown table: ms per impl, fast/torch and ref/fast ratios, conv GFLOP/s, conv GEMMs alone."""
    head = ("| case | batch | pass | ref ms | fast ms | torch ms | fast/torch | ref/fast "
            "| GFLOP | floor ms | fast GFLOP/s | torch GFLOP/s | fast / GEMM | GEMMs ms | GEMMs/torch |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        t = r["ms"]
        gf, gt = r.get("gflops_fast"), r.get("gflops_torch")
        gfl, floor = r.get("gflop"), r.get("floor_ms")
        lines.append(
            f"| {r['name']} | {r['batch']} | {r['pass']} "
            f"| {_fmt_ms(t.get('ref'))} | {_fmt_ms(t.get('fast'))} "
            f"| {_fmt_ms(t.get('torch'))} | {_fmt_r(_ratio(t.get('fast'), t.get('torch')))} "
            f"| {_fmt_r(_ratio(t.get('ref'), t.get('fast')))} "
            f"| {'-' if gfl is None else f'{gfl:.2f}'} "
            f"| {'-' if floor is None else f'{floor:.1f}'} "
            f"| {'-' if gf is None else f'{gf:.1f}'} "
            f"| {'-' if gt is None else f'{gt:.1f}'} "
            f"| {'-' if gf is None else f'{gf / gemm:.2f}'} "
            f"| {_fmt_ms(t.get('gemms'))} | {_fmt_r(_ratio(t.get('gemms'), t.get('torch')))} |")
    return "\n".join(lines)


def _plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sel = [r for r in rows if r["pass"] in ("fwdbwd", "step") and (r["batch"] != 1 or r["pass"] == "step")]
    labels = [f"{r['name']}\nN={r['batch']}" for r in sel]
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(sel)), 4.5))
    width = 0.27
    for k, impl in enumerate(IMPLS):
        vals = [(r["ms"].get(impl) or 0) / (r["ms"].get("torch") or r["ms"]["fast"]) for r in sel]
        ax.bar(np.arange(len(sel)) + (k - 1) * width, vals, width, label=impl)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(sel)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("time / PyTorch's (log; lower is faster)")
    ax.set_title("tinyconv vs PyTorch CPU, forward+backward (training step: fwd, bwd, SGD)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TARGETS = [  # (what, case, batch, pass, the fast/torch ratio it must reach)
    ("paper AlexNet training step, batch 16: no slower than PyTorch", "step_paper", 16, "step", 1.0),
    ("LRN fwd+bwd at 16x96x55x55: at least 4x faster", "lrn1", 16, "fwdbwd", 0.25),
    ("3/2 max-pool fwd+bwd at 16x96x55x55: no slower", "pool1", 16, "fwdbwd", 1.0),
    ("conv2 fwd+bwd at batch 16: within 1.5x of oneDNN", "conv2", 16, "fwdbwd", 1.5),
]


def _fmt_spread(sp, unit=""):
    if not sp:
        return "-"
    if "q1" not in sp:
        return f"{sp['median']:.2f}{unit}"
    return (f"{sp['median']:.2f}{unit} (IQR {sp['q1']:.2f}-{sp['q3']:.2f}, "
            f"min-max {sp['min']:.2f}-{sp['max']:.2f})")


def _ms_spread(sp):
    return "-" if not sp else (f"{sp['median']:.0f} (IQR {sp['q1']:.0f}-{sp['q3']:.0f}, "
                               f"min-max {sp['min']:.0f}-{sp['max']:.0f}, n={sp['n']})")


def most_conservative(three):
    """(method, fast/torch median ratio): the method whose ratio is least favourable to tinyconv."""
    got = {m: r["fast_over_torch"]["median"] for m, r in three.items() if r.get("fast_over_torch")}
    return max(got.items(), key=lambda kv: kv[1]) if got else (None, None)


def render_three_ways(three, per_algo, step="paper:16"):
    """Markdown: the training step timed three ways, with spread, peak RSS, and per conv algorithm."""
    if not three and not per_algo:
        return []
    out = [f"## The training step ({step}: variant and batch), timed three ways", "",
           "interleaved: this process (tinyconv) and a PyTorch child taking turns run by run; "
           "separate: each framework in fresh processes one after the other, paired round by round "
           "(ratio per round); same: both in one fresh process, PyTorch imported first, taking turns.  "
           "ms per step: median over rounds of each round's median (interleaved: over runs), "
           "with IQR and min-max.", "",
           "| method | tinyconv ms | PyTorch ms | fast/torch | peak RSS MB (tinyconv / PyTorch) |",
           "|---|---|---|---|---|"]
    for method, r in three.items():
        ms, rss = r.get("ms", {}), r.get("peak_rss_mb", {})
        rss_txt = " / ".join("-" if rss.get(k) is None else f"{rss[k]:.0f}" for k in ("fast", "torch"))
        if method == "same":
            rss_txt = f"{rss.get('fast', 0):.0f} (one process)"
        out.append(f"| {method} | {_ms_spread(ms.get('fast'))} | {_ms_spread(ms.get('torch'))} "
                   f"| {_fmt_spread(r.get('fast_over_torch'))} | {rss_txt} |")
    if "separate" in three and three["separate"].get("tuned_over_untuned"):
        r = three["separate"]
        out += ["", f"tinyconv.tune_process() effect (separate processes, paired per round): tuned/untuned "
                    f"{_fmt_spread(r['tuned_over_untuned'])}; untuned step "
                    f"{_ms_spread(r['ms'].get('fast-untuned'))} ms."]
    method, ratio = most_conservative(three)
    if method:
        out += ["", f"Most conservative (least favourable to tinyconv): **{method}, "
                    f"{ratio:.2f}x PyTorch's time**."]
    if per_algo:
        out += ["", "### The paper step per conv algorithm (tinyconv, fresh processes)", "",
                "| conv_algorithm | ms | peak RSS MB |", "|---|---|---|"]
        for algo, r in per_algo.items():
            if "skipped" in r:
                out.append(f"| {algo} | skipped: {r['skipped']} | - |")
            else:
                out.append(f"| {algo} | {_ms_spread(r['ms'])} | {r['peak_rss_mb']:.0f} |")
    return out


def render_fc_sgd(fc, bw):
    """Markdown: fc6/fc7 forward+backward+SGD against the bytes they must move and the machine's bandwidth."""
    if not fc:
        return []
    out = ["## Fully connected layers and SGD against memory bandwidth (batch 16)", "",
           f"Machine: copy {bw['copy']:.1f} GB/s (NumPy, one thread), triad {bw['triad']:.1f} GB/s (Numba, "
           f"all threads), {bw['array_mb']} MB arrays.  Bytes: 8 passes over the weight's size per step "
           "(forward GEMM and input-gradient GEMM read W, the weight-gradient GEMM writes .grad, fused "
           "SGD reads W, .grad, momentum and writes W, momentum).", "",
           "| layer | W MB | ms | GB moved (at least) | GB/s | of triad |", "|---|---|---|---|---|---|"]
    for k, v in fc.items():
        out.append(f"| {k} | {v['weight_mb']:.0f} | {v['ms']:.0f} | {v['gb_moved']:.2f} | {v['gb_s']:.1f} "
                   f"| {v['gb_s'] / bw['triad']:.2f} |")
    return out


def render_targets(rows):
    """The issue's targets, each with its measured fast/torch ratio (lines of Markdown)."""
    out = ["| target | fast/torch | goal | met |", "|---|---|---|---|"]
    for what, name, batch, pss, goal in TARGETS:
        r = next((r for r in rows if (r["name"], r["batch"], r["pass"]) == (name, batch, pss)), None)
        ratio = None if r is None else _ratio(r["ms"].get("fast"), r["ms"].get("torch"))
        met = "-" if ratio is None else ("yes" if ratio <= goal else "no")
        out.append(f"| {what} | {_fmt_r(ratio).strip()} | <= {goal} | {met} |")
    return out


# --------------------------------------------------------------------------- main

_OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _restart_without_openblas_overrides(args, argv, script=__file__):
    """Re-run this script (or ``script``: bench_conv_algos.py) with OpenBLAS set up to share cores.

    OpenBLAS reads its environment when NumPy loads it, hence the restart.

    * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dropped: some machines set them globally,
      and they can pin OpenBLAS to a slower GEMM kernel than the CPU supports.
    * OPENBLAS_THREAD_TIMEOUT=4 (unless set): OpenBLAS's workers otherwise spin about
      0.1 s after every GEMM, on the very cores the next Numba kernel needs; measured on
      2 busy cores that doubled the paper step, and taking turns with PyTorch it doubled
      PyTorch's conv5 (bench_conv_algos.py).  PyTorch (MKL, OpenMP) is unaffected.
    The benchmark alone does this (tests and CI keep the environment as it is); the
    changes are recorded in the results.
    """
    present = {k: os.environ[k] for k in _OPENBLAS_OVERRIDES if k in os.environ}
    add = {} if "OPENBLAS_THREAD_TIMEOUT" in os.environ else {"OPENBLAS_THREAD_TIMEOUT": "4"}
    if not (present or add) or args.keep_openblas_env:
        return
    env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_OVERRIDES}
    env.update(add)
    env["TINYCONV_BENCH_DROPPED_ENV"] = json.dumps(present)
    env["TINYCONV_BENCH_ADDED_ENV"] = json.dumps(add)
    name = os.path.basename(script)
    print(f"{name}: restarting without {present}, with {add} (--keep-openblas-env: as is)", flush=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    os.execve(sys.executable, [sys.executable, os.path.abspath(script), *argv], env)



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per layer case (median)")
    ap.add_argument("--step-repeats", type=int, default=5, help="timed runs per training step")
    ap.add_argument("--batches", default="1,16", help="layer batch sizes (default 1,16)")
    ap.add_argument("--only", default="", help="comma-separated case names (e.g. lrn1,pool1,step)")
    ap.add_argument("--no-ref", action="store_true", help="skip the NumPy reference (much faster)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, batch 16 only")
    ap.add_argument("--out", default=str(ROOT / "results"), help="folder for the json/md/png")
    ap.add_argument("--tag", default=None, help="file name stem (default cpu-<UTC date-time>)")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (by default: restart without them)")
    ap.add_argument("--step-methods", default="interleaved,separate,same",
                    help="how to time the paper step: interleaved (PyTorch in a child, runs taking turns), "
                         "separate (each framework in fresh processes, paired round by round), "
                         "same (both in one fresh process); default all three")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of fresh processes (separate, same)")
    ap.add_argument("--conv-algorithm", default=None,
                    help="tinyconv.backends.conv_algorithm for the steps, or a comma list / 'all' to time "
                         "the paper step (fresh processes) with each; ignored when tinyconv has no such "
                         "choice")
    ap.add_argument("--untuned", action="store_true",
                    help="do not call tinyconv.tune_process() in this process (interleaved timings)")
    ap.add_argument("--tune-effect", action="store_true",
                    help="separate: also time tinyconv without tune_process() each round (paired effect)")
    ap.add_argument("--three-way", default="paper:16",
                    help="VARIANT:BATCH of the step timed three ways (default paper:16)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child_step(json.loads(args.child))
        return 0
    _restart_without_openblas_overrides(args, argv)
    if args.quick:
        args.repeats, args.step_repeats, args.batches = 3, 3, "16"
        args.rounds = min(args.rounds, 2)
    methods = [m for m in args.step_methods.split(",") if m]
    if set(methods) - {"interleaved", "separate", "same"}:
        ap.error(f"--step-methods: expected interleaved, separate, same; got {args.step_methods}")
    algos = [] if args.conv_algorithm is None else (
        list(conv_algorithms()) if args.conv_algorithm == "all" else args.conv_algorithm.split(","))
    child_env = dict(os.environ)     # the children start as this process did, before tune_process
    only = {s for s in args.only.split(",") if s}
    batches = [int(b) for b in args.batches.split(",")]

    # PyTorch in a process of its own, started before tune_process sets OMP_WAIT_POLICY for Numba
    # (the child would inherit it): see TorchProcess
    torch_proc = TorchProcess(args.threads, batches)
    if torch_proc.info is None:
        print("PyTorch is not installed: timing tinyconv only", file=sys.stderr)
    tuned = tinyconv.tune_process() if not args.untuned else None
    conv_algo = _set_conv_algorithm(algos[0]) if len(algos) == 1 else None
    tinyconv.set_num_threads(args.threads)
    info = machine_info(args.threads)
    info["tune_process"] = tuned
    info["conv_algorithm"] = conv_algo if algos else getattr(getattr(tinyconv, "backends", None),
                                                             "conv_algorithm", None)
    info["bandwidth_gb_s"] = memory_bandwidth()
    info.update(torch_proc.info or {"torch": None})
    print(f"machine: {info['cpu']}, {info['logical_cores']} cores, threads={args.threads}, "
          f"BLAS={info['blas']}, torch={info.get('torch')}, env={info['env']}", flush=True)
    warm = tinyconv.warmup(("float32",))
    info["numba_warmup_s"] = warm["total_s"]
    info["numba_compile_stats"] = tinyconv.compile_stats()
    print(f"numba warm-up (compile or cache load, all kernels, float32): {warm['total_s']:.2f} s")
    gemm = gemm_rate(args.threads)
    info["numpy_gemm_gflops"] = gemm
    print(f"NumPy float32 GEMM (2048^3): {gemm:.1f} GFLOP/s", flush=True)

    if "torch" in sys.modules:    # the point of TorchProcess; a stray import would undo it
        raise RuntimeError("bench_cpu: PyTorch was imported into the tinyconv process")
    rows = []
    for case in _layer_cases(batches):
        if only and case["name"] not in only:
            continue
        fns = _layer_fns(case)
        for pss in ("fwd", "fwdbwd"):
            impls = {k: v[pss] for k, v in fns.items() if not (args.no_ref and k == "ref")}
            if torch_proc.info:
                impls["torch"] = torch_proc.fn("layer", case["name"], case["batch"], pss)
            med = bench_interleaved(impls, args.repeats)
            row = {"name": case["name"], "batch": case["batch"], "pass": pss, "ms": med}
            if "flops" in case:
                fl = case["flops"] * (1 if pss == "fwd" else 3)
                row["gflop"] = fl / 1e9
                row["floor_ms"] = fl / (gemm * 1e9) * 1e3          # at NumPy's GEMM rate
                row["gflops_fast"] = fl / med["fast"] / 1e9
                if "torch" in med:
                    row["gflops_torch"] = fl / med["torch"] / 1e9
            rows.append(row)
            t = med
            print(f"{case['name']:>8} N={case['batch']:<3} {pss:<6}  ref {_fmt_ms(t.get('ref'))}  fast "
                  f"{_fmt_ms(t['fast'])}  torch {_fmt_ms(t.get('torch'))} ms   fast/torch "
                  f"{_fmt_r(_ratio(t['fast'], t.get('torch')))}", flush=True)
    step_raw = {}
    for variant, batch in (("paper", 16), ("small28", 128)):
        name = f"step_{variant}"
        if only and name not in only and "step" not in only or "interleaved" not in methods:
            continue
        fns = _step_fns(variant, batch)
        if args.no_ref:
            fns.pop("ref")
        if torch_proc.info:
            fns["torch"] = torch_proc.fn("step", variant, batch)
        raw = {}
        med = bench_interleaved(fns, args.step_repeats, raw)
        step_raw[name] = {k: spread([t * 1e3 for t in v]) for k, v in raw.items()}
        row = {"name": name, "batch": batch, "pass": "step", "ms": med}
        if variant == "paper":   # the GEMM work of a step: every conv and fc, forward and both gradients
            fl = 3 * sum(c["flops"] for c in _layer_cases([batch]) if "flops" in c)
            row.update(gflop=fl / 1e9, floor_ms=fl / (gemm * 1e9) * 1e3)
        rows.append(row)
        print(f"{name:>8} N={batch:<3} step    ref {_fmt_ms(med.get('ref'))}  fast {_fmt_ms(med['fast'])}  "
              f"torch {_fmt_ms(med.get('torch'))} ms   fast/torch "
              f"{_fmt_r(_ratio(med['fast'], med.get('torch')))}", flush=True)

    step_three_ways = {}
    tw_variant, tw_batch = args.three_way.split(":")
    tw_batch = int(tw_batch)
    tw_name = f"step_{tw_variant}"
    if "interleaved" in methods and tw_name in step_raw:
        ms = step_raw[tw_name]
        step_three_ways["interleaved"] = {
            "ms": ms, "peak_rss_mb": {"fast": _peak_rss_mb(), "torch": torch_proc.peak_rss_mb()
                                      if torch_proc.info else None},
            "note": "tinyconv's peak RSS is this whole benchmark process's (every layer case too)"}
        if "torch" in ms:
            step_three_ways["interleaved"]["fast_over_torch"] = {"median": ms["fast"]["median"]
                                                                 / ms["torch"]["median"]}
    want_step = not only or "step" in only or tw_name in only
    for method in ("separate", "same"):
        if method in methods and want_step and torch_proc.info:
            print(f"{tw_variant} step, batch {tw_batch}, {method} processes ({args.rounds} rounds):",
                  flush=True)
            step_three_ways[method] = step_in_fresh_processes(
                tw_variant, tw_batch, args.threads, args.rounds, args.step_repeats, child_env,
                same_process=method == "same", tune=not args.untuned, conv_algorithm=conv_algo,
                untuned_too=args.tune_effect and method == "separate")
    fc = None
    if not only or "fc_sgd" in only or "step" in only:
        fc = fc_sgd_traffic()
        info["fc_sgd"] = fc
        for k, v in fc.items():
            print(f"{k} fwd+bwd+SGD N=16: {v['ms']:.0f} ms, {v['gb_moved']:.2f} GB at least -> "
                  f"{v['gb_s']:.1f} GB/s (machine: copy {info['bandwidth_gb_s']['copy']:.1f}, "
                  f"triad {info['bandwidth_gb_s']['triad']:.1f} GB/s)", flush=True)
    per_algo = {}
    if args.conv_algorithm and not conv_algorithms():
        per_algo[args.conv_algorithm] = {"skipped": "this tinyconv has no tinyconv.backends.conv_algorithm"}
    elif len(algos) > 1 or (algos and conv_algo is None):
        for algo in algos:
            print(f"paper step with conv_algorithm={algo!r} (fresh processes):", flush=True)
            res = [run_child(dict(side="fast", variant=tw_variant, batch=tw_batch, threads=args.threads,
                                  steps=args.step_repeats, tune=not args.untuned, conv_algorithm=algo),
                             child_env) for _ in range(args.rounds)]
            per_algo[algo] = {"ms": spread([statistics.median(r["ms"]["fast"]) for r in res]),
                              "peak_rss_mb": max(r["peak_rss_mb"] for r in res)}
            print(f"  {algo}: {per_algo[algo]['ms']['median']:.0f} ms", flush=True)

    # seconds -> milliseconds in the saved rows
    for r in rows:
        r["ms"] = {k: v * 1e3 for k, v in r["ms"].items()}
    table = render_table([{**r, "ms": {k: v / 1e3 for k, v in r["ms"].items()}} for r in rows], gemm)
    print()
    print(table)
    print()
    print("\n".join(render_targets(rows)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.tag or "cpu-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    info["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    (out / f"{stem}.json").write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows,
                                                  "step_three_ways": step_three_ways,
                                                  "three_way_step": args.three_way,
                                                  "step_per_conv_algorithm": per_algo}, indent=1))
    md = [f"# tinyconv CPU benchmark {info['date_utc']}", "",
          f"tinyconv {info['tinyconv']} at commit {info['tinyconv_commit']}.  "
          f"CPU: {info['cpu']} ({info['logical_cores']} logical cores); threads per side: {args.threads}; "
          f"BLAS: {info['blas']}; env: {info['env']}; NumPy GEMM float32: {gemm:.1f} GFLOP/s; "
          f"torch {info.get('torch')}; numba warm-up {info['numba_warmup_s']:.2f} s; load average "
          f"{info['load_average_at_start']} at start, {info['load_average_at_end']} at end.", "",
          f"Medians of {args.repeats} runs per layer ({args.step_repeats} per step), implementations "
          f"taking turns, each timed run right after untimed ones of its own ({WARM_S * 1e3:.0f} ms, "
          "at least one); "
          "PyTorch in a process of its own (its OpenMP settings: "
          f"{info.get('torch_env')}), tinyconv in this one.  "
          "ms = milliseconds; ratios < 1 mean the first is faster.",
          "", table, "", "## Targets (fast/torch, same run)", "", *render_targets(rows), "",
          *render_three_ways(step_three_ways, per_algo, args.three_way), "",
          *render_fc_sgd(fc, info["bandwidth_gb_s"]), ""]
    (out / f"{stem}.md").write_text("\n".join(md))
    png = _plot([{**r, "ms": r["ms"]} for r in rows], out / f"{stem}.png")
    print(f"\nwrote {out / (stem + '.json')}, .md" + (", .png" if png else ""))
    torch_proc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
