#!/usr/bin/env python3
"""A few training steps of a small AlexNet, for compute-sanitizer (benchmarks/gpu_suite.sh).

    compute-sanitizer --tool memcheck python benchmarks/gpu_small_step.py
    python benchmarks/gpu_small_step.py --device cpu        # the same script on the CPU

Every kind of kernel a training step launches runs once or more at small sizes
(small32: convolutions with groups, ReLU, LRN, overlapping max-pool, dropout, linear,
the block-per-row softmax cross-entropy with its device-side target check, SGD with
momentum), through tinyconv.train's own step and metrics (the pinned-buffer prefetch
included).  On a GPU CuPy's memory pool is switched off first, so that each array is
its own cudaMalloc and memcheck sees its true bounds.  Prints one line: the mean loss.
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
    loss = metrics.loss_sum / metrics.seen
    print(f"gpu_small_step: {a.steps} steps of small32 at batch {a.batch} on {a.device}: "
          f"mean loss {loss:.4f}")
    return 0 if math.isfinite(loss) else 1


if __name__ == "__main__":
    sys.exit(main())
