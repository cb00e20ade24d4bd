"""Models built from ``tinyconv.nn``: AlexNet and its variants, ImageNet's class names.

``alexnet(num_classes, variant)`` builds one (see :mod:`tinyconv.models.alexnet` for each
variant's architecture and source); ``convert_torch`` turns a torchvision AlexNet ``.pth``
file into a tinyconv checkpoint; ``imagenet_classes()`` lists ImageNet's 1000 classes.
"""
import os

from .alexnet import VARIANTS, AlexNet, alexnet, paper_init_  # noqa: F401
from .convert_torch import convert_torch  # noqa: F401

_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "imagenet_classes.txt")


def imagenet_synsets():
    """ILSVRC-2012's 1000 classes as ``(wnid, description)`` pairs, in class-index order.

    The order is the sorted WordNet ids, which is the index order of torchvision's (and
    Caffe's) pretrained ImageNet models.  The file is Caffe's ``synset_words.txt``
    (``data/ilsvrc12`` of BVLC Caffe): ``n01440764 tench, Tinca tinca``.
    """
    with open(_CLASSES_FILE, encoding="utf-8") as f:
        pairs = [tuple(line.rstrip("\n").split(" ", 1)) for line in f if line.strip()]
    if len(pairs) != 1000:
        raise RuntimeError(f"{_CLASSES_FILE}: expected 1000 ImageNet classes, found {len(pairs)}")
    return pairs


def imagenet_classes():
    """ImageNet's 1000 class names in class-index order: the first synonym of each synset
    (``"tench"``, ``"goldfish"``, ``"great white shark"``, ...), as torchvision shows them."""
    return [description.split(",")[0] for _, description in imagenet_synsets()]
