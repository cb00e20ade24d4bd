"""Small, local data for the compatibility scripts: the bundled real MNIST digits, no network.

Written in PyTorch's terms and imported by the scripts under either framework: run by
``python -m tinyconv.as_torch`` its ``import torch`` is tinyconv, run by plain ``python``
it is PyTorch, so a script gets the tensors and loaders of the framework it runs on.  The
pixels come from tinyconv's bundled set (``tinyconv.data.bundled_dataset("mnist5k")``,
which needs only NumPy), the same numbers for both.
"""
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from tinyconv.data import bundled_dataset

CLASSES = tuple(str(d) for d in range(10))


def digits_arrays(split="train", n=None, scale=1):
    """(images (N, 1, 28*scale, 28*scale) uint8, labels (N,) int64): ``n`` digits of ``split``
    in a fixed shuffled order (so a prefix holds every class), enlarged ``scale`` times
    by pixel repetition."""
    ds = bundled_dataset("mnist5k", split)
    order = np.random.default_rng(0).permutation(len(ds))[:n]
    images, labels = ds.images[order], ds.labels[order]
    if scale != 1:
        images = images.repeat(scale, axis=2).repeat(scale, axis=3)
    return np.ascontiguousarray(images), np.ascontiguousarray(labels)


def load_data_digits(batch_size, n_train=512, n_test=256, scale=1):
    """``(train_iter, test_iter)`` of float images in [0, 1], as d2l's ``load_data_fashion_mnist``."""
    loaders = []
    for split, n, shuffle in (("train", n_train, True), ("test", n_test, False)):
        x, y = digits_arrays(split, n, scale)
        ds = TensorDataset(torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(y))
        loaders.append(DataLoader(ds, batch_size, shuffle=shuffle))
    return tuple(loaders)


class Digits:
    """Stands for ``torchvision.datasets.MNIST(root, train, transform)``: ``ds[i]`` is
    ``(transform(image), label)`` with the image an HxW uint8 array (what ToTensor takes)."""

    def __init__(self, train=True, transform=None, n=None, pad=0):
        self.images, self.labels = digits_arrays("train" if train else "test", n)
        if pad:
            self.images = np.pad(self.images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        self.transform = transform
        self.classes = list(CLASSES)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i, 0]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i])
