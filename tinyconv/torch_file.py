"""Read the ``.pt`` / ``.pth`` files ``torch.save`` writes, without PyTorch and without running code.

Since PyTorch 1.6, ``torch.save`` writes a zip archive::

    <name>/data.pkl            the object, pickled (protocol 2)
    <name>/data/0, data/1 ...  one raw little-endian buffer per storage
    <name>/byteorder           "little" or "big"
    <name>/version, .format_version, .storage_alignment, .data/serialization_id

In ``data.pkl`` every tensor is a call ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, requires_grad, hooks)`` (``_rebuild_tensor_v3`` adds a dtype, for uint16/32/64)
and every storage a *persistent id* ``("storage", torch.FloatStorage, "0", "cpu", numel)``
(``torch.storage.UntypedStorage`` with numel in bytes for ``_v3``).  A pickle can name and
call any Python function, which is why unpickling a stranger's file can run anything.
:class:`_WeightsUnpickler` admits only the names ``torch.load(weights_only=True)`` needs for
weights: those rebuild functions, the storage and dtype names, ``collections.OrderedDict``;
anything else (``os.system``, ``builtins.eval``, a model class, a NumPy array) is refused
with an :class:`UnsafeFileError` naming the file and the global, before it is ever called.
The rebuild functions are tinyconv's own: they make NumPy views of the storage buffers.

Bounds: every size comes from the file and is checked before use (a storage entry must
hold exactly ``numel * itemsize`` bytes; a tensor's offset, sizes and strides must stay
inside its storage), tensors sharing a storage share its memory (views, as in PyTorch),
so nothing is ever copied per tensor, and the result may nest at most ``MAX_DEPTH`` deep.

dtypes: float16/32/64, complex64/128, int8/16/32/64, uint8/16/32/64 and bool as themselves.
NumPy has no bfloat16: **bfloat16 tensors are converted to float32**, which is exact (a
bfloat16 is the top half of a float32).  float8 and quantized tensors are refused.
"""
import io
import math
import pickle
from collections import OrderedDict

import numpy as np

from . import backend
from .autograd import Tensor
from .checkpoint import MAX_DEPTH, CheckpointError, read_entry

_MAX_PICKLE = 256 << 20       # data.pkl of a state_dict is kilobytes; refuse a forged giant


class UnsafeFileError(CheckpointError, pickle.UnpicklingError):
    """A pickle that asks for a global a weights file never needs (it is refused, never called)."""


class _Sealed:
    """Our unpickled helper objects: a pickle's BUILD opcode may not set their attributes."""

    def __setstate__(self, state):
        raise pickle.UnpicklingError("the pickle tries to set attributes of a storage or dtype (forged)")


class _Storage(_Sealed):
    """A storage's raw bytes as NumPy, and its element views by dtype (made once, then shared)."""

    def __init__(self, raw, dtype, location, big_endian):
        self.raw, self.dtype, self.location, self.big_endian = raw, dtype, location, big_endian
        self._views = {}

    def elements(self, dtype, bad):
        """The whole storage as a 1-d array of ``dtype`` (bfloat16 -> float32, native byte order)."""
        if dtype not in self._views:
            stored = np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)
            if self.raw.size % stored.itemsize:
                raise bad(f"a storage of {self.raw.size} bytes cannot hold {dtype} elements")
            a = self.raw.view(stored.newbyteorder(">" if self.big_endian else "<"))
            a = a.astype(stored, copy=False)                   # to native byte order (no-op mostly)
            if dtype == "bfloat16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            self._views[dtype] = a
        return self._views[dtype]


class _StorageType(_Sealed):
    """What ``torch.FloatStorage`` & co. unpickle to: a marker carrying its dtype."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _DType(_Sealed):
    """What ``torch.float32`` & co. unpickle to (``_rebuild_tensor_v3``'s dtype argument)."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "complex64": "complex64",
    "complex128": "complex128", "int64": "int64", "long": "int64", "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8", "uint16": "uint16",
    "uint32": "uint32", "uint64": "uint64", "bool": "bool",
}


