"""CPU threads and the one-off cost of compiling the Numba kernels.

Two thread pools do the CPU work: Numba's (the kernels in ``tinyconv/kernels/*_numba.py``,
parallel over images and channels) and BLAS's (every GEMM, through NumPy).
:func:`set_num_threads` sets both at once, so a benchmark or a shared machine gets
exactly ``n`` busy cores::

    tinyconv.set_num_threads(2)
    tinyconv.get_num_threads()      # {'numba': 2, 'blas': 2}

Numba compiles each kernel on its first call, per dtype, and keeps the machine code
on disk (``cache=True``): beside the kernel sources in ``__pycache__`` when that
folder is writable, otherwise in a per-user cache (set ``NUMBA_CACHE_DIR`` to choose
it).  :func:`warmup` pays that cost up front and reports it apart from run time;
:func:`compile_stats` tells what each kernel has compiled or loaded so far.

Sharing few cores: after each GEMM, OpenBLAS's worker threads keep spinning for a while
(``OPENBLAS_THREAD_TIMEOUT``, 2^28 cycles by default) before they sleep, which delays a
parallel Numba kernel that runs right after on the same cores; starting Python with
``OPENBLAS_THREAD_TIMEOUT=4`` makes them sleep at once.  And on a machine busy with
other work a parallel region waits for its slowest thread, so tiny kernels run on one
thread anyway (``tinyconv/kernels/_numba_threads.py``) and ``set_num_threads(1)`` can
be the faster choice there.

Process-wide settings are opt-in: ``import tinyconv`` changes neither the environment nor
the allocator nor any thread pool of its host.  :func:`tune_process` applies the two
settings the CPU path is fastest with (Numba's OpenMP threads sleeping as soon as their
work is done, and glibc's malloc keeping freed memory); ``tinyconv train`` and the
benchmarks call it.  PyTorch in the same process: see :func:`tune_process` and the
"Beside PyTorch" section of docs/pytorch.md.

Nothing here imports Numba or threadpoolctl until it is called, so ``import
tinyconv`` stays fast.
"""
import time

import numpy as np

#: the kernel modules :func:`warmup` and :func:`compile_stats` know (tinyconv.kernels.<family>_numba)
_FAMILIES = ("conv", "winograd", "pooling", "lrn", "activation", "loss", "optim")


