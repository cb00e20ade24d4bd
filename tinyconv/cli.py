"""The ``tinyconv`` command: ``train``, ``predict``, ``summary``, ``convert-torch``.

    tinyconv train                       # small28 AlexNet on the bundled MNIST digits, CPU
    tinyconv train --variant small32 --data ~/images --epochs 30 --device cuda
    tinyconv train --resume --out runs/alexnet
    tinyconv train --nproc 2             # data-parallel on 2 MPI ranks (= mpirun -n 2 tinyconv train)
    tinyconv predict digit.png --checkpoint runs/alexnet/best.npz [--ten-crop]
    tinyconv predict x.png --checkpoint net.pt --model mypkg.nets:MyNet   # a tinyconv.save'd state_dict
    tinyconv summary paper [--num-classes 1000]
    tinyconv summary mypkg.nets:MyNet --input-shape 3 64 64
    tinyconv --version
    tinyconv convert-torch alexnet-owt.pth alexnet.npz
    tinyconv walkthrough lrn             # one chapter of docs/: a layer's forward, backward, gradcheck

Each subcommand is one ``_cmd_<name>(args)`` function registered in :data:`COMMANDS`
by :func:`_parser`; a new one (the docs' ``walkthrough``) adds its parser lines there
and its function below.  ``main(argv)`` returns the exit status (0 ok, 1 error,
2 usage, 130 Ctrl-C), so tests call it directly.

Every error is one line on stderr, ``tinyconv <cmd>: <what>``: a bad flag says the flag,
the range it takes (PyTorch's, where PyTorch has the same parameter) and what it got,
before anything is loaded; a failure later says the file or device it concerns.
``--model module:Class`` imports the named class (explicitly: the user names the code
to run); a checkpoint file itself never executes anything.
"""
import argparse
import math
import os
import pickle
import sys

import numpy as np

from .checkpoint import MAX_CHANNELS, MAX_CLASSES, MAX_IMAGE_SIDE, short_repr


class CommandError(Exception):
    """A user-facing failure: printed as ``tinyconv <cmd>: <message>`` with exit status 1."""


def _warn(command, msg):
    sys.stdout.flush()                               # after the lines printed before it, when both are piped
    print(f"tinyconv {command}: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- flag types
# argparse ``type=`` functions: each gives one line "--flag: expected <range>, got <value>"


def _int_flag(lo=None, hi=None, note=""):
    """An int in [lo, hi] (either end open when None)."""
    if lo is not None and hi is not None:
        want = f"an int from {lo} to {hi}"
    elif lo is not None:
        want = f"an int >= {lo}"
    else:
        want = "an int"
    want += note

    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"expected {want}, got {v}")
        return v
    return parse


def _float_flag(want, ok):
    """A finite float for which ``ok(v)`` holds; ``want`` says which (for the error)."""
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if not (math.isfinite(v) and ok(v)):
            raise argparse.ArgumentTypeError(f"expected {want}, got {v:g}")
        return v
    return parse


def _seed(text):
    """``torch.manual_seed``'s range, -2**63 to 2**64 - 1; a negative seed is taken modulo
    2**64 as PyTorch does (-1 is the seed 2**64 - 1)."""
    v = _int_flag(-2**63, 2**64 - 1)(text)
    return v % 2**64


def _device(text):
    from .backend import device
    try:
        device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}") from None
    return text


def _out_folder(text):
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a folder (for last.npz, best.npz and the plots), "
                                         f"got {text!r}, which is a file")
    return text


_POSITIVE = _int_flag(1)
_COUNT = _int_flag(0)


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
    except (TrainingDiverged, ValueError, OSError, ImportError) as e:
        raise CommandError(str(e)) from None   # bad data, checkpoint or arguments: the message says which
    if result.get("rank", 0) != 0:
        return 0
    split = ("test accuracy" if result["test_split"] == "test" else
             "val accuracy (no test/ split; this set chose the best checkpoint)")
    print(f"{split}: {result['test_accuracy']:.2%}   (top-5 error {result['test_top5_error']:.2%}; "
          f"{result['wall_time']:.0f} s)")
    best = result["tested_checkpoint"]
    print(f"use {best} (epoch {result['best_epoch']}, the lowest validation error): "
          f"tinyconv predict IMAGE --checkpoint {best}")
    return 0