class _WeightsUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a weights file (see the module doc)."""

    def __init__(self, data, reader):
        super().__init__(io.BytesIO(data))
        self.reader = reader

    def find_class(self, module, name):
        r = self.reader
        allowed = {
            ("torch._utils", "_rebuild_tensor_v2"): r.rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): r.rebuild_tensor_v3,
            ("torch._utils", "_rebuild_parameter"): r.rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): r.rebuild_parameter_with_state,
            ("collections", "OrderedDict"): OrderedDict,
        }
        if (module, name) in allowed:
            return allowed[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if module == "torch.storage" and name == "UntypedStorage":
            return _StorageType(name, None)
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(name, _TORCH_DTYPES[name])
        raise UnsafeFileError(
            f"tinyconv.load: {r.name} asks to run {module}.{name}, which a weights file never needs; "
            "refused without running it (only tensors, storages, OrderedDict and plain containers "
            "are allowed, as with torch.load(weights_only=True))")

    def persistent_load(self, pid):
        return self.reader.storage(pid)


class TorchZipReader:
    """Reads one ``torch.save`` zip archive (an open, size-checked ``ZipFile``)."""

    def __init__(self, zf, name, prefix, map_location, bad):
        self.zf, self.name, self.prefix, self.bad = zf, name, prefix, bad
        self.map_location = map_location
        self.storages = {}
        self.placed = {}            # id -> (tensor, saved location, its attributes when made)
        self.big_endian = False

    def load(self):
        try:
            obj = self._unpickle()
        except CheckpointError:
            raise
        except Exception as e:   # a damaged zip or pickle raises anything (BadZipFile, EOFError, ...)
            raise self.bad(f"{type(e).__name__}: {e} (truncated or corrupted)") from None
        _check_result(obj, self.bad)
        for t, location, state in self.placed.values():
            t.__dict__.clear()                  # drop whatever a BUILD opcode may have set on it
            t.__dict__.update(state)
            # outside the unpickler, so a device error comes out as itself
            t.array = backend.to_device(t.array, self._target(location))
        return obj

    def _unpickle(self):
        self.infos = infos = {i.filename: i for i in self.zf.infolist()}
        order = infos.get(self.prefix + "byteorder")
        if order is not None:
            text = bytes(read_entry(self.zf, order, self.bad)) if order.file_size <= 16 else b"?"
            if text not in (b"little", b"big"):
                raise self.bad(f"byteorder {text[:16]!r}, expected 'little' or 'big'")
            self.big_endian = text == b"big"
        pkl = infos[self.prefix + "data.pkl"]
        if pkl.file_size > _MAX_PICKLE:
            raise self.bad(f"data.pkl declares {pkl.file_size} bytes, more than a weights file needs")
        return _WeightsUnpickler(bytes(read_entry(self.zf, pkl, self.bad)), self).load()

    # -- what the pickle may call -------------------------------------------------

    def storage(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[3], str) and _is_int(pid[4]) and pid[4] >= 0):
            raise self.bad(f"unexpected persistent id {str(pid)[:80]} (only storages are allowed)")
        _, kind, key, location, numel = pid
        itemsize = 1 if kind.dtype is None else _itemsize(kind.dtype)
        if key not in self.storages:
            info = self.infos.get(f"{self.prefix}data/{key}")
            if info is None:
                raise self.bad(f"storage {key!r} is missing from the archive (truncated?)")
            raw = np.frombuffer(read_entry(self.zf, info, self.bad, numel * itemsize), np.uint8)
            self.storages[key] = _Storage(raw, kind.dtype, location, self.big_endian)
        s = self.storages[key]
        if s.raw.size != numel * itemsize:
            raise self.bad(f"storage {key!r} is used with two different sizes")
        return s

    def rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False,
                          backward_hooks=None, metadata=None):
        return self._tensor(storage, storage.dtype if isinstance(storage, _Storage) else None,
                            storage_offset, size, stride, requires_grad, backward_hooks)

    def rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad,
                          backward_hooks, dtype, metadata=None):
        if not isinstance(dtype, _DType):
            raise self.bad(f"_rebuild_tensor_v3 with dtype {type(dtype).__name__}")
        return self._tensor(storage, dtype.dtype, storage_offset, size, stride, requires_grad,
                            backward_hooks)

    def rebuild_parameter(self, data, requires_grad, backward_hooks):
        from .nn.module import Parameter
        if not isinstance(data, Tensor):
            raise self.bad(f"a Parameter made of a {type(data).__name__}")
        p = Parameter(data.array, requires_grad=bool(requires_grad) and data.dtype.kind == "f")
        self._place(p, self.placed.pop(id(data))[1])
        return p

    def rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state):
        if state:
            raise self.bad("a Parameter with extra Python attributes (a tensor subclass?)")
        return self.rebuild_parameter(data, requires_grad, backward_hooks)

    def _tensor(self, storage, dtype, offset, size, stride, requires_grad, hooks):
        if not isinstance(storage, _Storage):
            raise self.bad(f"a tensor made of a {type(storage).__name__}, not of a storage of the archive")
        if dtype is None:
            raise self.bad("a tensor of an untyped storage without a dtype")
        if hooks:
            raise self.bad("a tensor with backward hooks (cannot be restored without code)")
        if not (_is_int(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(map(_is_int, size + stride))
                and offset >= 0 and min(size + stride, default=0) >= 0):
            raise self.bad(f"a tensor with malformed geometry: offset {offset!r}, size {size!r}, "
                           f"stride {stride!r}")
        elements = storage.elements(dtype, self.bad)
        if math.prod(size) == 0:
            array = np.empty(size, elements.dtype)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= elements.size:
                raise self.bad(f"a tensor of size {size}, stride {stride}, offset {offset} reaches "
                               f"element {last} of a storage of {elements.size} (forged)")
            array = np.lib.stride_tricks.as_strided(
                elements[offset:], shape=size, strides=[s * elements.itemsize for s in stride])
        t = Tensor(array)
        if requires_grad and t.dtype.kind == "f":
            t.requires_grad_(True)
        self._place(t, storage.location)
        return t

    def _place(self, t, location):
        self.placed[id(t)] = (t, location, dict(t.__dict__))

    def _target(self, location):
        return map_location_to_device(self.map_location, location, self.name)


def check_map_location(map_location):
    """A TypeError for what ``map_location`` may be in PyTorch but not here (a function)."""
    if not (map_location is None or isinstance(map_location, (str, dict, backend.device))):
        raise TypeError(f"tinyconv.load: map_location must be None, a device, a device name or a dict "
                        f"of them, got {type(map_location).__name__} (a map_location function is not "
                        "supported)")


def map_location_to_device(map_location, location, name):
    """Where a tensor saved on ``location`` ("cpu", "cuda:0") goes, as ``torch.load`` decides:
    ``None`` keeps its device, a device (or its name) moves every tensor there, a dict maps
    saved location names to new ones."""
    if isinstance(map_location, dict):
        location = map_location.get(location, location)
    elif map_location is not None:
        location = map_location
    try:
        dev = backend.device(location)
    except ValueError:
        raise CheckpointError(f"tinyconv.load: {name} holds tensors on device {location!r}, which "
                              "tinyconv does not have; pass map_location='cpu'") from None
    if dev.type == "cuda":
        from . import cuda
        if not cuda.is_available():
            raise RuntimeError(f"tinyconv.load: {name}: attempting to deserialize a tensor on a CUDA "
                               f"device ({dev}) but CUDA is not available ({cuda.why_unavailable()}). "
                               "On a CPU-only machine, use tinyconv.load(f, map_location='cpu').")
    return dev


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_result(obj, bad):
    """Refuse results nested deeper than MAX_DEPTH (walked without recursion, each container
    once: a pickle's memo can share one list many times over)."""
    stack, seen = [(obj, 0)], set()
    while stack:
        o, depth = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if depth > MAX_DEPTH:
            raise bad(f"its data is nested more than {MAX_DEPTH} levels deep")
        if isinstance(o, dict):
            stack.extend((v, depth + 1) for v in o.values())
            stack.extend((k, depth + 1) for k in o if isinstance(k, tuple))
        elif isinstance(o, (list, tuple)):
            stack.extend((v, depth + 1) for v in o)
