"""Turn a torchvision AlexNet ``.pth`` file into a tinyconv checkpoint (``tinyconv convert-torch``).

The ``"torchvision"`` variant has torchvision's module names and shapes, so a
torchvision ``state_dict`` loads into it with no renaming: converting is reading the
PyTorch file safely with :func:`tinyconv.load` (no PyTorch needed: a restricted unpickler
that admits tensors and plain containers only, never code), checking every key and shape
against the model, and writing :mod:`tinyconv.checkpoint`'s format.

The checkpoint records how torchvision's pretrained weights expect images (RGB scaled to
[0, 1], shorter side resized to 256, centre crop 224, normalized with ImageNet's mean and
std) and ImageNet's 1000 class names, so ``predict`` can use it as is.
"""
import os
from collections import OrderedDict

import numpy as np

#: how torchvision's ImageNet weights (AlexNet_Weights.IMAGENET1K_V1) expect their input:
#: RGB scaled to [0, 1], shorter side resized to 256, centre crop 224, then (x - mean) / std
TORCHVISION_PREPROCESS = {
    "mode": "RGB", "resize": 256, "crop": 224,
    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
}


def load_torch_state_dict(path):
    """A torchvision ``.pth`` file -> an OrderedDict of NumPy arrays, keys unchanged.

    Accepts a bare ``state_dict`` (what torchvision's weight files are), a dict with a
    ``"state_dict"`` or ``"model"`` entry (common training checkpoints), and strips
    ``nn.DataParallel``'s ``module.`` prefix.  PyTorch is not needed.
    """
    from ..autograd import Tensor
    from ..checkpoint import CheckpointError
    from ..serialization import load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"convert_torch: no such file: {path}")
    try:
        obj = load(path, map_location="cpu")
    except CheckpointError as e:
        raise ValueError(f"convert_torch: {path} could not be read as a PyTorch weights file: {e}") from None
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"convert_torch: {path} holds a {type(obj).__name__}, not a state_dict "
                         f"(a mapping of parameter name -> tensor)")
    out = OrderedDict()
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"convert_torch: {path}: entry {key!r} is a {type(value).__name__}, "
                             f"not a tensor")
        name = key[len("module."):] if isinstance(key, str) and key.startswith("module.") else key
        out[name] = value.array
    return out


def convert_torch(in_path, out_path):
    """Convert torchvision AlexNet weights ``in_path`` (.pth) to a tinyconv checkpoint
    ``out_path``; returns ``out_path``.

    The number of classes comes from the file (``classifier.6.weight``).  Every key and
    shape is checked against tinyconv's ``alexnet(variant="torchvision")``; a file of
    another architecture is refused with the keys that do not fit.
    """
    from .. import checkpoint
    from . import imagenet_classes
    from .alexnet import alexnet

    state = load_torch_state_dict(in_path)
    last = state.get("classifier.6.weight")
    if last is None or last.ndim != 2:
        raise ValueError(f"convert_torch: {os.fspath(in_path)} is not a torchvision AlexNet state_dict "
                         f"(no 2-d 'classifier.6.weight'; its first keys are {list(state)[:6]})")
    num_classes = int(last.shape[0])
    model = alexnet(num_classes=num_classes, variant="torchvision", init="default")
    try:
        checkpoint.check_model_state(model.state_dict(), state, path=os.fspath(in_path))
    except checkpoint.CheckpointError as e:
        raise ValueError(f"convert_torch: {e}") from None
    model.load_state_dict({k: v.astype(np.float32, copy=False) for k, v in state.items()})
    meta = {
        "arch": "alexnet", "variant": "torchvision", "num_classes": num_classes,
        "in_channels": model.input_shape[0], "input_shape": list(model.input_shape),
        "converted_from": os.path.basename(os.fspath(in_path)),
        "preprocess": TORCHVISION_PREPROCESS,
    }
    if num_classes == 1000:
        meta["classes"] = imagenet_classes()
    return checkpoint.save_checkpoint(out_path, model.state_dict(), meta=meta)
