"""Where the data utilities' randomness comes from.

PyTorch passes a ``torch.Generator``; tinyconv's random draws are NumPy ones, so a
``generator=`` here is a ``numpy.random.Generator`` (``np.random.default_rng(seed)``).
None means tinyconv's global generator (:func:`tinyconv.random.generator`), which
``tinyconv.manual_seed`` seeds.
"""

from ...random import numpy_generator


def draw_seed(generator, who):
    """A fresh 63-bit seed drawn from ``generator`` (or the global one)."""
    return int(numpy_generator(generator, who).integers(2**63 - 1))
