"""The few ``cupyx`` functions tinyconv uses, for the fake CuPy next door (see cupy/__init__.py)."""
import numpy as _np

import cupy as _cupy


class _Pinned(_np.ndarray):
    """A host array standing for page-locked memory (the fake counts copies from it apart)."""
    _fake_pinned = True


def empty_pinned(shape, dtype=float, order="C"):
    return _np.empty(shape, dtype=dtype, order=order).view(_Pinned)


def scatter_add(a, slices, value):
    _np.add.at(a.view(_np.ndarray), _cupy._unwrap(slices), _cupy._unwrap(value))
