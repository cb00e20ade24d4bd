#!/usr/bin/env python3
"""GPU benchmarks: tinyconv's CUDA kernels + cuBLAS against PyTorch + cuDNN, on one device, in one run.

    python benchmarks/bench_gpu.py --out DIR                 # strict FP32 and TF32, all rows
    python benchmarks/bench_gpu.py --precision fp32 --batch 128 --steps 128
    python benchmarks/bench_gpu.py --dry-run --out /tmp/x    # no GPU: arguments, rows, writers
    python benchmarks/bench_gpu.py --smoke-cpu --out /tmp/x  # no GPU: the whole path on the CPU, tiny

What it measures, at the paper AlexNet's shapes (``--batch``, 128 by default):

* per layer, tinyconv and PyTorch on the same inputs: the five convolutions' forward,
  backward-data and backward-filter, each by every CUDA algorithm of tinyconv's that applies
  (``tinyconv.backends.cuda.conv_algorithm``: rows ``convN <pass>`` im2col + cuBLAS, rows
  ``convN <pass> (implicit GEMM)`` the implicit-GEMM kernels, rows ``convN <pass> (winograd)``
  Winograd F(4x4) with strict-FP32 batched cuBLAS, conv2-5 only) against cuDNN; the three 3/2
  max-pools, the two LRNs, ReLU and dropout, forward and backward; the three fully connected
  layers forward and backward;
* the whole training step (forward, cross-entropy, backward, SGD with momentum 0.9 and
  weight decay 5e-4) of the paper AlexNet at each ``--steps`` batch (128 and 256), the
  convolutions by ``"auto"``; the first batch once more by each explicit algorithm
  (``im2col_gemm``, ``implicit_gemm``, ``winograd4x4``: what auto mixes, and what it passes over);
* the device's ceilings in the same run: a large device-to-device copy (bytes read plus
  written per second) and a large cuBLAS float32 GEMM (TFLOP/s, in the run's precision).

Each row is timed with CUDA events around one call, after ``--warmup`` calls, as the
median of ``--repeat`` (>= 20) calls; p10 and p90 are kept.  Memory-bound rows report
achieved bandwidth over the op's essential traffic (each input read once, each output
written once, including what tinyconv's contract saves for backward, e.g. max-pool's
int64 arg-max and LRN's scale; the same byte count is used for PyTorch's row), and its
fraction of the measured copy bandwidth; GEMM rows report TFLOP/s and the fraction of
the measured GEMM rate (for every conv row, Winograd's included, the FLOPs of the direct
convolution: an effective rate, which Winograd's fewer multiplies can push past the GEMM's).
Training steps also report the peak GPU memory of each side (CuPy's pool, high-water mark of
bytes in use; ``torch.cuda.max_memory_allocated``).
Every row first checks that both sides compute the same thing (relative error).

Precision: ``fp32`` turns TF32 off on both sides (the ``allow_tf32`` flags of
``torch.backends`` and ``tinyconv.backends``: ``cuda.matmul`` for the matmuls, ``cudnn``
for the convolutions; and CUPY_TF32=0 for any CuPy matmul); ``tf32`` turns it on for
both.  CuPy reads CUPY_TF32 at import, so ``--precision both`` runs itself once per
precision in a subprocess and merges the results.

Writes ``gpu-<device>-<date>.json`` and ``.md`` into ``--out`` (default
``benchmarks/results``), with CUDA, driver, CuPy, PyTorch and cuDNN versions.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from kernels._geometry import out_size  # noqa: E402  (tinyconv's one formula; imports nothing, so no CuPy yet)

# (name, C_in, H, O, k, stride, pad, groups) at 227x227 input: the paper's five convolutions
CONVS = [("conv1", 3, 227, 96, 11, 4, 0, 1), ("conv2", 96, 27, 256, 5, 1, 2, 2),
         ("conv3", 256, 13, 384, 3, 1, 1, 1), ("conv4", 384, 13, 384, 3, 1, 1, 2),
         ("conv5", 384, 13, 256, 3, 1, 1, 2)]
POOLS = [("pool1", 96, 55), ("pool2", 256, 27), ("pool5", 256, 13)]      # 3x3 stride 2
LRNS = [("lrn1", 96, 55), ("lrn2", 256, 27)]
FCS = [("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]
TINY = {"conv1": ("conv1", 3, 35, 8, 11, 4, 0, 1)}   # --smoke-cpu shrinks every shape


# ---------------------------------------------------------------------------- arguments


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"), help="where results go")
    ap.add_argument("--precision", choices=["fp32", "tf32", "both"], default="both")
    ap.add_argument("--batch", type=int, default=128, help="batch of the per-layer rows")
    ap.add_argument("--steps", type=int, nargs="*", default=[128, 256],
                    help="batches of the training-step rows")
    ap.add_argument("--repeat", type=int, default=25, help="timed calls per row (median; at least 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    ap.add_argument("--only", choices=["all", "layers", "steps"], default="all")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: build the rows and write the result files with no timings")
    ap.add_argument("--smoke-cpu", action="store_true",
                    help="no GPU: run every row on the CPU (NumPy/Numba vs PyTorch CPU) at tiny shapes")
    ap.add_argument("--tag", default="", help="appended to the result file names")
    ap.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)   # child of --precision both
    a = ap.parse_args(argv)
    if a.repeat < 20 and not (a.dry_run or a.smoke_cpu):
        ap.error(f"--repeat must be at least 20 (the median of >= 20 calls), got {a.repeat}")
    if a.batch < 1 or any(b < 1 for b in a.steps):
        ap.error("batches must be positive")
    return a


# ---------------------------------------------------------------------------- rows: what, bytes, flops


def layer_specs(batch, tiny=False):
    """Every per-layer row as a dict: name, kind, pass, shapes, essential bytes and flops (float32)."""
    f = 4
    rows = []
    convs = [TINY["conv1"]] + [(n, min(c, 16), min(h, 9), min(o, 16), k, s, p, g)
                               for n, c, h, o, k, s, p, g in CONVS[1:]] if tiny else CONVS
    for name, C, H, O, k, s, p, G in convs:
        OH = out_size(H, k, s, p)
        fl = 2 * batch * O * OH * OH * (C // G) * k * k
        shape = dict(x=(batch, C, H, H), w=(O, C // G, k, k), stride=s, padding=p, groups=G)
        # each pass by every CUDA algorithm that applies (tinyconv.backends.cuda.conv_algorithm),
        # against cuDNN: Winograd for the 3x3 and 5x5 stride-1 layers
        algorithms = [("im2col_gemm", ""), ("implicit_gemm", " (implicit GEMM)")]
        if s == 1 and k in (3, 5):
            algorithms.append(("winograd4x4", " (winograd)"))
        for algorithm, suffix in algorithms:
            for ps in ("forward", "backward-data", "backward-filter"):
                rows.append(dict(name=f"{name} {ps}{suffix}", layer=name, kind="conv", pass_=ps, shape=shape,
                                 flops=fl, bytes=None, algorithm=algorithm))
    for name, C, H in POOLS:
        C, H = (min(C, 8), min(H, 13)) if tiny else (C, H)
        OH = out_size(H, 3, 2, 0)
        x, y = batch * C * H * H, batch * C * OH * OH
        shape = dict(x=(batch, C, H, H), k=3, stride=2)
        rows.append(dict(name=f"{name} forward", layer=name, kind="maxpool", pass_="forward", shape=shape,
                         bytes=f * x + f * y + 8 * y, flops=None))
        rows.append(dict(name=f"{name} backward", layer=name, kind="maxpool", pass_="backward", shape=shape,
                         bytes=f * y + 8 * y + f * x, flops=None))
    for name, C, H in LRNS:
        C, H = (min(C, 8), min(H, 13)) if tiny else (C, H)
        n = batch * C * H * H
        shape = dict(x=(batch, C, H, H))
        rows.append(dict(name=f"{name} forward", layer=name, kind="lrn", pass_="forward", shape=shape,
                         bytes=3 * f * n, flops=None))                # x in; y, scale out
        rows.append(dict(name=f"{name} backward", layer=name, kind="lrn", pass_="backward", shape=shape,
                         bytes=5 * f * n, flops=None))                # gy, x, y, scale in; gx out
    relu_x = (batch, 8, 9, 9) if tiny else (batch, 96, 55, 55)
    n = math.prod(relu_x)
    rows.append(dict(name="relu1 forward", layer="relu1", kind="relu", pass_="forward",
                     shape=dict(x=relu_x), bytes=2 * f * n, flops=None))
    rows.append(dict(name="relu1 backward", layer="relu1", kind="relu", pass_="backward",
                     shape=dict(x=relu_x), bytes=3 * f * n, flops=None))
    drop_x = (batch, 64) if tiny else (batch, 4096)
    n = math.prod(drop_x)
    rows.append(dict(name="dropout6 forward", layer="dropout6", kind="dropout", pass_="forward",
                     shape=dict(x=drop_x), bytes=2 * f * n, flops=None))
    rows.append(dict(name="dropout6 backward", layer="dropout6", kind="dropout", pass_="backward",
                     shape=dict(x=drop_x), bytes=2 * f * n, flops=None))
    # dropout at fc6's shape is launch-bound (2 MB each way); at conv1's output size it shows bandwidth
    n = math.prod(relu_x)
    rows.append(dict(name="dropout-big forward", layer="dropout-big", kind="dropout", pass_="forward",
                     shape=dict(x=relu_x), bytes=2 * f * n, flops=None))
    rows.append(dict(name="dropout-big backward", layer="dropout-big", kind="dropout", pass_="backward",
                     shape=dict(x=relu_x), bytes=2 * f * n, flops=None))
    for name, i, o in FCS:
        i, o = (min(i, 64), min(o, 32)) if tiny else (i, o)
        shape = dict(x=(batch, i), w=(o, i))
        rows.append(dict(name=f"{name} forward", layer=name, kind="linear", pass_="forward", shape=shape,
                         flops=2 * batch * i * o, bytes=None))
        rows.append(dict(name=f"{name} backward", layer=name, kind="linear", pass_="backward", shape=shape,
                         flops=4 * batch * i * o, bytes=None))
    return rows


# ---------------------------------------------------------------------------- devices and timing


class Env:
    """What one run computes on: CuPy + CUDA torch, or (``--smoke-cpu``) NumPy + CPU torch."""

    def __init__(self, cpu):
        import numpy as np
        import torch
        self.np, self.torch, self.cpu = np, torch, cpu
        if cpu:
            self.xp, self.tdev = np, "cpu"
        else:
            import cupy
            self.xp, self.tdev = cupy, "cuda"
            self.cupy = cupy
            self._install_peak_allocator()

    # -- arrays
    def randn(self, shape, seed, scale=1.0):
        a = self.np.random.default_rng(seed).standard_normal(shape).astype(self.np.float32) * scale
        return self.xp.asarray(a)

    def to_torch(self, a):
        if self.cpu:
            return self.torch.from_numpy(self.np.ascontiguousarray(a))
        return self.torch.from_dlpack(a)                  # zero-copy: both sides read one buffer

    def host(self, a):
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        return a.get() if hasattr(a, "get") else self.np.asarray(a)

    # -- timing: one event pair per call, median of the calls
    def time(self, fn, warmup, repeat, torch_side):
        for _ in range(warmup):
            fn()
        times = []
        if self.cpu:
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        else:
            if torch_side:
                Event = lambda: self.torch.cuda.Event(enable_timing=True)    # noqa: E731
            else:
                Event = self.cupy.cuda.Event
            pairs = []
            for _ in range(repeat):
                a, b = Event(), Event()
                a.record()
                fn()
                b.record()
                pairs.append((a, b))
            self.sync()
            for a, b in pairs:
                times.append(a.elapsed_time(b) if torch_side else self.cupy.cuda.get_elapsed_time(a, b))
        times.sort()
        q = lambda f: times[min(len(times) - 1, int(f * len(times)))]   # noqa: E731
        return dict(median_ms=statistics.median(times), p10_ms=q(0.1), p90_ms=q(0.9), n=len(times))

    def sync(self):
        if not self.cpu:
            self.cupy.cuda.runtime.deviceSynchronize()
            self.torch.cuda.synchronize()

    # -- peak memory of each side
    def _install_peak_allocator(self):
        pool = self.cupy.get_default_memory_pool()
        self.peak = [0]

        def malloc(n):
            mem = pool.malloc(n)
            used = pool.used_bytes()
            if used > self.peak[0]:
                self.peak[0] = used
            return mem
        self.cupy.cuda.set_allocator(malloc)

    def reset_peaks(self):
        if not self.cpu:
            self.sync()
            self.cupy.get_default_memory_pool().free_all_blocks()
            self.peak[0] = self.cupy.get_default_memory_pool().used_bytes()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peaks(self):
        if self.cpu:
            return None, None
        return int(self.peak[0]), int(self.torch.cuda.max_memory_allocated())


def rel_err(env, got, want):
    np = env.np
    g, w = env.host(got).astype(np.float64), env.host(want).astype(np.float64)
    return float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30))


# ---------------------------------------------------------------------------- per-layer rows


def layer_fns(env, row, seed=0):
    """(tinyconv_fn, torch_fn, check) for one row: two no-argument callables and a function
    that runs each once and returns their relative difference (or None where the two draw
    different random numbers, as dropout does)."""
    import tinyconv
    import tinyconv.functional as F
    from tinyconv.functional.lrn import ALEXNET_LRN as LRN
    torch = env.torch
    tF = torch.nn.functional
    sh = row["shape"]
    kind, ps = row["kind"], row["pass_"]
    x = env.randn(sh["x"], seed)
    xt_data = env.to_torch(x)

    if kind == "conv":
        return _conv_fns(env, row, seed, x, xt_data)

    if kind == "maxpool":
        X = tinyconv.Tensor(x, requires_grad=True)
        y = F.max_pool2d(X, 3, stride=2)
        fn = y.grad_fn
        gy = env.randn(y.shape, seed + 3)
        tgy = env.to_torch(gy)
        ty, tidx = torch.ops.aten.max_pool2d_with_indices(xt_data, [3, 3], [2, 2], [0, 0], [1, 1], False)
        if ps == "forward":
            def ours():
                return F.max_pool2d(tinyconv.Tensor(x), 3, stride=2).array

            def theirs():
                return torch.ops.aten.max_pool2d_with_indices(xt_data, [3, 3], [2, 2], [0, 0], [1, 1],
                                                              False)[0]
        else:
            def ours():                 # the op's backward: the gather kernel, one thread per input pixel
                return fn.backward(gy)[0]

            def theirs():
                return torch.ops.aten.max_pool2d_with_indices_backward(tgy, xt_data, [3, 3], [2, 2], [0, 0],
                                                                      [1, 1], False, tidx)
        return ours, theirs, lambda: rel_err(env, ours(), theirs())

    if kind == "lrn":
        X = tinyconv.Tensor(x, requires_grad=True)
        y = F.local_response_norm(X, **LRN)
        fn = y.grad_fn
        gy = env.randn(y.shape, seed + 3)
        tgy = env.to_torch(gy)
        txg = xt_data.detach().clone().requires_grad_(True)
        ty = tF.local_response_norm(txg, **LRN)
        if ps == "forward":
            def ours():
                return F.local_response_norm(tinyconv.Tensor(x), **LRN).array

            def theirs():
                return tF.local_response_norm(xt_data, **LRN)
        else:
            def ours():
                return fn.backward(gy)[0]

            def theirs():
                return torch.autograd.grad(ty, txg, tgy, retain_graph=True)[0]
        return ours, theirs, lambda: rel_err(env, ours(), theirs())

    if kind == "relu":
        X = tinyconv.Tensor(x, requires_grad=True)
        y = F.relu(X)
        fn = y.grad_fn
        gy = env.randn(y.shape, seed + 3)
        tgy = env.to_torch(gy)
        ty = tF.relu(xt_data)
        if ps == "forward":
            def ours():
                return F.relu(tinyconv.Tensor(x)).array

            def theirs():
                return tF.relu(xt_data)
        else:
            def ours():
                return fn.backward(gy)[0]

            def theirs():
                return torch.ops.aten.threshold_backward(tgy, ty, 0)
        return ours, theirs, lambda: rel_err(env, ours(), theirs())

    if kind == "dropout":
        X = tinyconv.Tensor(x, requires_grad=True)
        y = F.dropout(X, 0.5)
        fn = y.grad_fn
        gy = env.randn(y.shape, seed + 3)
        tgy = env.to_torch(gy)
        _, tmask = torch.ops.aten.native_dropout(xt_data, 0.5, True)
        if ps == "forward":
            def ours():
                return F.dropout(tinyconv.Tensor(x), 0.5).array

            def theirs():
                return torch.ops.aten.native_dropout(xt_data, 0.5, True)[0]

            def check():   # different generators: compare the kept fraction and the scaling instead
                yo, xo = env.host(ours()), env.host(x)
                kept = yo != 0
                scale_err = float(env.np.abs(yo[kept] - 2 * xo[kept]).max(initial=0) / env.np.abs(xo).max())
                slack = 5 * math.sqrt(0.25 / kept.size)          # 5 sigma of the kept fraction
                return max(abs(kept.mean() - 0.5) - slack, 0.0) + scale_err
        else:
            def ours():
                return fn.backward(gy)[0]

            def theirs():
                return torch.ops.aten.native_dropout_backward(tgy, tmask, 2.0)

            def check():
                go, yo = env.host(ours()), env.host(y.array)
                return float(env.np.abs((go != 0) ^ (yo != 0)).mean())     # same keep pattern as forward
        return ours, theirs, check

    if kind == "linear":
        w = env.randn(sh["w"], seed + 1, 0.02)
        b = env.randn((sh["w"][0],), seed + 2, 0.1)
        X, Wt, B = (tinyconv.Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.linear(X, Wt, B)
        fn = y.grad_fn
        gy = env.randn(y.shape, seed + 3)
        tw, tb, tgy = env.to_torch(w), env.to_torch(b), env.to_torch(gy)
        if ps == "forward":
            def ours():
                return F.linear(tinyconv.Tensor(x), tinyconv.Tensor(w), tinyconv.Tensor(b)).array

            def theirs():
                return tF.linear(xt_data, tw, tb)
        else:
            def ours():
                fn.needs_input_grad = (True, True, True)
                return fn.backward(gy)[1]          # gx and gW (and gb) computed; gW compared

            def theirs():
                tgy @ tw                           # gx
                tgy.sum(0)                         # gb
                return tgy.t() @ xt_data           # gW
        return ours, theirs, lambda: rel_err(env, ours(), theirs())
    raise ValueError(f"unknown row kind {kind!r}")


def _conv_fns(env, row, seed, x, xt_data):
    """layer_fns for a conv row, tinyconv's side under the row's ``algorithm`` (set around each
    call and around the forward whose backward the backward rows time)."""
    import tinyconv
    import tinyconv.functional as F
    torch = env.torch
    tF = torch.nn.functional
    sh, ps = row["shape"], row["pass_"]
    flags = tinyconv.backends.cuda

    def under_algorithm(f):
        def call():
            previous, flags.conv_algorithm = flags.conv_algorithm, row.get("algorithm", "auto")
            try:
                return f()
            finally:
                flags.conv_algorithm = previous
        return call

    w = env.randn(sh["w"], seed + 1, 0.05)
    b = env.randn((sh["w"][0],), seed + 2, 0.1)
    s, p, G = sh["stride"], sh["padding"], sh["groups"]
    X = tinyconv.Tensor(x, requires_grad=True)
    Wt = tinyconv.Tensor(w, requires_grad=True)
    B = tinyconv.Tensor(b, requires_grad=True)
    y = under_algorithm(lambda: F.conv2d(X, Wt, B, stride=s, padding=p, groups=G))()
    fn = y.grad_fn
    gy = env.randn(y.shape, seed + 3)
    tx, tw, tb = xt_data, env.to_torch(w), env.to_torch(b)
    tgy = env.to_torch(gy)
    mask = {"backward-data": [True, False, False], "backward-filter": [False, True, False]}.get(ps)
    if ps == "forward":
        def ours():
            return F.conv2d(tinyconv.Tensor(x), tinyconv.Tensor(w), tinyconv.Tensor(b), stride=s,
                            padding=p, groups=G).array

        def theirs():
            return tF.conv2d(tx, tw, tb, stride=s, padding=p, groups=G)
    else:
        need = tuple(mask)
        pick = 0 if ps == "backward-data" else 1

        def ours():
            fn.needs_input_grad = need
            return fn.backward(gy)[pick]

        def theirs():
            return torch.ops.aten.convolution_backward(tgy, tx, tw, [tw.shape[0]], [s, s], [p, p], [1, 1],
                                                       False, [0, 0], G, mask)[pick]
    ours = under_algorithm(ours)
    return ours, theirs, lambda: rel_err(env, ours(), theirs())


# ---------------------------------------------------------------------------- ceilings

#: the vendor's datasheet peaks (dense; leads, not measurements): name fragment ->
#: (FP32 TFLOP/s, TF32 tensor-core TFLOP/s, memory TB/s).  Longest fragment first.
DATASHEET = [("H200", (67.0, 494.7, 4.8)), ("H100 PCIe", (51.2, 378.0, 2.0)),
             ("H100 NVL", (60.0, 417.5, 3.9)), ("H100", (67.0, 494.7, 3.35)),
             ("A100-SXM4-80GB", (19.5, 156.0, 2.039)), ("A100", (19.5, 156.0, 1.555))]


def datasheet_peaks(device, precision):
    """(TFLOP/s, GB/s) of the card's datasheet in the run's precision, or None for an unknown card."""
    for fragment, (fp32, tf32, tbps) in DATASHEET:
        if fragment.lower() in (device or "").lower():
            return dict(card=fragment, TFLOPs=tf32 if precision == "tf32" else fp32, GBps=tbps * 1000)
    return None



def ceilings(env, args):
    """Measured device-to-device copy bandwidth (bytes read + written) and float32 GEMM rate."""
    xp = env.xp
    n_copy = (1 << 18) if env.cpu else (1 << 30) // 4          # 1 GiB of float32 on the GPU
    src, dst = env.randn((n_copy,), 11), xp.empty(n_copy, dtype=env.np.float32)
    t = env.time(lambda: dst.__setitem__(Ellipsis, src), args.warmup, args.repeat, torch_side=False)
    copy_gbps = 2 * 4 * n_copy / (t["median_ms"] * 1e-3) / 1e9
    m = 256 if env.cpu else 8192
    a, b = env.randn((m, m), 12), env.randn((m, m), 13)
    tg = env.time(lambda: a @ b, args.warmup, args.repeat, torch_side=False)
    gemm_tflops = 2 * m ** 3 / (tg["median_ms"] * 1e-3) / 1e12
    ta, tb = env.to_torch(a), env.to_torch(b)
    tt = env.time(lambda: ta @ tb, args.warmup, args.repeat, torch_side=True)
    return dict(copy_bytes=2 * 4 * n_copy, copy_ms=t["median_ms"], copy_GBps=copy_gbps,
                gemm_n=m, gemm_ms=tg["median_ms"], gemm_TFLOPs=gemm_tflops,
                torch_gemm_TFLOPs=2 * m ** 3 / (tt["median_ms"] * 1e-3) / 1e12)


# ---------------------------------------------------------------------------- training steps


def torch_paper_alexnet(torch, num_classes=1000):
    from tinyconv.functional.lrn import ALEXNET_LRN as LRN
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(**LRN), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**LRN),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, num_classes))


def _tinyconv_step(env, args, batch, variant, classes, x, t, algorithm="auto"):
    """Time tinyconv's training step (convolutions by ``algorithm``, see
    ``tinyconv.backends.cuda.conv_algorithm``); returns (timing, last loss, peak bytes).  Frees the model."""
    import tinyconv
    previous, tinyconv.backends.cuda.conv_algorithm = tinyconv.backends.cuda.conv_algorithm, algorithm
    try:
        return _time_tinyconv_step(env, batch, variant, classes, x, t)
    finally:
        tinyconv.backends.cuda.conv_algorithm = previous


def _time_tinyconv_step(env, batch, variant, classes, x, t):
    import tinyconv
    import tinyconv.functional as F
    import tinyconv.models
    env.reset_peaks()
    tinyconv.manual_seed(0)
    model = tinyconv.models.alexnet(variant=variant, num_classes=classes)
    if not env.cpu:
        model.to("cuda")
    opt = tinyconv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    X, T = tinyconv.Tensor(x), tinyconv.Tensor(t)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(X), T)
        loss.backward()
        opt.step()
        return loss

    timing = env.time(step, 3, 20, torch_side=False)
    loss = float(step().item())
    return timing, loss, env.peaks()[0]


def _torch_step(env, args, batch, classes, size, x, t):
    """The same for PyTorch (the paper AlexNet written in torch.nn, cuDNN underneath)."""
    torch = env.torch
    env.reset_peaks()
    torch.manual_seed(0)
    if env.cpu:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, classes))
    else:
        model = torch_paper_alexnet(torch, classes).to(env.tdev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    tx, tt = env.to_torch(x), env.to_torch(t).long()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tx), tt)
        loss.backward()
        opt.step()
        return loss

    timing = env.time(step, 3, 20, torch_side=True)
    loss = float(step().item())
    return timing, loss, env.peaks()[1]


#: the explicit CUDA conv algorithms the first step batch is timed by, besides "auto"
STEP_ALGORITHMS = ("im2col_gemm", "implicit_gemm", "winograd4x4")


def step_rows(env, args, batches):
    rows = []
    for batch in batches:
        variant, size, classes = ("small32", 32, 10) if env.cpu else ("paper", 227, 1000)
        x = env.randn((batch, 3, size, size), 21)
        t = env.xp.asarray(env.np.random.default_rng(22).integers(0, classes, batch))
        ours, ours_loss, ours_peak = _tinyconv_step(env, args, batch, variant, classes, x, t)
        theirs, theirs_loss, torch_peak = _torch_step(env, args, batch, classes, size, x, t)
        flops = None if env.cpu else 3 * batch * 1.45e9      # ~4.35 GFLOP per image per step (the issue)
        rows.append(dict(name=f"train step b{batch}", layer=f"{variant} AlexNet", kind="step", pass_="step",
                         shape=dict(batch=batch), flops=flops, bytes=None, tinyconv=ours, torch=theirs,
                         tinyconv_loss=ours_loss, torch_loss=theirs_loss,
                         tinyconv_peak_bytes=ours_peak, torch_peak_bytes=torch_peak, algorithm="auto"))
        if batch == batches[0]:
            # the first batch once more by each explicit CUDA conv algorithm, against the same
            # PyTorch timing (Winograd where it applies, conv1 on im2col)
            auto = rows[-1]
            for other in STEP_ALGORITHMS:
                ours, ours_loss, ours_peak = _tinyconv_step(env, args, batch, variant, classes, x, t, other)
                rows.append(dict(auto, name=f"train step b{batch} ({other})", tinyconv=ours,
                                 tinyconv_loss=ours_loss, tinyconv_peak_bytes=ours_peak, algorithm=other))
    return rows


# ---------------------------------------------------------------------------- the run


def set_precision(precision, torch):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True          # PyTorch at its best: autotuned cuDNN algorithms


def versions(env):
    import numpy as np
    v = dict(python=platform.python_version(), numpy=np.__version__, torch=env.torch.__version__,
             host=platform.node())
    if not env.cpu:
        cupy = env.cupy
        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(rt.getDevice())
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        v.update(device=name, sm_count=props["multiProcessorCount"],
                 compute_capability=f"{props['major']}.{props['minor']}",
                 cuda_runtime=rt.runtimeGetVersion(), cuda_driver=rt.driverGetVersion(),
                 cupy=cupy.__version__, torch_cuda=env.torch.version.cuda,
                 cudnn=env.torch.backends.cudnn.version(),
                 nvrtc=".".join(map(str, cupy.cuda.nvrtc.getVersion())))
    else:
        v.update(device=f"CPU smoke run ({platform.processor() or platform.machine()})")
    return v


def finish_row(row, ceil, peak=None):
    """Add the derived columns: ratio, achieved GB/s or TFLOP/s, fractions of the measured
    ceilings and of the card's datasheet ``peak``."""
    for side in ("tinyconv", "torch"):
        t = row.get(side)
        if not t or t.get("median_ms") is None:
            continue
        sec = t["median_ms"] * 1e-3
        if row.get("bytes"):
            t["GBps"] = row["bytes"] / sec / 1e9
            t["frac_bw"] = t["GBps"] / ceil["copy_GBps"] if ceil else None
            t["frac_peak_bw"] = t["GBps"] / peak["GBps"] if peak else None
        if row.get("flops"):
            t["TFLOPs"] = row["flops"] / sec / 1e12
            t["frac_gemm"] = t["TFLOPs"] / ceil["gemm_TFLOPs"] if ceil else None
            t["frac_peak_flops"] = t["TFLOPs"] / peak["TFLOPs"] if peak else None
    if row.get("tinyconv", {}).get("median_ms") and row.get("torch", {}).get("median_ms"):
        row["ratio"] = row["tinyconv"]["median_ms"] / row["torch"]["median_ms"]
    return row