# --------------------------------------------------------------------------- models


def _import_model(spec, flag="--model"):
    """``module:Class`` -> the class (or factory) the user named, imported from the
    installed packages or the current folder (as ``python -m`` would)."""
    import importlib
    module, _, name = spec.partition(":")
    if not module or not name:
        raise CommandError(f"{flag} is {spec!r}; expected module:Class (e.g. mypkg.nets:MyNet)")
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except Exception as e:                                # the user's module: anything can fail
        raise CommandError(f"{flag} {spec}: cannot import it ({type(e).__name__}: {e})") from None
    finally:
        if added:
            sys.path.remove(here)
    return obj


def _build_model(spec, flag="--model"):
    """An instance of the ``module:Class`` the user named, built with no arguments."""
    from .nn import Module
    cls = _import_model(spec, flag)
    if not callable(cls):
        raise CommandError(f"{flag} {spec} is a {type(cls).__name__}; expected a Module class")
    try:
        model = cls()
    except Exception as e:
        raise CommandError(f"{flag} {spec}: {spec.partition(':')[2]}() failed "
                           f"({type(e).__name__}: {e}); it must build with no arguments") from None
    if not isinstance(model, Module):
        raise CommandError(f"{flag} {spec}: {spec.partition(':')[2]}() gave a {type(model).__name__}; "
                           "expected a tinyconv.nn.Module")
    return model


def _file_kind(path):
    """What a weights file is, from its first bytes and zip directory (nothing is run):
    "checkpoint" (tinyconv train), "save" (tinyconv.save), "torch", "pickle", "safetensors", None."""
    from . import checkpoint as ckpt
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    from .serialization import is_safetensors_head
    if is_safetensors_head(head):
        return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:2] != b"PK":
        return None
    return ckpt.archive_kind(path)


_CONVERT = ("convert a torchvision AlexNet with `tinyconv convert-torch {path} alexnet.npz`, or name "
            "the model class of another state_dict with --model module:Class")


def _load_weights(path, spec):
    """(model_state, meta) of ``path``: a training checkpoint, or with ``--model`` also a
    state_dict written by tinyconv.save, torch.save or safetensors."""
    import tinyconv
    from . import checkpoint as ckpt
    if not os.path.isfile(path):
        raise CommandError(f"--checkpoint {path}: no such file")
    kind = _file_kind(path)
    if kind == "checkpoint" or (kind is None and not spec):
        c = ckpt.load_checkpoint(path)                    # meta's types and ranges are checked there
        return c["model_state"], c["meta"]
    if not spec:
        if kind == "torch":
            raise CommandError(f"{path} is a PyTorch file (torch.save): " + _CONVERT.format(path=path))
        if kind == "pickle":
            raise CommandError(f"{path} is a pickle (PyTorch's legacy torch.save format, or pickle.dump), "
                               "which tinyconv never loads since a pickle can run code; re-save it with a "
                               "current torch.save, then " + _CONVERT.format(path=path))
        raise CommandError(f"{path} holds a state_dict saved with "
                           f"{'tinyconv.save' if kind == 'save' else 'safetensors'}, not a training "
                           "checkpoint; name its model class with --model module:Class")
    obj = tinyconv.load(path, map_location="cpu")
    if isinstance(obj, dict):
        for key in ("model_state", "state_dict", "model"):        # a {"state_dict": ..., ...} checkpoint
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not (isinstance(obj, dict) and obj and all(hasattr(v, "shape") for v in obj.values())):
        raise CommandError(f"{path} holds a {type(obj).__name__}, not a state_dict "
                           "(a dict of parameter name -> tensor)")
    return obj, {}


