#!/usr/bin/env python3
"""Per-layer, per-algorithm convolution timing and accuracy: im2col vs Winograd vs PyTorch.

    python benchmarks/bench_conv_algos.py                 # batch 16, 2 threads, 15 repeats
    python benchmarks/bench_conv_algos.py --batch 32 --repeats 3 --threads 1
    python benchmarks/bench_conv_algos.py --sweep --batch 4   # the table behind "auto"

For AlexNet's conv2 (5x5, pad 2, 96 -> 256 in 2 groups at 27x27) and conv3-5 (3x3, pad 1 at
13x13; conv4/5 in 2 groups, as the paper), forward+backward of one conv2d (gx, gw, gb) in
float32 by

* ``im2col``, ``winograd2x2`` (F(2x2, r x r)), ``winograd4x4`` (F(4x4, r x r)) and ``auto``
  (what conv2d picks by ``AUTO_RULE``) through ``tinyconv.backends.conv_algorithm``;
* ``torch``: ``torch.nn.functional.conv2d`` on the CPU (oneDNN underneath), in a process of
  its own (``bench_cpu.TorchProcess``, on bench_cpu's copy of the layer), so that each side
  keeps its own OpenMP runtime and settings.

The implementations take turns within each repeat (``bench_cpu.bench_interleaved``: an
untimed run before each timed one), so that other load on the machine hits all of them
alike; each time is the median over the repeats and the ratios to torch are what to quote.
As bench_cpu does, the script restarts itself with ``OPENBLAS_THREAD_TIMEOUT=4`` and calls
``tinyconv.tune_process()``: OpenBLAS's workers otherwise spin about 0.1 s after each of
tinyconv's GEMMs, on the cores PyTorch's next run needs.  Measured on 2 cores, with
PyTorch in this process and the spin on, PyTorch's conv5 took 122-126 ms against 56 ms
alone, which made the ratios of the earlier tables (conv-algos-20261202-1615 to
-20261203-1538, whose torch ran in this process) depend on the hour.

Accuracy: each algorithm's float32 result (y, gx, gw) against float64 im2col
on the same float32 data, as the largest error relative to the largest |exact| value.

``--sweep``: Winograd F(4x4) against im2col (no torch) over C = K from 16 to 384, 3x3 and
5x5 kernels ("same" padding), 13x13 and 27x27 inputs, at ``--batch``: the measurements
``tinyconv.functional.conv_winograd.AUTO_RULE`` is read from.

Writes ``benchmarks/results/conv-algos-<date>.json`` and ``.md`` (``conv-algos-<date>-sweep-b<N>``
for a sweep); ``run()`` and ``sweep()`` return the same dicts, for ``bench_cpu.py`` to call.
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
import tinyconv.backends
import tinyconv.functional as F
from tinyconv.functional.conv_winograd import choose

ROOT = Path(__file__).resolve().parent


def _bench_cpu():
    """benchmarks/bench_cpu.py as a module (for TorchProcess and bench_interleaved).

    Imported by name from this folder, so that TorchProcess's child (started by ``spawn``,
    with this process's sys.path) finds its worker function the same way."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import bench_cpu
    return bench_cpu

# name: (C, K, size, kernel, padding, groups)
LAYERS = {"conv2": (96, 256, 27, 5, 2, 2), "conv3": (256, 384, 13, 3, 1, 1),
          "conv4": (384, 384, 13, 3, 1, 2), "conv5": (384, 256, 13, 3, 1, 2)}
ALGOS = ("im2col", "winograd2x2", "winograd4x4", "auto")
SWEEP_CHANNELS, SWEEP_SIZES = (16, 32, 64, 128, 256, 384), (13, 27)