def set_num_threads(n):
    """Use ``n`` threads for both the Numba kernels and BLAS (NumPy's GEMMs).

    Numba's count is capped by ``NUMBA_NUM_THREADS`` (the core count by default) and
    applies to the calling thread, as ``numba.set_num_threads`` does.  BLAS is limited
    through threadpoolctl, for the whole process.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {n!r}")
    n = int(n)
    import numba

    from .kernels._numba_threads import ensure_pool
    ensure_pool()                  # the threading layer, chosen before Numba's pool starts
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"set_num_threads: n must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                         f"(NUMBA_NUM_THREADS), got {n}")
    numba.set_num_threads(n)
    _blas_limiter(n)


def _blas_limiter(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise RuntimeError("set_num_threads: limiting BLAS threads needs threadpoolctl "
                           "(pip install threadpoolctl)") from None
    threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """The thread counts in force: ``{"numba": n, "blas": m}`` (``m`` is None when no BLAS is found)."""
    import numba

    from .kernels._numba_threads import ensure_pool
    ensure_pool()
    from threadpoolctl import threadpool_info
    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"numba": numba.get_num_threads(), "blas": max(blas) if blas else None}


def tune_process(wait_policy="PASSIVE", keep_freed_memory=True):
    """Opt in to the process-wide settings tinyconv's CPU kernels run fastest with; returns what it did.

    Both are settings of the whole process, which a library must not change behind its
    host's back, so tinyconv applies them only here (``tinyconv train`` and
    ``benchmarks/`` call this; a script may too, first thing)::

        tinyconv.tune_process()   # {'OMP_WAIT_POLICY': 'PASSIVE', 'wait_policy_applies': True, ...}

    * ``wait_policy``: sets ``OMP_WAIT_POLICY`` in the environment, unless the user set
      it.  GNU OpenMP (Numba's threading layer here) otherwise keeps its threads spinning
      after each parallel region; on a machine with few cores the spinning thread takes
      the core the next GEMM needs (measured on 2 cores: a 0.2 ms LRN took 15 ms with
      two spinning threads).  An OpenMP runtime reads the variable once, when it is
      loaded, so this works only before the first parallel kernel (and before ``import
      torch``, whose OpenMP runtime Numba's kernels then share; any OpenMP runtime loaded
      later reads it too).  None leaves the environment alone.
    * ``keep_freed_memory``: :func:`tinyconv.backend.keep_freed_memory` (glibc's malloc
      keeps freed memory instead of mapping every large array afresh).

    Returns ``{"OMP_WAIT_POLICY": value in force or None, "wait_policy_applies": whether
    no OpenMP runtime was loaded yet, "openmp_runtimes": those loaded before the call,
    "malloc": the settings applied or None}``.
    """
    import os

    from . import backend
    from .kernels._openmp import openmp_runtimes
    loaded = openmp_runtimes()
    if wait_policy is not None:
        if wait_policy not in ("PASSIVE", "ACTIVE"):
            raise ValueError(f"tune_process: wait_policy must be 'PASSIVE', 'ACTIVE' or None, "
                             f"got {wait_policy!r}")
        os.environ.setdefault("OMP_WAIT_POLICY", wait_policy)
    malloc = backend.keep_freed_memory() if keep_freed_memory else backend.malloc_settings
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "wait_policy_applies": not loaded,
            "openmp_runtimes": loaded, "malloc": malloc}


def _kernel_modules():
    import importlib
    return {f: importlib.import_module(f"tinyconv.kernels.{f}_numba") for f in _FAMILIES}


def compile_stats():
    """Per Numba kernel: its compiled signatures and Numba's cache hits and misses so far.

    ``{"conv._im2col": {"signatures": 2, "cache_hits": 2, "cache_misses": 0}, ...}``; a
    miss is a compilation from scratch, a hit a load of machine code from the disk cache.
    """
    out = {}
    for family, mod in _kernel_modules().items():
        for name, obj in sorted(vars(mod).items()):
            stats = getattr(obj, "stats", None)
            if stats is None or not hasattr(obj, "signatures"):
                continue
            out[f"{family}.{name}"] = {"signatures": len(obj.signatures),
                                       "cache_hits": sum(stats.cache_hits.values()),
                                       "cache_misses": sum(stats.cache_misses.values())}
    return out


def _tiny_calls(dtype):
    """One small call of every CPU kernel in ``dtype``, named by family.kernel."""
    m = _kernel_modules()
    x = np.linspace(-1, 1, 2 * 3 * 5 * 5).astype(dtype).reshape(2, 3, 5, 5)
    g = np.ones_like(x)
    eye4, g43 = np.eye(4, dtype=dtype), np.ones((4, 3), dtype)
    return {
        "conv.im2col": lambda: m["conv"].im2col(x, 3, 3, 1, 1, 1, 1),
        "conv.col2im": lambda: m["conv"].col2im(np.ones((2, 27, 25), dtype), x.shape, 3, 3, 1, 1, 1, 1),
        # Winograd: one call with any matrices (identities here, in F(2x2, 3x3)'s shapes: a = 4,
        # 2 x 2 tiles of a 5 x 5 input) compiles a kernel for every variant, since the row
        # function it runs is chosen by an integer argument
        "winograd.input_transform": lambda: m["winograd"].input_transform(x, eye4, 2, 0, 0, 2, 2),
        "winograd.input_adjoint": lambda: m["winograd"].input_adjoint(
            np.ones((16, 3, 8), dtype), eye4, 2, 0, 0, 2, 2, x.shape),
        "winograd.filter_transform": lambda: m["winograd"].filter_transform(
            np.ones((2, 3, 3, 3), dtype), g43),
        "winograd.filter_adjoint": lambda: m["winograd"].filter_adjoint(np.ones((16, 2, 3), dtype), g43),
        "winograd.output_transform": lambda: m["winograd"].output_transform(
            np.ones((16, 2, 8), dtype), eye4[:2], 2, 2, 3, 3, np.ones(2, dtype)),
        "winograd.output_adjoint": lambda: m["winograd"].output_adjoint(
            np.ones((2, 2, 3, 3), dtype), eye4[:2], 2),
        "pooling.max_pool2d_forward": lambda: m["pooling"].max_pool2d_forward(x, 3, 3, 2, 2, 1, 1),
        "pooling.max_pool2d_backward": lambda: m["pooling"].max_pool2d_backward(
            np.ones((2, 3, 3, 3), dtype), np.zeros((2, 3, 3, 3), np.int64), x.shape),
        "lrn.lrn_forward": lambda: m["lrn"].lrn_forward(x, 5, 1e-4, 0.75, 2.0),
        "lrn.lrn_backward": lambda: m["lrn"].lrn_backward(g, x, x, g, 5, 1e-4, 0.75),
        "activation.relu_forward": lambda: m["activation"].relu_forward(x),
        "activation.relu_backward": lambda: m["activation"].relu_backward(g, x),
        "activation.dropout_forward": lambda: m["activation"].dropout_forward(x, 0.5, 0, 0),
        "activation.dropout_backward": lambda: m["activation"].dropout_backward(g, x > 0, 0.5),
        "loss.softmax_cross_entropy_forward": lambda: m["loss"].softmax_cross_entropy_forward(
            x.reshape(10, 15), np.arange(10, dtype=np.int64)),
        "loss.softmax_cross_entropy_backward": lambda: m["loss"].softmax_cross_entropy_backward(
            np.ones(10, dtype), np.full((10, 15), 1 / 15, dtype), np.arange(10, dtype=np.int64)),
        "optim.sgd_update": lambda: m["optim"].sgd_update(x.copy(), g, np.empty_like(x), 0.01, 0.9, 0.0,
                                                         5e-4, False, True),
    }


def warmup(dtypes=("float32", "float64")):
    """Compile (or load from the disk cache) every CPU kernel for ``dtypes`` now; report the cost.

    Returns ``{"float32": {"conv.im2col": {"first_s": .., "run_s": ..}, ...}, ..., "total_s": ..}``:
    ``first_s`` is the first call (compile or cache load, plus one run), ``run_s`` a second
    call of the same size, i.e. run time alone.  Benchmarks call this before timing.
    """
    report, t_all = {}, time.perf_counter()
    for dt in dtypes:
        dt = np.dtype(dt)
        per = {}
        for name, call in _tiny_calls(dt).items():
            t0 = time.perf_counter()
            call()
            t1 = time.perf_counter()
            call()
            t2 = time.perf_counter()
            per[name] = {"first_s": t1 - t0, "run_s": t2 - t1}
        report[dt.name] = per
    report["total_s"] = time.perf_counter() - t_all
    return report