def _model_from_checkpoint(path, spec=None):
    """(model in eval mode, meta) for ``predict``: the AlexNet a training checkpoint
    describes, or the ``--model`` class with the file's state_dict."""
    from . import checkpoint as ckpt
    state, meta = _load_weights(path, spec)
    if spec:
        model = _build_model(spec)
    else:
        model = _alexnet_for(path, meta, state)
    ckpt.check_model_state(model.state_dict(), state, path, meta)
    model.load_state_dict(state)
    model.eval()
    return model, meta


def _alexnet_for(path, meta, state):
    from .models import alexnet
    from .models.alexnet import VARIANTS
    if meta.get("arch", "alexnet") != "alexnet" or "variant" not in meta:
        raise CommandError(f"{path}: the checkpoint does not say which AlexNet variant it holds "
                           f"(meta has {sorted(meta)[:8]}); name its model class with --model module:Class")
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
    return alexnet(num_classes=num_classes, variant=meta["variant"], in_channels=in_channels, init="default")


def _input_shape(model, meta, given, command):
    """One sample's shape: --input-shape, else the model's ``input_shape``, else meta's
    (``predict`` takes images: C H W)."""
    shape = given or getattr(model, "input_shape", None) or meta.get("input_shape")
    if not shape:
        raise CommandError(f"{type(model).__name__} has no input_shape attribute; "
                           "give --input-shape C H W")
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 and command == "predict":
        raise CommandError(f"{type(model).__name__}'s input shape is {' '.join(map(str, shape))}; predict "
                           "feeds it images: give --input-shape C H W")
    return shape


# --------------------------------------------------------------------------- predict


def _class_names(meta, n):
    names = meta.get("classes")
    if names and len(names) == n:
        return list(names)
    if n == 1000:                                     # a converted torchvision / ImageNet model
        from .models import imagenet_classes
        return imagenet_classes()
    return [str(i) for i in range(n)]


