"""The ``tinyconv`` command: ``train``, ``predict``, ``summary``, ``convert-torch``.

    tinyconv train                       # small28 AlexNet on the bundled MNIST digits, CPU
    tinyconv train --variant small32 --data ~/images --epochs 30 --device cuda
    tinyconv train --resume --out runs/alexnet
    tinyconv train --nproc 2             # data-parallel on 2 MPI ranks (= mpirun -n 2 tinyconv train)
    tinyconv predict digit.png --checkpoint runs/alexnet/best.npz [--ten-crop]
    tinyconv summary paper [--input-shape 3 227 227] [--num-classes 1000]
    tinyconv convert-torch alexnet-owt.pth alexnet.npz
    tinyconv walkthrough lrn             # one chapter of docs/: a layer's forward, backward, gradcheck

Each subcommand is one ``_cmd_<name>(args)`` function registered in :data:`COMMANDS`
by :func:`_parser`; a new one (the docs' ``walkthrough``) adds its parser lines there
and its function below.  ``main(argv)`` returns the exit status (0 ok, 1 error,
2 usage, 130 Ctrl-C), so tests call it directly.
"""
import argparse
import sys

import numpy as np


class CommandError(Exception):
    """A user-facing failure: printed as ``tinyconv <cmd>: <message>`` with exit status 1."""


# --------------------------------------------------------------------------- train