def _data(layer, N, seed=0):
    C, K, S, k, p, g = LAYERS[layer]
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, S, S), dtype=np.float32)
    w = (r.standard_normal((K, C // g, k, k)) / np.sqrt(k * k * C / g)).astype(np.float32)
    b = r.standard_normal(K).astype(np.float32)
    gy = r.standard_normal((N, K, S + 2 * p - k + 1, S + 2 * p - k + 1), dtype=np.float32)
    return x, w, b, gy


def tinyconv_step(algorithm, x, w, b, gy, p, g):
    """One forward+backward of conv2d by ``algorithm``; returns (y, gx, gw) as arrays."""
    previous, tinyconv.backends.conv_algorithm = tinyconv.backends.conv_algorithm, algorithm
    try:
        xt, wt, bt = (tinyconv.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xt, wt, bt, padding=p, groups=g)
        y.backward(tinyconv.tensor(gy))
        return y.array, xt.grad.array, wt.grad.array
    finally:
        tinyconv.backends.conv_algorithm = previous


def accuracy(layer, N=1):
    """{algorithm: [rel. error of y, gx, gw]} of float32 against float64 im2col, at batch N."""
    x, w, b, gy = _data(layer, N, seed=1)
    p, g = LAYERS[layer][4:]
    exact = tinyconv_step("im2col", *(a.astype(np.float64) for a in (x, w, b, gy)), p, g)
    out = {}
    for algo in (a for a in ALGOS if a != "auto"):     # not "auto": it is one of the others
        got = tinyconv_step(algo, x, w, b, gy, p, g)
        out[algo] = [float(np.abs(a - e).max() / np.abs(e).max()) for a, e in zip(got, exact)]
    return out


def _provenance():
    """What the results name: the OpenBLAS / OpenMP settings in force, tinyconv's commit, the date."""
    return {"env": {k: os.environ.get(k) for k in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")},
            "tinyconv_commit": _bench_cpu().source_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _machine():
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_avg_start": os.getloadavg()[0]}


def _interleaved(impls, repeats, sample=0.1):
    """Median seconds per call of each implementation, taking turns within each repeat.

    After one warm call (compile, map the scratch buffers), each sample times as many calls
    in a row as fill about ``sample`` seconds, so that millisecond-sized shapes are not
    measured by a single call's noise (thread-pool wake-ups, timer resolution)."""
    calls = {}
    for k, f in impls.items():
        t = time.perf_counter()
        f()
        calls[k] = max(1, round(sample / max(time.perf_counter() - t, 1e-6)))
    times = {k: [] for k in impls}
    for _ in range(repeats):
        for k, f in impls.items():
            t = time.perf_counter()
            for _ in range(calls[k]):
                f()
            times[k].append((time.perf_counter() - t) / calls[k])
    return {k: statistics.median(v) for k, v in times.items()}


def sweep(batch=16, repeats=5, threads=2, tune=True):
    """{(k, size): {C: winograd4x4 / im2col}}: forward+backward time ratios, C = K, one group.

    ``tune``: call ``tinyconv.tune_process()`` first, as :func:`run` does."""
    tuned = tinyconv.tune_process() if tune else None
    tinyconv.set_num_threads(threads)
    result = {"batch": batch, "repeats": repeats, "threads": threads, "machine": _machine(),
              "numpy": np.__version__, "channels": list(SWEEP_CHANNELS), "ratios": {}, "tune_process": tuned,
              **_provenance()}
    for k in (3, 5):
        for size in SWEEP_SIZES:
            row = []
            for C in SWEEP_CHANNELS:
                r = np.random.default_rng(C)
                x = r.standard_normal((batch, C, size, size), dtype=np.float32)
                w = (r.standard_normal((C, C, k, k)) / np.sqrt(k * k * C)).astype(np.float32)
                b, gy = np.zeros(C, np.float32), r.standard_normal((batch, C, size, size), dtype=np.float32)
                args = (x, w, b, gy, k // 2, 1)
                impls = {a: (lambda a=a, args=args: tinyconv_step(a, *args))
                         for a in ("im2col", "winograd4x4")}
                med = _interleaved(impls, repeats)
                row.append(med["winograd4x4"] / med["im2col"])
            result["ratios"][f"{k}x{k} {size}x{size}"] = row
            print(f"{k}x{k} {size}x{size}", [round(v, 2) for v in row], flush=True)
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    return result


def sweep_markdown(r):
    m = r["machine"]
    tiles = {s: r["batch"] * (-(-s // 4)) ** 2 for s in SWEEP_SIZES}
    lines = [f"# Winograd F(4x4) / im2col, forward+backward, float32 (batch {r['batch']}, "
             f"{r['threads']} threads)",
             "", f"{r['date']}; {m['cores']} cores, load average {m['load_avg_start']:.1f} at the start and "
             f"{m['load_avg_end']:.1f} at the end; numpy {r['numpy']}; "
             f"tinyconv at {r.get('tinyconv_commit')}, environment {r.get('env')}; "
             f"median of {r['repeats']} interleaved "
             "samples of at least 0.1 s each; C = K, groups 1, 'same' padding.  Below 1: Winograd is faster.",
             "",
             "| kernel, input | 4x4 tiles | " + " | ".join(f"C = {c}" for c in r["channels"]) + " |",
             "|---|---|" + "---|" * len(r["channels"])]
    for name, row in r["ratios"].items():
        size = int(name.split()[1].split("x")[0])
        lines.append(f"| {name} | {tiles[size]} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines + [""])


def run(batch=16, repeats=15, threads=2, layers=tuple(LAYERS), tune=True):
    """The per-layer table; ``tune``: call ``tinyconv.tune_process()`` (as the script does)."""
    bench_cpu = _bench_cpu()
    torch_proc = bench_cpu.TorchProcess(threads, [batch])      # before tune_process: see TorchProcess
    if torch_proc.info is None:
        raise RuntimeError("bench_conv_algos: PyTorch (the reference) is not installed")
    try:
        tuned = tinyconv.tune_process() if tune else None
        tinyconv.set_num_threads(threads)
        tinyconv.warmup(("float32", "float64"))
        result = {"batch": batch, "repeats": repeats, "threads": threads, "layers": {}, "machine": _machine(),
                  "torch": torch_proc.info["torch"], "numpy": np.__version__, "tune_process": tuned,
                  **_provenance()}
        for layer in layers:
            args = (*_data(layer, batch), *LAYERS[layer][4:])          # x, w, b, gy, padding, groups
            impls = {a: (lambda a=a, args=args: tinyconv_step(a, *args)) for a in ALGOS}
            impls["torch"] = torch_proc.fn("layer", layer, batch, "fwdbwd")
            raw = {}
            med = bench_cpu.bench_interleaved(impls, repeats, raw)
            m = choose("auto", args[0], args[1], (1, 1), (1, 1), args[5])
            paired = {k: bench_cpu.spread([t / p for t, p in zip(raw[k], raw["torch"])]) for k in raw}
            result["layers"][layer] = {"seconds": med, "vs_torch": {k: med[k] / med["torch"] for k in med},
                                       "vs_torch_paired": paired,
                                       "float32_rel_error": accuracy(layer),
                                       "auto_picks": "im2col" if m is None else f"winograd{m}x{m}"}
            print(layer, {k: round(v, 3) for k, v in result["layers"][layer]["vs_torch"].items()}, flush=True)
    finally:
        torch_proc.close()
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    return result


def markdown(r):
    m = r["machine"]
    lines = [f"# Convolution algorithms, forward+backward, float32 (batch {r['batch']}, "
             f"{r['threads']} threads)",
             "", f"{r['date']}; {m['cores']} cores, load average {m['load_avg_start']:.1f} "
             f"at the start and {m['load_avg_end']:.1f} at the end; torch {r['torch']}, "
             f"numpy {r['numpy']}; tinyconv at {r.get('tinyconv_commit')}; median of {r['repeats']} "
             "interleaved repeats, PyTorch in a process of its own, environment "
             f"{r.get('env')}.", "",
             "| layer | algorithm | seconds | / torch | / torch, paired (IQR) | rel. error y | gx | gw |",
             "|---|---|---|---|---|---|---|---|"]
    for layer, d in r["layers"].items():
        for k, s in d["seconds"].items():
            e = d["float32_rel_error"].get(k)
            err = (" | ".join(f"{v:.1e}" for v in e) if e
                   else f"(= {d['auto_picks']}) | | " if k == "auto" else "(oneDNN) | | ")
            p = d.get("vs_torch_paired", {}).get(k)
            pair = f"{p['median']:.2f} ({p['q1']:.2f}-{p['q3']:.2f})" if p else "-"
            lines.append(f"| {layer} | {k} | {s:.3f} | {d['vs_torch'][k]:.2f} | {pair} | {err} |")
    lines += ["", "/ torch: ratio of the medians; paired: median (and IQR) of each repeat's ratio to the "
              "PyTorch run of the same repeat.  Errors: largest |float32 - float64 im2col| over the "
              "largest |float64 value|, batch 1.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", nargs="*", default=list(LAYERS), choices=list(LAYERS))
    ap.add_argument("--sweep", action="store_true",
                    help="Winograd / im2col over channels and sizes (no torch)")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="do not restart with OPENBLAS_THREAD_TIMEOUT=4 (see bench_cpu.py)")
    a = ap.parse_args(argv)
    _bench_cpu()._restart_without_openblas_overrides(a, argv, script=__file__)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M")
    if a.sweep:
        r, md, out = (sweep(a.batch, a.repeats, a.threads), sweep_markdown,
                      f"conv-algos-{stamp}-sweep-b{a.batch}")
    else:
        r, md, out = run(a.batch, a.repeats, a.threads, tuple(a.layers)), markdown, f"conv-algos-{stamp}"
    out = ROOT / "results" / out
    out.with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
    out.with_suffix(".md").write_text(md(r))
    print(md(r))
    print(f"wrote {out}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
