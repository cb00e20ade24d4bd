"""Collation: a list of samples -> one batch, as ``torch.utils.data.default_collate``.

:func:`collate` is the generic walk and knows no tensor: it looks the first sample's
type up in ``collate_fn_map`` (exact type, then ``isinstance`` in the map's order)
and otherwise recurses into the containers PyTorch does::

    [{"x": a0, "y": 0}, {"x": a1, "y": 1}]  ->  {"x": collate([a0, a1]), "y": collate([0, 1])}
    [(a0, 0), (a1, 1)]                      ->  [collate([a0, a1]), collate([0, 1])]   # a list
    [P(a0, 0), P(a1, 1)]  (a namedtuple)    ->  P(collate([a0, a1]), collate([0, 1]))

:func:`default_collate` runs it with :data:`default_collate_fn_map`, where the
leaves become tensors with PyTorch's dtypes:

=========================  ==================================================
sample leaf                batch
=========================  ==================================================
Tensor                     the tensors stacked on a new dim 0
NumPy array                a tensor of the stacked arrays (dtype kept)
NumPy scalar               a 1-d tensor of its dtype
Python ``float``           a float64 tensor (PyTorch's choice, not float32)
Python ``int`` / ``bool``  an int64 / bool tensor
``str`` / ``bytes``        left as the sequence of them
=========================  ==================================================

The stacked tensors are new leaves: autograd does not track the stacking.
:mod:`tinyconv.data` reuses :func:`collate` with a map that stacks into NumPy
arrays, so its loader batches without touching autograd.
"""
import collections.abc
import copy

import numpy as np

from ... import backend
from ...autograd import Tensor

_ERR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
_STRING_KINDS = "SaUO"          # NumPy dtype kinds that are not numbers


def collate(batch, *, collate_fn_map=None):
    """Collate ``batch`` (a list of samples) by structure, leaves by ``collate_fn_map``."""
    elem = batch[0]
    if collate_fn_map:
        fn = collate_fn_map.get(type(elem))
        if fn is None:
            fn = next((f for t, f in collate_fn_map.items() if isinstance(elem, t)), None)
        if fn is not None:
            return fn(batch, collate_fn_map=collate_fn_map)

    def rec(samples):
        return collate(samples, collate_fn_map=collate_fn_map)

    if isinstance(elem, collections.abc.Mapping):
        fields = {key: rec([d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            out = copy.copy(elem)                 # keeps the mapping's type (OrderedDict, ...)
            out.update(fields)
            return out
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):          # a namedtuple
        return type(elem)(*(rec(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence) and not isinstance(elem, (str, bytes)):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [rec(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields                        # PyTorch returns a list for tuples
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_ERR.format(type(elem)))


def check_same_shape(arrays):
    """PyTorch's ``stack`` error for a batch whose items differ in shape."""
    for i, a in enumerate(arrays):
        if a.shape != arrays[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(arrays[0].shape)} at entry 0 and {list(a.shape)} at entry {i}")


def _stack(arrays):
    check_same_shape(arrays)
    return Tensor(backend.array_module(arrays[0]).stack(arrays))


def collate_tensor_fn(batch, *, collate_fn_map=None):
    return _stack([t.array for t in batch])


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    if batch[0].dtype.kind in _STRING_KINDS:
        raise TypeError(_ERR.format(batch[0].dtype))
    return _stack(list(batch))


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return Tensor(np.asarray(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    return Tensor(np.asarray(batch, dtype=np.float64))


def collate_int_fn(batch, *, collate_fn_map=None):
    a = np.asarray(batch)
    return Tensor(a if a.dtype == np.bool_ else a.astype(np.int64))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    (str, bytes): collate_str_fn,
}


def default_collate(batch):
    """PyTorch's default collation (see the table in the module doc)."""
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """One sample's NumPy arrays and scalars -> tensors (sharing memory), containers
    kept (a tuple becomes a list): what a DataLoader with ``batch_size=None`` does."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in _STRING_KINDS else Tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        fields = {key: default_convert(v) for key, v in data.items()}
        try:
            return type(data)(fields)
        except TypeError:
            return fields
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