def run_one(args, precision):
    """All rows at one precision, in this process."""
    if not args.smoke_cpu:
        os.environ["CUPY_TF32"] = "1" if precision == "tf32" else "0"     # read by CuPy at import
    env = Env(cpu=args.smoke_cpu)
    if not env.cpu:
        set_precision(precision, env.torch)
    import tinyconv  # noqa: F401  (after CUPY_TF32 is set)
    tinyconv.backends.cuda.matmul.allow_tf32 = tinyconv.backends.cudnn.allow_tf32 = precision == "tf32"
    result = dict(precision=precision, versions=versions(env), rows=[])
    ceil = ceilings(env, args)
    result["ceilings"] = ceil
    peak = result["datasheet"] = None if env.cpu else datasheet_peaks(result["versions"]["device"], precision)
    batch = min(args.batch, 4) if env.cpu else args.batch
    tol = 1e-2 if precision == "tf32" else 1e-4       # both sides compute the same function
    if args.only in ("all", "layers"):
        for row in layer_specs(batch, tiny=env.cpu):
            ours, theirs, check = layer_fns(env, row)
            row["rel_err"] = check()
            row["matches"] = bool(row["rel_err"] <= tol)
            env.sync()
            row["tinyconv"] = env.time(ours, args.warmup, args.repeat, torch_side=False)
            row["torch"] = env.time(theirs, args.warmup, args.repeat, torch_side=True)
            result["rows"].append(finish_row(row, ceil, peak))
            print(f"  [{precision}] {row['name']:<26} tinyconv {row['tinyconv']['median_ms']:9.3f} ms   "
                  f"torch {row['torch']['median_ms']:9.3f} ms   x{row.get('ratio', float('nan')):.2f}  "
                  f"err {row['rel_err']:.1e}", file=sys.stderr, flush=True)
    if args.only in ("all", "steps"):
        for row in step_rows(env, args, [min(b, 8) for b in args.steps] if env.cpu else args.steps):
            result["rows"].append(finish_row(row, ceil, peak))
            print(f"  [{precision}] {row['name']:<26} tinyconv {row['tinyconv']['median_ms']:9.3f} ms   "
                  f"torch {row['torch']['median_ms']:9.3f} ms   x{row.get('ratio', float('nan')):.2f}",
                  file=sys.stderr, flush=True)
    return result


