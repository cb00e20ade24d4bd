"""Where the data utilities' randomness comes from.

PyTorch passes a ``torch.Generator``; tinyconv's random draws are NumPy ones, so a
``generator=`` here is a ``numpy.random.Generator`` (``np.random.default_rng(seed)``).
None means tinyconv's global generator (:func:`tinyconv.random.generator`), which
``tinyconv.manual_seed`` seeds.
"""
import numpy as np

from ... import random as _random


def numpy_generator(generator, who):
    """``generator`` itself, or the global generator for None; anything else is an error."""
    if generator is None:
        return _random.generator()
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"{who}: generator must be a numpy.random.Generator (np.random.default_rng(seed)) "
                    f"or None, got {type(generator).__name__}")


def draw_seed(generator, who):
    """A fresh 63-bit seed drawn from ``generator`` (or the global one)."""
    return int(numpy_generator(generator, who).integers(2**63 - 1))