def _preprocess(meta, model, path="the checkpoint", shape=None):
    """The checkpoint's recipe, or the variant's usual one (ImageNet statistics for the
    ImageNet-sized nets, as torchvision's pretrained weights expect)."""
    c, h, _ = shape or model.input_shape
    p = dict(meta.get("preprocess") or {})
    if not p:
        if h >= 200:
            p = {"resize": 256, "crop": h, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
        else:
            p = {"resize": h, "crop": h, "mean": [0.0] * c, "std": None}
    p.setdefault("mode", "L" if c == 1 else "RGB")
    p.setdefault("mean", [0.0] * c)
    p.setdefault("crop", h)
    if c not in (1, 3) or p["crop"] != h or (p["mode"] == "L") != (c == 1) or len(p["mean"]) not in (1, c) \
            or (p.get("std") and len(p["std"]) != len(p["mean"])) or (p.get("resize") or h) > 8 * h:
        raise CommandError(f"{path}: meta.preprocess {short_repr(p, 120)} does not fit "
                           f"the model's {c}x{h}x{h} input (crop {h}, resize {h} to {8 * h}, mode "
                           f"{'L' if c == 1 else 'RGB'}, {c} mean/std values; images have 1 or 3 channels)")
    return p


def _trained_with_flips(meta):
    """Whether the training run mirrored its images: True, False, or None (not recorded)."""
    flips = (meta.get("preprocess") or {}).get("hflip")
    if flips is not None:
        return bool(flips)
    config = meta.get("config")
    if isinstance(config, dict):                          # checkpoints from before "hflip" was recorded
        from .data import BUNDLED
        if config.get("augment") is False or config.get("data") in BUNDLED:
            return False                                  # the bundled digits get random crops only
    return None


def _load_inputs(path, p, ten_crop):
    """(the network's input batch, the image's mean brightness in [0, 1])."""
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
        return np.stack([norm(v) for v in T.TenCrop(crop)(x)]), float(x.mean())
    return norm(T.CenterCrop(crop)(x))[None], float(x.mean())


def _inverted_note(path, brightness, p):
    """The checkpoint's ``invert_hint`` when the image's brightness is on the other side of
    0.5 from the training images' mean (a black-on-white drawing for MNIST), else None."""
    hint, trained = p.get("invert_hint"), float(np.mean(p["mean"]))
    if not hint or (brightness < 0.5) == (trained < 0.5):
        return None
    light = "light" if brightness >= 0.5 else "dark"
    return (f"note: {path} is mostly {light} (mean brightness {brightness:.2f}; the training images' is "
            f"{trained:.2f}): {hint}; invert the image first (PIL.ImageOps.invert) if its strokes are the "
            "other way round")


def _cmd_predict(args):
    import tinyconv
    import tinyconv.nn.functional as F
    from .checkpoint import CheckpointError
    try:
        model, meta = _model_from_checkpoint(args.checkpoint, args.model)
    except (CheckpointError, ValueError, MemoryError, pickle.UnpicklingError) as e:
        raise CommandError(str(e) or type(e).__name__) from None
    if args.device != "cpu":
        try:
            model.to(args.device)
        except (RuntimeError, ValueError, ImportError) as e:
            raise CommandError(f"--device {args.device}: {e}") from None
    shape = _input_shape(model, meta, args.input_shape, "predict")
    p = _preprocess(meta, model, args.checkpoint, shape)
    if args.ten_crop and _trained_with_flips(meta) is False:
        _warn("predict", "warning: --ten-crop averages 5 crops and their mirror images, but this model was "
                         "trained without horizontal flips (mirrored digits or letters are other shapes); "
                         "the average may be worse than the centre crop alone")
    with tinyconv.no_grad():
        for path in args.images:
            x, brightness = _load_inputs(path, p, args.ten_crop)
            note = _inverted_note(path, brightness, p)
            if note:
                _warn("predict", note)
            try:
                logits = model(tinyconv.tensor(x, device=args.device, dtype=_dtype_of(model)))
            except (ValueError, TypeError, RuntimeError) as e:    # a --model that does not take these images
                raise CommandError(f"{type(model).__name__}: {e}") from None
            probs = F.softmax(logits, dim=1).array
            probs = tinyconv.backend.to_device(probs, "cpu").mean(axis=0)   # the 10 crops' average
            names = _class_names(meta, probs.shape[0])
            top = np.argsort(-probs, kind="stable")[:min(args.top, probs.shape[0])]
            crops = " (10-crop average)" if args.ten_crop else ""
            print(f"{path}{crops}:")
            for i in top:
                print(f"  {100 * probs[i]:6.2f}%  {names[i]}")
    return 0


def _dtype_of(model):
    params = list(model.parameters())
    return params[0].dtype if params else None


# --------------------------------------------------------------------------- summary

#: most values one sample of ``summary --input-shape`` may have (the forward pass runs on zeros)
MAX_SUMMARY_VALUES = 3 * MAX_IMAGE_SIDE**2


def _cmd_summary(args):
    from .models import alexnet
    from .models.alexnet import VARIANTS
    from .nn.summary import summary
    shape = tuple(args.input_shape) if args.input_shape else None
    if shape and math.prod(shape) > MAX_SUMMARY_VALUES:
        raise CommandError(f"--input-shape is {' '.join(map(str, shape))} ({math.prod(shape):,} values); "
                           f"expected at most {MAX_SUMMARY_VALUES:,} values per sample")
    if ":" in args.model:
        for flag, v in (("--num-classes", args.num_classes), ("--in-channels", args.in_channels)):
            if v is not None:
                raise CommandError(f"{flag} applies to the AlexNet variants; {args.model} is built "
                                   "with no arguments")
        model = _build_model(args.model, "MODEL")
        shape = _input_shape(model, {}, shape, "summary")
    else:
        if args.model not in VARIANTS:
            raise CommandError(f"MODEL is {args.model!r}; expected one of {', '.join(sorted(VARIANTS))} "
                               "or module:Class")
        try:
            model = alexnet(num_classes=args.num_classes, variant=args.model, in_channels=args.in_channels,
                            init="default")
        except ValueError as e:
            raise CommandError(str(e)) from None
        if shape and shape != tuple(model.input_shape):
            raise CommandError(f"--input-shape is {' '.join(map(str, shape))}; AlexNet {args.model!r} "
                               f"takes {' '.join(map(str, model.input_shape))}")
    try:
        summary(model, shape, print_fn=print)
    except (ValueError, TypeError, RuntimeError, MemoryError) as e:
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
    "summary": (_cmd_summary, "print a model's layers, output shapes, parameters and FLOPs"),
    "convert-torch": (_cmd_convert_torch, "turn a torchvision AlexNet .pth into a tinyconv checkpoint"),
    "walkthrough": (_cmd_walkthrough, "run one chapter of docs/: a layer's forward, backward and "
                                      "gradient check, printed"),
}