def _without_nproc(argv):
    """``argv`` less its ``--nproc N`` / ``--nproc=N`` (what each launched rank runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _launch(args):
    """``--nproc N``: run this same command on N MPI ranks; their exit status is ours."""
    import subprocess

    from .train import launch_command, launched_world_size
    if launched_world_size() > 1:
        raise CommandError(f"--nproc {args.nproc} inside an MPI launch of {launched_world_size()} ranks; "
                           "use one of the two (mpirun -n N tinyconv train, or tinyconv train --nproc N)")
    try:
        cmd = launch_command(args.nproc, _without_nproc(args.argv))
    except ValueError as e:
        raise CommandError(str(e)) from None
    print("launching: " + " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


def _cmd_train(args):
    from .train import TrainConfig, TrainingDiverged, train
    if args.nproc < 1:
        raise CommandError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1:
        return _launch(args)
    cfg = TrainConfig(variant=args.variant, data=args.data, device=args.device, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, out=args.out,
                      resume=bool(args.resume),
                      resume_path=args.resume if isinstance(args.resume, str) else "",
                      patience=args.patience, num_workers=args.workers, augment=not args.no_augment,
                      progress=not args.no_progress, plots=not args.no_plots, kernels=args.kernels or "",
                      init=args.init or "", max_steps_per_epoch=args.max_steps,
                      dropout=-1.0 if args.dropout is None else args.dropout, eval_limit=args.eval_limit,
                      threads=args.threads)
    import tinyconv
    tinyconv.tune_process()      # this process is ours: OpenMP threads sleep, malloc keeps freed memory
    try:
        result = train(cfg)
    except (TrainingDiverged, ValueError, FileNotFoundError, ImportError) as e:
        raise CommandError(str(e)) from None   # bad data, checkpoint or arguments: the message says which
    if result.get("rank", 0) != 0:
        return 0
    print(f"test accuracy: {result['test_accuracy']:.2%}   (top-5 error {result['test_top5_error']:.2%}; "
          f"{result['wall_time']:.0f} s)")
    return 0


# --------------------------------------------------------------------------- predict


def _model_from_checkpoint(path):
    from . import checkpoint as ckpt
    from .models import alexnet
    from .models.alexnet import VARIANTS
    c = ckpt.load_checkpoint(path)                    # meta's types and ranges are checked there
    meta, state = c["meta"], c["model_state"]
    if meta.get("arch", "alexnet") != "alexnet" or "variant" not in meta:
        raise CommandError(f"{path}: the checkpoint does not say which AlexNet variant it holds "
                           f"(meta has {sorted(meta)[:8]})")
    if meta["variant"] not in VARIANTS:
        raise CommandError(f"{path}: meta.variant is {meta['variant']!r}; expected one of {sorted(VARIANTS)}")
    shapes = [np.shape(a) for a in state.values()]
    if not shapes or len(shapes[0]) != 4 or len(shapes[-1]) != 1:
        raise CommandError(f"{path}: its model_state is not an AlexNet's "
                           f"(first array {shapes[:1]}, last {shapes[-1:]})")
    # the model to build must fit the stored arrays (bounded by the file), not whatever meta claims
    num_classes, in_channels = shapes[-1][0], shapes[0][1]
    for field, have in (("num_classes", num_classes), ("in_channels", in_channels)):
        if meta.get(field, have) != have:
            raise CommandError(f"{path}: meta.{field} is {meta[field]}, but the stored weights have {have}")
    model = alexnet(num_classes=num_classes, variant=meta["variant"], in_channels=in_channels, init="default")
    ckpt.check_model_state(model.state_dict(), c["model_state"], path, meta)
    model.load_state_dict(c["model_state"])
    model.eval()
    return model, meta


def _class_names(meta, n):
    names = meta.get("classes")
    if names and len(names) == n:
        return list(names)
    if n == 1000:                                     # a converted torchvision / ImageNet model
        from .models import imagenet_classes
        return imagenet_classes()
    return [str(i) for i in range(n)]


def _preprocess(meta, model, path="the checkpoint"):
    """The checkpoint's recipe, or the variant's usual one (ImageNet statistics for the
    ImageNet-sized nets, as torchvision's pretrained weights expect)."""
    c, h, _ = model.input_shape
    p = dict(meta.get("preprocess") or {})
    if not p:
        if h >= 200:
            p = {"resize": 256, "crop": h, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
        else:
            p = {"resize": h, "crop": h, "mean": [0.0] * c, "std": None}
    p.setdefault("mode", "L" if c == 1 else "RGB")
    p.setdefault("mean", [0.0] * c)
    p.setdefault("crop", h)
    if p["crop"] != h or (p["mode"] == "L") != (c == 1) or len(p["mean"]) not in (1, c) \
            or (p.get("std") and len(p["std"]) != len(p["mean"])) or (p.get("resize") or h) > 8 * h:
        raise CommandError(f"{path}: meta.preprocess {_short(p)} does not fit "
                           f"the model's {c}x{h}x{h} input (crop {h}, resize {h} to {8 * h}, mode "
                           f"{'L' if c == 1 else 'RGB'}, {c} mean/std values)")
    return p


def _short(v):
    r = repr(v)
    return r if len(r) <= 120 else r[:117] + "..."


def _load_inputs(path, p, ten_crop):
    from .data import load_image
    from .data import transforms as T
    try:
        img = load_image(path, p["mode"], who="predict")
    except (FileNotFoundError, ValueError) as e:
        raise CommandError(str(e)) from None
    if min(img.size) < 2:
        raise CommandError(f"{path}: the image is {img.width}x{img.height} pixels; it must be at least 2x2")
    crop = int(p["crop"])
    resize = max(int(p.get("resize") or crop), crop)
    x = T.ToArray()(T.Resize(resize)(img))
    norm = T.Normalize(p["mean"], p.get("std"))
    if ten_crop:
        return np.stack([norm(v) for v in T.TenCrop(crop)(x)])
    return norm(T.CenterCrop(crop)(x))[None]


def _cmd_predict(args):
    import tinyconv
    import tinyconv.nn.functional as F
    from .checkpoint import CheckpointError
    try:
        model, meta = _model_from_checkpoint(args.checkpoint)
    except (CheckpointError, ValueError, MemoryError) as e:
        raise CommandError(str(e) or type(e).__name__) from None
    if args.device != "cpu":
        model.to(args.device)
    p = _preprocess(meta, model, args.checkpoint)
    with tinyconv.no_grad():
        for path in args.images:
            x = _load_inputs(path, p, args.ten_crop)
            probs = F.softmax(model(tinyconv.tensor(x, device=args.device)), dim=1).array
            probs = tinyconv.backend.to_device(probs, "cpu").mean(axis=0)   # the 10 crops' average
            names = _class_names(meta, probs.shape[0])
            top = np.argsort(-probs, kind="stable")[:min(args.top, probs.shape[0])]
            crops = " (10-crop average)" if args.ten_crop else ""
            print(f"{path}{crops}:")
            for i in top:
                print(f"  {100 * probs[i]:6.2f}%  {names[i]}")
    return 0


# --------------------------------------------------------------------------- summary


def _cmd_summary(args):
    from .checkpoint import MAX_IMAGE_SIDE, META_SCHEMA
    from .models import alexnet
    from .nn.summary import summary
    for flag, v, check in (("--num-classes", args.num_classes, META_SCHEMA["num_classes"]),
                           ("--in-channels", args.in_channels, META_SCHEMA["in_channels"])):
        if v is not None and check(v):                 # the ranges a checkpoint may declare
            raise CommandError(f"{flag} is {v}; expected {check(v)}")
    if args.input_shape and not all(1 <= d <= MAX_IMAGE_SIDE for d in args.input_shape):
        raise CommandError(f"--input-shape is {' '.join(map(str, args.input_shape))}; expected sizes "
                           f"from 1 to {MAX_IMAGE_SIDE}")
    try:
        model = alexnet(num_classes=args.num_classes, variant=args.model, in_channels=args.in_channels,
                        init="default")
    except ValueError as e:
        raise CommandError(str(e)) from None
    shape = tuple(args.input_shape) if args.input_shape else None
    try:
        summary(model, shape, print_fn=print)
    except (ValueError, MemoryError) as e:
        raise CommandError(str(e) or type(e).__name__) from None
    return 0


# --------------------------------------------------------------------------- convert-torch


def _cmd_convert_torch(args):
    from .models.convert_torch import convert_torch
    try:
        convert_torch(args.input, args.output)      # reads the .pth without PyTorch
    except (OSError, ValueError, KeyError) as e:
        raise CommandError(str(e)) from None
    print(f"wrote {args.output}; try: tinyconv predict IMAGE --checkpoint {args.output}")
    return 0


# --------------------------------------------------------------------------- walkthrough


def _cmd_walkthrough(args):
    from .walkthrough import run
    run(args.layer)
    return 0


# --------------------------------------------------------------------------- parser

#: subcommand -> (function, one-line help); _parser adds each one's arguments
COMMANDS = {
    "train": (_cmd_train, "train an AlexNet (default: small28 on the bundled MNIST digits, CPU)"),
    "predict": (_cmd_predict, "print the top-5 classes of images with a trained checkpoint"),
    "summary": (_cmd_summary, "print an AlexNet variant's layers, output shapes, parameters and FLOPs"),
    "convert-torch": (_cmd_convert_torch, "turn a torchvision AlexNet .pth into a tinyconv checkpoint"),
    "walkthrough": (_cmd_walkthrough, "run one chapter of docs/: a layer's forward, backward and "
                                      "gradient check, printed"),
}


def _variants():
    from .models.alexnet import VARIANTS
    return sorted(VARIANTS)


def _parser():
    from .data import BUNDLED
    from .train import TrainConfig
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="tinyconv", description="tinyconv: AlexNet from scratch on NumPy/CuPy")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parsers = {name: sub.add_parser(name, help=h, description=h) for name, (_, h) in COMMANDS.items()}

    t = parsers["train"]
    t.add_argument("--variant", "--model", default=d.variant, choices=_variants(),
                   help=f"AlexNet variant (default {d.variant})")
    t.add_argument("--data", default=d.data,
                   help=f"a bundled set ({', '.join(sorted(BUNDLED))}) or a folder with train/ and val/ "
                        f"image-class folders (default {d.data})")
    t.add_argument("--device", default=d.device, help="cpu or cuda (default cpu)")
    t.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    t.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"images per step per process (default {d.batch_size}; the global batch is "
                        "this times the number of processes)")
    t.add_argument("--lr", type=float, default=d.lr, help=f"initial learning rate (default {d.lr})")
    t.add_argument("--patience", type=int, default=d.patience,
                   help=f"epochs without a better validation error before lr /= 10 (default {d.patience})")
    t.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    t.add_argument("--out", default=d.out, help=f"folder for checkpoints and plots (default {d.out})")
    t.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from OUT/last.npz (or the given checkpoint)")
    t.add_argument("--workers", type=int, default=d.num_workers, help="data loader threads")
    t.add_argument("--threads", type=int, default=0,
                   help="CPU threads for the kernels and BLAS (default: 1 for the small nets, else all)")
    t.add_argument("--init", choices=["paper", "default", "kaiming"],
                   help="weight initialization (default: the variant's own)")
    t.add_argument("--kernels", choices=["fast", "reference"], help="force the kernel mode")
    t.add_argument("--no-augment", action="store_true", help="no random crops/flips/colour noise")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--no-plots", action="store_true", help="no PNG plots at the end")
    t.add_argument("--dropout", type=float, help="override every dropout layer's p (default: the model's)")
    t.add_argument("--max-steps", type=int, default=0, help="cut each epoch after this many batches (0: all)")
    t.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train data-parallel on N processes: relaunches this command under the MPI "
                        "launcher (mpiexec -n N); --batch-size is per process, the global batch N times it")
    t.add_argument("--eval-limit", type=int, default=0,
                   help="evaluate on the first N validation/test images only (0: all)")

    p = parsers["predict"]
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--checkpoint", required=True, help="a tinyconv checkpoint (.npz)")
    p.add_argument("--ten-crop", action="store_true", help="average the paper's 10 crops")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--device", default="cpu")

    s = parsers["summary"]
    s.add_argument("model", choices=_variants(), metavar="MODEL", help=f"one of {', '.join(_variants())}")
    s.add_argument("--input-shape", type=int, nargs="+", metavar="N", help="C H W of one sample")
    s.add_argument("--num-classes", type=int, default=None)
    s.add_argument("--in-channels", type=int, default=None)

    c = parsers["convert-torch"]
    c.add_argument("input", help="a torchvision AlexNet state_dict (.pth)")
    c.add_argument("output", help="the tinyconv checkpoint to write (.npz)")

    from .walkthrough import LAYERS
    w = parsers["walkthrough"]
    w.add_argument("layer", choices=LAYERS, metavar="LAYER", help=f"one of {', '.join(LAYERS)}")
    return ap


def main(argv=None):
    """Run the ``tinyconv`` command line; returns the exit status."""
    ap = _parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:                          # --help or a usage error
        return int(e.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # what --nproc relaunches
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except CommandError as e:
        print(f"tinyconv {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tinyconv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":                          # python -m tinyconv.cli
    sys.exit(main())

