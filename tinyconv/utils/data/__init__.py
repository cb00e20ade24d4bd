"""``tinyconv.utils.data``: PyTorch's ``torch.utils.data`` names, yielding tinyconv Tensors.

    from tinyconv.utils.data import DataLoader, TensorDataset, random_split
    ds = TensorDataset(tinyconv.randn(100, 3), tinyconv.arange(100))
    train, val = random_split(ds, [0.8, 0.2])
    for X, y in DataLoader(train, batch_size=16, shuffle=True, num_workers=2):
        X = X.to(device)                    # a Tensor: X.to(), X.shape, model(X)

Modules: :mod:`.dataset` (Dataset, IterableDataset, TensorDataset, Subset,
ConcatDataset, ChainDataset, random_split), :mod:`.sampler` (the samplers),
:mod:`.collate` (default_collate, default_convert), :mod:`.dataloader` (DataLoader
and its worker processes; :func:`get_worker_info`).

The image side (torchvision's names) is :mod:`tinyconv.data`:
``tinyconv.data.datasets.ImageFolder`` and ``tinyconv.data.transforms`` (ToTensor,
Normalize, Resize, Compose, RandomCrop, CenterCrop, RandomHorizontalFlip, ...) stand
for ``torchvision.datasets`` and ``torchvision.transforms``.

Only the collation turns samples into Tensors (it is the one module here that
imports the autograd core); datasets, samplers and the image code work on NumPy
arrays and PIL images.  Randomness: every ``generator=`` takes a
``numpy.random.Generator``; None means tinyconv's global generator, seeded by
``tinyconv.manual_seed``.
"""
from ._worker import WorkerInfo, get_worker_info  # noqa: F401
from .collate import collate, default_collate, default_collate_fn_map, default_convert  # noqa: F401
from .dataloader import DataLoader  # noqa: F401
from .distributed import DistributedSampler  # noqa: F401
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset,  # noqa: F401
                      TensorDataset, random_split)
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,  # noqa: F401
                      SubsetRandomSampler, WeightedRandomSampler)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
           "IterableDataset",
           "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "collate", "default_collate",
           "default_collate_fn_map", "default_convert", "get_worker_info", "random_split"]