def _variants():
    from .models.alexnet import VARIANTS
    return sorted(VARIANTS)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``tinyconv train: --lr: expected ..., got -1``."""

    def error(self, message):
        message = message[len("argument "):] if message.startswith("argument ") else message
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _version():
    """tinyconv's installed version, as ``python -m pip show tinyconv`` gives it."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tinyconv")
    except PackageNotFoundError:                      # run from a source tree that is not installed
        from . import __version__
        return __version__


def _parser():
    from .data import BUNDLED
    from .train import TrainConfig
    d = TrainConfig()
    ap = _Parser(prog="tinyconv", description="tinyconv: AlexNet from scratch on NumPy/CuPy")
    ap.add_argument("--version", action="version", version=f"tinyconv {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parsers = {name: sub.add_parser(name, help=h, description=h) for name, (_, h) in COMMANDS.items()}

    t = parsers["train"]
    t.add_argument("--variant", "--model", default=d.variant, choices=_variants(),
                   help=f"AlexNet variant (default {d.variant})")
    t.add_argument("--data", default=d.data,
                   help=f"a bundled set ({', '.join(sorted(BUNDLED))}) or a folder with train/ and val/ "
                        f"(and optionally test/) image-class folders (default {d.data})")
    t.add_argument("--device", type=_device, default=d.device, help="cpu, cuda or cuda:N (default cpu)")
    t.add_argument("--epochs", type=_POSITIVE, default=d.epochs, help=f"at least 1 (default {d.epochs})")
    t.add_argument("--batch-size", type=_POSITIVE, default=d.batch_size,
                   help=f"images per step, over all processes (default {d.batch_size}; with --nproc N "
                        "each process takes 1/N of them)")
    t.add_argument("--lr", type=_float_flag("a finite float > 0", lambda v: v > 0), default=d.lr,
                   help=f"initial learning rate, > 0 (default {d.lr})")
    t.add_argument("--patience", type=_COUNT, default=d.patience,
                   help=f"epochs without a better validation error before lr /= 10 (default {d.patience})")
    t.add_argument("--seed", type=_seed, default=d.seed,
                   help=f"-2**63 to 2**64-1, a negative one taken modulo 2**64 as torch.manual_seed does "
                        f"(default {d.seed})")
    t.add_argument("--out", type=_out_folder, default=d.out,
                   help=f"folder for checkpoints and plots (default {d.out})")
    t.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from OUT/last.npz (or the given checkpoint)")
    t.add_argument("--workers", type=_COUNT, default=d.num_workers,
                   help=f"data loader threads, >= 0 (0: load in the training thread; "
                        f"default {d.num_workers})")
    t.add_argument("--threads", type=_COUNT, default=0,
                   help="CPU threads for the kernels and BLAS (default 0: 1 for the small nets, else all)")
    t.add_argument("--init", choices=["paper", "default", "kaiming"],
                   help="weight initialization (default: the variant's own)")
    t.add_argument("--kernels", choices=["fast", "reference"], help="force the kernel mode")
    t.add_argument("--no-augment", action="store_true", help="no random crops/flips/colour noise")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--no-plots", action="store_true", help="no PNG plots at the end")
    t.add_argument("--dropout", type=_float_flag("a probability from 0 to 1", lambda v: 0 <= v <= 1),
                   help="override every dropout layer's p, 0 to 1 (default: the model's)")
    t.add_argument("--max-steps", type=_COUNT, default=0,
                   help="cut each epoch after this many batches (default 0: all)")
    t.add_argument("--nproc", type=_POSITIVE, default=1, metavar="N",
                   help="train data-parallel on N processes: relaunches this command under the MPI "
                        "launcher (mpiexec -n N); --batch-size stays the global batch, each process "
                        "takes 1/N of it (the one-process run, split)")
    t.add_argument("--eval-limit", type=_COUNT, default=0,
                   help="evaluate on N validation/test images spread through each set (default 0: all)")

    p = parsers["predict"]
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint of tinyconv train (.npz); with --model also a state_dict saved by "
                        "tinyconv.save, torch.save or safetensors")
    p.add_argument("--model", metavar="MODULE:CLASS",
                   help="the model class to load the state_dict into, imported by name (e.g. "
                        "mypkg.nets:MyNet, built with no arguments; default: the checkpoint's AlexNet)")
    p.add_argument("--input-shape", type=_int_flag(1, MAX_IMAGE_SIDE), nargs=3, metavar=("C", "H", "W"),
                   help="the model's input (default: its input_shape attribute or the checkpoint's)")
    p.add_argument("--ten-crop", action="store_true",
                   help="average the paper's 10 crops (4 corners, centre and their mirror images)")
    p.add_argument("--top", type=_POSITIVE, default=5, help="how many classes to show, >= 1 (default 5)")
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")

    s = parsers["summary"]
    s.add_argument("model", metavar="MODEL",
                   help=f"an AlexNet variant ({', '.join(_variants())}) or module:Class (a "
                        "tinyconv.nn.Module class, imported by name and built with no arguments)")
    s.add_argument("--input-shape", type=_int_flag(1, MAX_IMAGE_SIDE), nargs="+", metavar="N",
                   help="one sample's shape, e.g. C H W (default: the model's input_shape)")
    s.add_argument("--num-classes", type=_int_flag(1, MAX_CLASSES), default=None,
                   help="an AlexNet variant's classes (default: its own)")
    s.add_argument("--in-channels", type=_int_flag(1, MAX_CHANNELS), default=None,
                   help="an AlexNet variant's input channels (default: its own)")

    c = parsers["convert-torch"]
    c.add_argument("input", help="a torchvision AlexNet state_dict (.pth)")
    c.add_argument("output", help="the tinyconv checkpoint to write (.npz)")

    from .walkthrough import LAYERS
    w = parsers["walkthrough"]
    w.add_argument("layer", choices=LAYERS, metavar="LAYER", help=f"one of {', '.join(LAYERS)}")
    return ap


def _one_line(command, msg):
    """``msg`` without a leading ``<command>: `` (the prefix main adds), its lines joined by "; "."""
    lines, msg = str(msg).splitlines(), ""
    for line in filter(None, (line.strip() for line in lines)):
        msg += (" " if msg.endswith(":") else "; " if msg else "") + line
    if msg.startswith(f"{command}: "):
        msg = msg[len(command) + 2:]
    return msg


def main(argv=None):
    """Run the ``tinyconv`` command line; returns the exit status."""
    ap = _parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:                          # --help, --version or a usage error
        return int(e.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # what --nproc relaunches
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except CommandError as e:
        print(f"tinyconv {args.command}: {_one_line(args.command, e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tinyconv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":                          # python -m tinyconv.cli
    sys.exit(main())
