#!/usr/bin/env python3
"""Data-parallel scaling: images/s at 1 and N ranks, communication against compute, overlap.

    python benchmarks/bench_distributed.py                     # small28 and the paper net, 1 and 2 ranks
    python benchmarks/bench_distributed.py --quick             # 2 steps of small28, for the smoke test
    python benchmarks/bench_distributed.py --device cuda --ranks 1,8   # one GPU per rank, NCCL

Each configuration is one ``mpiexec -n N`` launch of this script (``--worker``), one
thread per rank on the CPU.  Weak scaling, as data parallelism is used: every rank
keeps the per-rank batch (``--batch``), so N ranks step on N times the images.  Each
rank times ``--steps`` training steps (forward, cross-entropy, backward through
:class:`~tinyconv.nn.parallel.DistributedDataParallel`, SGD) after ``--warmup`` untimed
ones; a step's figures are the slowest rank's, the run's the median over steps.

What is reported per net and rank count:

* ``images_per_s`` (global: N x batch / step time) and ``efficiency`` =
  images/s at N / (N x images/s at 1 rank);
* ``forward_s``, ``backward_s`` (with DDP's hooks and its end-of-backward wait),
  ``optimizer_s``;
* ``wait_s``: the end of backward, where DDP launches what is left and waits for every
  bucket's all-reduce, on the rank that got there last: the communication that was
  **not** hidden behind backward (an earlier rank waits longer, for the others: that
  difference is ``skew_s``, load imbalance, not communication);
* ``allreduce_alone_s``: the same buckets all-reduced one after the other with nothing
  else running (the communication's whole cost);
* ``hidden_share`` = 1 - wait_s / allreduce_alone_s (0: nothing overlapped, 1: all of it).

MPI's non-blocking collectives move data only while some MPI call runs (MPICH has no
progress thread unless ``MPIR_CVAR_ASYNC_PROGRESS=1``); DDP pokes its in-flight buckets
(an ``MPI_Test``) at every gradient hook, which is all the overlap the CPU path gets.

Writes ``benchmarks/results/distributed-<date>.json`` and ``.md`` (``--out`` elsewhere).
The ``nccl`` path (``--device cuda``: each rank on its local GPU, NCCL on a side
stream) is written for a multi-GPU machine and synchronizes the device around each
timed phase; it has not been run here.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
#: the per-rank batch of each net (small, so the whole benchmark takes minutes on a CPU)
BATCH = {"small28": 32, "paper": 4}


# --------------------------------------------------------------------------- one rank


def _sync(device):
    if device != "cpu":
        import cupy
        cupy.cuda.get_current_stream().synchronize()


def _max_over_ranks(values):
    import tinyconv
    import tinyconv.distributed as dist
    t = tinyconv.tensor(np.asarray(values, np.float64))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.numpy()


def _gathered(values):
    """Every rank's ``values`` (a float64 row per rank)."""
    import tinyconv
    import tinyconv.distributed as dist
    mine = tinyconv.tensor(np.asarray(values, np.float64))
    rows = [tinyconv.zeros(len(values), dtype=tinyconv.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, mine)
    return np.stack([r.numpy() for r in rows])


def worker(args):
    """Runs on every rank of one launch; rank 0 writes the figures to ``args.json``."""
    import tinyconv
    import tinyconv.distributed as dist
    import tinyconv.nn.functional as F
    from tinyconv.models import alexnet
    from tinyconv.models.alexnet import VARIANTS
    from tinyconv.nn.parallel import DistributedDataParallel
    from tinyconv.optim import SGD

    tinyconv.set_num_threads(args.threads)
    dist.init_process_group("nccl" if args.device != "cpu" else "mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    tinyconv.manual_seed(0)
    channels, classes = VARIANTS[args.net][1], VARIANTS[args.net][2]
    net = alexnet(variant=args.net, num_classes=classes, in_channels=channels)
    device = "cuda" if args.device != "cpu" else "cpu"
    if device != "cpu":
        net.to(device)
    shape = net.input_shape
    model = DistributedDataParallel(net, bucket_cap_mb=args.bucket_mb)
    opt = SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    g = np.random.default_rng(rank)
    x = tinyconv.tensor(g.standard_normal((args.batch, *shape)).astype(np.float32), device=device)
    y = tinyconv.tensor(g.integers(0, classes, args.batch), device=device)

    wait, arrived = [0.0], [0.0]
    finish = model._finish_backward

    def timed_finish():                       # DDP's end-of-backward callback: the exposed communication
        _sync(device)
        arrived[0] = time.time()              # (one machine's clock: for the skew between ranks)
        t = time.perf_counter()
        finish()
        _sync(device)
        wait[0] += time.perf_counter() - t
    model._finish_backward = timed_finish

    rows = []
    for step in range(args.warmup + args.steps):
        dist.barrier()
        wait[0] = 0.0
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        _sync(device)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        opt.step()
        _sync(device)
        t3 = time.perf_counter()
        if step >= args.warmup:
            # a rank that ends backward early waits for the others too: the communication left
            # exposed is the wait of the rank that arrived last; the rest is skew between ranks
            ends = _gathered([arrived[0], wait[0]])
            last = int(np.argmax(ends[:, 0]))
            skew = float(ends[:, 0].max() - ends[:, 0].min())
            rows.append([*_max_over_ranks([t3 - t0, t1 - t0, t2 - t1, t3 - t2]), ends[last, 1], skew])
    step_s, fwd, bwd, opt_s, wait_s, skew_s = (float(statistics.median(col)) for col in zip(*rows))

    # the same buckets' all-reduces alone, one after the other (the whole communication cost)
    flats = [tinyconv.zeros(sum(p.numel() for p in b.params), device=device) for b in model._buckets]
    alone = []
    for _ in range(max(args.steps, 2)):
        dist.barrier()
        _sync(device)
        t = time.perf_counter()
        for f in flats:
            dist.all_reduce(f)
        _sync(device)
        alone.append(float(_max_over_ranks([time.perf_counter() - t])[0]))
    alone_s = float(statistics.median(alone)) if world > 1 else 0.0
    n_params = sum(p.numel() for p in net.parameters())
    result = {
        "net": args.net, "ranks": world, "batch_per_rank": args.batch, "global_batch": args.batch * world,
        "device": args.device, "backend": dist.get_backend(), "threads_per_rank": args.threads,
        "steps": args.steps, "parameters": n_params, "gradient_mb": 4 * n_params / 1e6,
        "buckets": len(model._buckets), "bucket_cap_mb": args.bucket_mb,
        "step_s": step_s, "images_per_s": args.batch * world / step_s,
        "forward_s": fwd, "backward_s": bwd, "optimizer_s": opt_s,
        "wait_s": wait_s if world > 1 else 0.0, "skew_s": skew_s if world > 1 else 0.0,
        "allreduce_alone_s": alone_s,
        "hidden_share": (max(0.0, min(1.0, 1 - wait_s / alone_s)) if world > 1 and alone_s > 0 else None),
        "step_times_s": [float(r[0]) for r in rows],
    }
    if rank == 0:
        Path(args.json).write_text(json.dumps(result))
    dist.destroy_process_group()


# --------------------------------------------------------------------------- the launches


def _mpiexec():
    found = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    if found is None:
        sys.exit("bench_distributed: needs mpiexec (pip install 'tinyconv[dist]': mpi4py and MPICH)")
    return found


def launch(args, net, ranks):
    """One ``mpiexec -n ranks`` run of :func:`worker`; its figures (a dict)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        mpiexec = _mpiexec()
        cmd = [mpiexec, "-n", str(ranks)]
        if "Open MPI" in subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout:
            cmd.append("--oversubscribe")
        cmd += [sys.executable, str(Path(__file__).resolve()), "--worker", "--net", net,
                "--batch", str(args.batch or BATCH[net]), "--steps", str(args.steps),
                "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device,
                "--bucket-mb", str(args.bucket_mb), "--json", str(out)]
        n = str(args.threads)
        env = dict(os.environ, OMP_NUM_THREADS=n, NUMBA_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n,
                   PYTHONPATH=os.pathsep.join([str(ROOT.parent), os.environ.get("PYTHONPATH", "")]))
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        if r.returncode != 0 or not out.exists():
            sys.exit(f"bench_distributed: {' '.join(cmd)} failed (exit {r.returncode}):\n"
                     f"{r.stdout}\n{r.stderr}")
        return json.loads(out.read_text())


def with_efficiency(results):
    """Add each run's scaling efficiency against the same net's 1-rank run."""
    base = {r["net"]: r["images_per_s"] for r in results if r["ranks"] == 1}
    for r in results:
        one = base.get(r["net"])
        r["efficiency"] = r["images_per_s"] / (r["ranks"] * one) if one else None
    return results


def _ms(v):
    return "-" if v is None else f"{1e3 * v:.1f}"


def render(results, machine):
    lines = [f"# Data-parallel scaling ({machine['date_utc']})", "",
             f"{machine['cpu']}, {machine['logical_cores']} logical cores, load average at start "
             f"{machine['load_average_at_start']}; {machine['note']}", "",
             "| net | ranks | batch/rank | images/s | efficiency | step ms | forward ms | backward ms "
             "| optimizer ms | wait ms | skew ms | all-reduce alone ms | hidden |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        eff = "-" if r["efficiency"] is None else f"{r['efficiency']:.0%}"
        hid = "-" if r["hidden_share"] is None else f"{r['hidden_share']:.0%}"
        lines.append(f"| {r['net']} | {r['ranks']} | {r['batch_per_rank']} | {r['images_per_s']:.1f} | {eff} "
                     f"| {_ms(r['step_s'])} | {_ms(r['forward_s'])} | {_ms(r['backward_s'])} "
                     f"| {_ms(r['optimizer_s'])} | {_ms(r['wait_s'])} | {_ms(r['skew_s'])} "
                     f"| {_ms(r['allreduce_alone_s'])} "
                     f"| {hid} |")
    lines += ["", "wait: the end of backward (DDP waiting for its buckets) on the rank that got there last, "
              "the communication not hidden; skew: how much earlier the first rank got there; "
              "all-reduce alone: the same buckets reduced with nothing else running; "
              "hidden = 1 - wait / all-reduce alone.  Medians over steps; each step the slowest rank's."]
    return "\n".join(lines) + "\n"


def machine_info(args):
    """bench_cpu's record of the machine (CPU, cores, BLAS, load), with mpi4py's version and the note."""
    sys.path.insert(0, str(ROOT))
    from bench_cpu import machine_info as cpu_machine_info
    import mpi4py
    info = cpu_machine_info(args.threads)
    info["load_average_at_start"] = [round(v, 2) for v in info["load_average_at_start"] or ()]
    info.update(mpi4py=mpi4py.__version__, note=args.note)
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", default="small28,paper", help="comma-separated AlexNet variants")
    p.add_argument("--ranks", default="1,2", help="comma-separated rank counts (1 is the baseline)")
    p.add_argument("--batch", type=int, default=0, help="per-rank batch (default: small28 32, paper 4)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (Numba compile, caches)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    p.add_argument("--device", default="cpu", help="cpu (MPI) or cuda (NCCL, one GPU per rank)")
    p.add_argument("--bucket-mb", type=float, default=25.0, help="DDP's bucket_cap_mb")
    p.add_argument("--quick", action="store_true", help="small28 only, 1 and 2 ranks, 2 steps (smoke test)")
    p.add_argument("--out", default=str(ROOT / "results"), help="folder for the JSON and Markdown")
    p.add_argument("--note", default="", help="a remark recorded with the results (e.g. other load)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per launch")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.nets, args.ranks, args.steps, args.warmup = "small28", "1,2", 2, 1
    machine = machine_info(args)
    results = []
    for net in args.nets.split(","):
        for n in (int(v) for v in args.ranks.split(",")):
            r = launch(args, net, n)
            results.append(r)
            print(f"{net:8s} {n} rank(s) x batch {r['batch_per_rank']}: {r['images_per_s']:.1f} images/s, "
                  f"step {_ms(r['step_s'])} ms, wait {_ms(r['wait_s'])} ms, "
                  f"all-reduce alone {_ms(r['allreduce_alone_s'])} ms", flush=True)
    with_efficiency(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    stem = out / f"distributed-{stamp}{'-quick' if args.quick else ''}"
    Path(f"{stem}.json").write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    table = render(results, machine)
    Path(f"{stem}.md").write_text(table)
    print(table)
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
