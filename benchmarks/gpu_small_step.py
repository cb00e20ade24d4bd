#!/usr/bin/env python3
"""A few training steps of a small AlexNet, for compute-sanitizer (benchmarks/gpu_suite.sh).

    compute-sanitizer --tool memcheck python benchmarks/gpu_small_step.py
    python benchmarks/gpu_small_step.py --device cpu        # the same script on the CPU

Every kind of kernel a training step launches runs once or more at small sizes
(small32: convolutions with groups, ReLU, LRN, overlapping max-pool, dropout, linear,
the block-per-row softmax cross-entropy with its device-side target check, SGD with
momentum), through tinyconv.train's own step and metrics (the pinned-buffer prefetch
included), once with each CUDA convolution algorithm (``tinyconv.backends.cuda.conv_algorithm``
"im2col_gemm", then "implicit_gemm", whose kernels share memory between threads: racecheck's
business, then "winograd4x4": the Winograd transforms and cuBLAS's strided-batched GEMM for the
3x3 and 5x5 layers).  On a GPU CuPy's memory pool is switched off first, so that each array is its own
cudaMalloc and memcheck sees its true bounds.  Prints one line per algorithm: the mean loss.
"""
import argparse
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    a = ap.parse_args(argv)
    import numpy as np

    import tinyconv
    from tinyconv import train as T
    from tinyconv.models import alexnet
    if a.device != "cpu":
        import cupy
        cupy.cuda.set_allocator(None)
    status = 0
    for algorithm in ("im2col_gemm", "implicit_gemm", "winograd4x4"):
        tinyconv.backends.cuda.conv_algorithm = algorithm
        loss = _steps(a, alexnet, np, tinyconv, T)
        print(f"gpu_small_step: {a.steps} steps of small32 at batch {a.batch} on {a.device}, convolutions by "
              f"{algorithm}: mean loss {loss:.4f}")
        status |= not math.isfinite(loss)
    return status


def _steps(a, alexnet, np, tinyconv, T):
    """The mean loss of ``a.steps`` training steps of a fresh small32 (seed 0)."""
    tinyconv.manual_seed(0)
    model = alexnet(variant="small32").to(a.device)
    opt = tinyconv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((a.batch, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, a.batch))
               for _ in range(a.steps)]

    class Loop:                      # what _Run.train_step and _StepMetrics need of a run
        net, callback, world, loader, step = model, None, 1, None, 0

        def diverged(self, what):
            return RuntimeError(what)
    run = Loop()
    run.opt = opt
    metrics = T._StepMetrics(run, 0, 0.0, None)
    for x, y, n in T._Prefetch(batches, a.device, a.steps):
        T._Run.train_step(run, x, y, metrics, n)
    metrics.flush()
    return metrics.loss_sum / metrics.seen


if __name__ == "__main__":
    sys.exit(main())