def dry_run_result(args, precision):
    steps = [dict(name=f"train step b{b}", layer="paper AlexNet", kind="step", pass_="step",
                  shape=dict(batch=b), flops=3 * b * 1.45e9, bytes=None) for b in args.steps]
    steps[1:1] = [dict(steps[0], name=f"{steps[0]['name']} ({other})", algorithm=other)   # as step_rows
                  for other in STEP_ALGORITHMS]
    rows = layer_specs(args.batch) + steps
    for r in rows:
        r["tinyconv"] = r["torch"] = dict(median_ms=None, p10_ms=None, p90_ms=None, n=0)
    return dict(precision=precision, ceilings=None, rows=rows,
                versions=dict(device="dry run (no GPU)", python=platform.python_version()))


# ---------------------------------------------------------------------------- writing results


def slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "unknown"


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def _fracs(of_ceiling, of_peak):
    """'62% / 48%': a rate against the measured ceiling and against the datasheet peak."""
    pct = lambda f: "–" if f is None else f"{100 * f:.0f}%"      # noqa: E731
    return "–" if of_ceiling is None and of_peak is None else f"{pct(of_ceiling)} / {pct(of_peak)}"


def markdown(doc):
    lines = [f"# GPU benchmark: tinyconv vs PyTorch — {doc['device']}", ""]
    lines.append(f"Date {doc['date']}. " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()
                                                    if k not in ("device",)) + ".")
    if doc.get("dry_run") or doc.get("smoke_cpu"):
        lines += ["", "**" + ("Dry run: no timings (argument parsing and writers only)." if doc.get("dry_run")
                              else "CPU smoke run at tiny shapes: proves the script runs; the numbers mean "
                                   "nothing for a GPU.") + "**"]
    for res in doc["results"]:
        ceil = res.get("ceilings")
        what = "TF32 off on both sides" if res["precision"] == "fp32" else "TF32 on for both sides"
        lines += ["", f"## {res['precision'].upper()} ({what})", ""]
        if ceil:
            lines.append(f"Ceilings measured in this run: copy {ceil['copy_GBps']:.0f} GB/s (read + write), "
                         f"GEMM {ceil['gemm_n']}³ {ceil['gemm_TFLOPs']:.1f} TFLOP/s (CuPy/cuBLAS), "
                         f"{ceil['torch_gemm_TFLOPs']:.1f} TFLOP/s (PyTorch).")
            peak = res.get("datasheet")
            if peak:
                lines.append(f"Datasheet peaks ({peak['card']}, dense): {peak['TFLOPs']:.1f} TFLOP/s "
                             f"{res['precision'].upper()}, {peak['GBps']:.0f} GB/s memory.")
            lines.append("")
        lines.append("| row | tinyconv ms | PyTorch ms | ratio | tinyconv GB/s or TFLOP/s | "
                     "of ceiling / peak | PyTorch GB/s or TFLOP/s | of ceiling / peak | rel. err / note |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in res["rows"]:
            cells = []
            for side in ("tinyconv", "torch"):
                t = r.get(side) or {}
                if r.get("bytes"):
                    cells += [fmt(t.get("GBps"), ".0f") + " GB/s" if t.get("GBps") else "–",
                              _fracs(t.get("frac_bw"), t.get("frac_peak_bw"))]
                elif r.get("flops"):
                    cells += [fmt(t.get("TFLOPs"), ".1f") + " TFLOP/s" if t.get("TFLOPs") else "–",
                              _fracs(t.get("frac_gemm"), t.get("frac_peak_flops"))]
                else:
                    cells += ["–", "–"]
            note = fmt(r.get("rel_err"), ".1e") if "rel_err" in r else ""
            if r.get("matches") is False:
                note += " **MISMATCH**"
            if r["kind"] == "step":
                mib = lambda b: "–" if b is None else f"{b / 2**20:.0f} MiB"     # noqa: E731
                note = (f"loss {fmt(r.get('tinyconv_loss'), '.4f')} / {fmt(r.get('torch_loss'), '.4f')}; "
                        f"peak {mib(r.get('tinyconv_peak_bytes'))} / {mib(r.get('torch_peak_bytes'))}")
            lines.append(f"| {r['name']} | {fmt(r['tinyconv'].get('median_ms'), '.3f')} | "
                         f"{fmt(r['torch'].get('median_ms'), '.3f')} | {fmt(r.get('ratio'), '.2f')} | "
                         f"{cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {note} |")
    lines += ["", "Times: median of CUDA-event timings of single calls after warm-up (p10/p90 in the JSON). "
              "Bandwidth counts each input read once and each output written once (tinyconv's contract: "
              "max-pool writes an int64 arg-max, LRN its scale; dropout stores no mask); the same bytes are "
              "used for PyTorch's row. Ratio = tinyconv / PyTorch (lower is better for tinyconv).", ""]
    return "\n".join(lines)


def write(doc, out, tag=""):
    os.makedirs(out, exist_ok=True)
    base = f"gpu-{slug(doc['device'])}-{doc['date']}{('-' + slug(tag)) if tag else ''}"
    paths = (os.path.join(out, base + ".json"), os.path.join(out, base + ".md"))
    with open(paths[0], "w") as f:
        json.dump(doc, f, indent=1, default=str)
    with open(paths[1], "w") as f:
        f.write(markdown(doc))
    return paths


def main(argv=None):
    args = parse_args(argv)
    precisions = ["fp32", "tf32"] if args.precision == "both" else [args.precision]
    date = datetime.date.today().isoformat()
    if args.dry_run:
        results = [dry_run_result(args, p) for p in precisions]
    elif args.precision == "both":
        # CuPy reads CUPY_TF32 once, at import: one child process per precision
        results = []
        for p in precisions:
            child = [sys.executable, os.path.abspath(__file__), "--precision", p, "--json-only",
                     "--out", args.out, "--batch", str(args.batch), "--repeat", str(args.repeat),
                     "--warmup", str(args.warmup), "--only", args.only, "--steps", *map(str, args.steps)]
            child += ["--smoke-cpu"] if args.smoke_cpu else []
            r = subprocess.run(child, stdout=subprocess.PIPE, text=True)
            tail = r.stdout.strip().splitlines()
            if r.returncode != 0 or not tail:
                print(f"bench_gpu: the {p} run failed (exit {r.returncode})", file=sys.stderr)
                continue
            results.append(json.loads(tail[-1]))
            _write_doc(args, date, results)          # after each precision: a time limit keeps the first
        if not results:
            sys.exit("bench_gpu: no precision ran")
    else:
        t0 = time.time()
        results = [run_one(args, p) for p in precisions]
        print(f"bench_gpu: {args.precision} took {time.time() - t0:.0f} s", file=sys.stderr)
        if args.json_only:
            print(json.dumps(results[0], default=str))
            return
    doc, paths = _write_doc(args, date, results)
    print(markdown(doc))
    print("wrote " + " and ".join(paths))


def _write_doc(args, date, results):
    doc = dict(date=date, device=results[0]["versions"].get("device", "unknown"),
               versions=results[0]["versions"], dry_run=args.dry_run, smoke_cpu=args.smoke_cpu,
               args={k: v for k, v in vars(args).items() if k != "json_only"}, results=results)
    tag = args.tag or ("dry-run" if args.dry_run else "cpu-smoke" if args.smoke_cpu else "")
    return doc, write(doc, args.out, tag)


if __name__ == "__main__":
    main()
