"""``tinyconv.utils``, as ``torch.utils``: for now the data utilities, :mod:`tinyconv.utils.data`."""
from . import data  # noqa: F401
