"""AlexNet's two towers on two ranks, checked against the grouped single-process net.

    mpiexec -n 2 python examples/alexnet_two_towers.py            # small28, 28x28 digits
    mpiexec -n 2 python examples/alexnet_two_towers.py --variant paper --batch 2

Each rank builds the same grouped AlexNet (same seed) in float64, keeps its own tower
(half of every layer's kernels, :class:`tinyconv.models.alexnet_towers.AlexNetTowers`),
and runs one forward and backward through the exchanges.  Each rank also runs the whole
grouped net in one process, and prints its loss and the largest difference between
its tower's gradients and the matching half of the single-process net's.
"""
import argparse
import sys

import numpy as np

import tinyconv
import tinyconv.distributed as dist
import tinyconv.nn.functional as F
from tinyconv.models import alexnet
from tinyconv.models.alexnet_towers import AlexNetTowers


def grouped_gradients(model, x, y):
    """Loss and parameter gradients of the whole grouped net, in one process."""
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), {name: p.grad.numpy() for name, p in model.named_parameters()}


def tower_pairs(towers, model):
    """(tower parameter, matching single-process parameter) in layer order."""
    mine = [m for m in towers.modules() if isinstance(m, (tinyconv.nn.Conv2d, tinyconv.nn.Linear))]
    full = [m for m in model.modules() if isinstance(m, (tinyconv.nn.Conv2d, tinyconv.nn.Linear))]
    for i, (t, f) in enumerate(zip(mine, full)):
        yield f"layer{i}.weight", t.weight, f.weight
        if t.bias is not None:
            yield f"layer{i}.bias", t.bias, f.bias


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="small28", choices=["small28", "small32", "paper"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--paper-lrn", action="store_true",
                    help="normalize each tower on its own, as the paper's GPUs did (no exchange before "
                         "LRN; the single-process net then differs at the tower boundary)")
    args = ap.parse_args(argv)

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if world != 2:
        sys.exit(f"alexnet_two_towers: run with mpiexec -n 2 (got {world} rank(s))")
    tinyconv.manual_seed(0)                           # the same net and batch on both ranks
    model = alexnet(variant=args.variant).double().eval()      # eval: no dropout masks to match
    x = tinyconv.randn(args.batch, *model.input_shape, dtype=tinyconv.float64)
    y = tinyconv.randint(0, 10, (args.batch,))

    towers = AlexNetTowers(model, rank, lrn_across_towers=not args.paper_lrn).eval()
    loss = F.cross_entropy(towers(x), y)
    loss.backward()

    full_loss, _ = grouped_gradients(model, x, y)
    worst = 0.0
    for _, mine, full in tower_pairs(towers, model):
        n = mine.shape[0]
        want = full.grad.numpy()[rank * n:(rank + 1) * n]
        worst = max(worst, float(np.max(np.abs(mine.grad.numpy() - want))))
    print(f"rank {rank}: tower loss {loss.item():.12f}, single-process loss {full_loss:.12f}, "
          f"max |grad difference| {worst:.3g}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
