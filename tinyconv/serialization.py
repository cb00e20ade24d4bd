"""``tinyconv.save`` and ``tinyconv.load``: PyTorch's ``torch.save`` / ``torch.load``, without pickle.

What can be saved: Tensors (and Parameters), NumPy arrays, and dicts (OrderedDicts too),
lists and tuples of them nested with numbers, strings, None and bools -- everything a
``state_dict``, an optimizer's or a scheduler's ``state_dict`` and a training checkpoint
dict hold.  Loading can never run code, whoever made the file.

Which format is written, by the file name:

* ``*.safetensors``: a `safetensors <https://github.com/huggingface/safetensors>`_ file,
  which ``safetensors.torch.load_file`` (and so PyTorch, Hugging Face, ...) reads.  It holds
  a flat dict name -> tensor only (a ``state_dict``), so this is the way to hand weights to
  PyTorch: ``tinyconv.save(model.state_dict(), "model.safetensors")``.
* any other name (``.pt``, ``.pth``, ``.npz``, ...) or a file object: tinyconv's own format
  (:mod:`tinyconv.checkpoint`: a ``.npz`` of the arrays + JSON for the structure, with
  SHA-256 hashes), which holds any of the structures above.  ``torch.load`` cannot read it
  (tinyconv deliberately writes no pickle); convert with safetensors for that.

Saving to a path is atomic: a crash midway keeps the previous file and leaves no
temporary file.  (A file object is written directly.)

What can be loaded, by content (not by name): tinyconv's format, safetensors files, and
the zip ``.pt``/``.pth`` files ``torch.save`` writes (PyTorch >= 1.6), which are read without
PyTorch through a restricted unpickler that admits only tensors and plain containers
(:mod:`tinyconv.torch_file`, the same set as ``torch.load(weights_only=True)``).  Tensors
come back as Tensors, NumPy arrays as NumPy arrays, bfloat16 tensors as float32 (NumPy
has no bfloat16; the conversion is exact).  Every size is checked before memory is
allocated and every failure is a :class:`~tinyconv.checkpoint.CheckpointError`
(a ``ValueError``) naming the file; a forbidden global in a pickle is an
:class:`~tinyconv.torch_file.UnsafeFileError` (also a ``pickle.UnpicklingError``).
"""
import json
import os
from collections import OrderedDict

import numpy as np

from .checkpoint import (CheckpointError, Packer, atomic_write, describe, make_tensor, open_zip,
                         read_archive, to_numpy, unpack, write_archive)
from .torch_file import TorchZipReader, check_map_location, map_location_to_device

FORMAT = "tinyconv-save"
VERSION = 1

#: safetensors dtype names -> NumPy (BF16 is read as float32, see the module doc)
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "C64": "complex64", "C128": "complex128",
}
_ORDER_KEY = "tinyconv.keys"     # safetensors metadata: the state_dict's key order


# --------------------------------------------------------------------------- save


def save(obj, f):
    """Save ``obj`` to ``f`` (a path or a writable binary file object), as ``torch.save``.

    A path ending in ``.safetensors`` gets a safetensors file (``obj`` must then be a
    dict name -> tensor/array); anything else gets tinyconv's format.  See the module doc.
    """
    if not hasattr(f, "write") and os.fsdecode(f).endswith(".safetensors"):
        return _save_safetensors(obj, os.fsdecode(f))
    who = f"tinyconv.save({describe(f)})"
    p = Packer(who)
    doc = {"format": FORMAT, "version": VERSION, "object": p.pack(obj, "obj")}
    write_archive(f if hasattr(f, "write") else os.fsdecode(f), doc, p, who)


def _save_safetensors(obj, path):
    from safetensors.numpy import save as safetensors_bytes

    who = f"tinyconv.save({path})"
    if not isinstance(obj, dict):
        raise CheckpointError(f"{who}: a .safetensors file holds a dict of name -> tensor, not a "
                              f"{type(obj).__name__}; save other objects under another name (.pt)")
    arrays = OrderedDict()
    for k, v in obj.items():
        a = to_numpy(v)
        if not isinstance(k, str) or a is None:
            raise CheckpointError(f"{who}: a .safetensors file holds only name -> tensor entries; "
                                  f"{k!r} is a {type(v).__name__}")
        if a.dtype.kind not in "biufc" or a.dtype.fields is not None:
            raise CheckpointError(f"{who}: {k!r} has dtype {a.dtype}, which safetensors cannot store")
        arrays[k] = np.asarray(a, order="C")
    data = safetensors_bytes(arrays, metadata={"format": "pt", _ORDER_KEY: json.dumps(list(arrays))})
    atomic_write(path, lambda out: out.write(data))


# --------------------------------------------------------------------------- load


def load(f, map_location=None, *, weights_only=None):
    """Load what :func:`save`, ``torch.save`` or safetensors wrote to ``f`` (a path or a
    readable, seekable binary file object), as ``torch.load``.

    ``map_location``: None (each tensor returns to the device it was saved from), a device
    or device name (``"cpu"``) for every tensor, or a dict mapping saved device names to
    new ones (``{"cuda:0": "cpu"}``).  NumPy arrays always load as NumPy arrays.
    ``weights_only`` is accepted for PyTorch code's sake and changes nothing: tinyconv's
    load is always weights-only, it never runs code from a file.
    """
    name = describe(f)
    check_map_location(map_location)
    if isinstance(f, (str, bytes, os.PathLike)) and not os.path.isfile(f):
        raise FileNotFoundError(f"tinyconv.load: no such file: {name}")

    def bad(why):
        return CheckpointError(f"tinyconv.load: {name} cannot be loaded: {why}")

    head = _peek(f, 16)
    if head[:2] == b"PK":
        return _load_zip(f, name, map_location, bad)
    if is_safetensors_head(head):             # before the pickle test: a 128-byte header starts with 0x80
        return _load_safetensors(f, map_location, name, bad)
    if head[:1] == b"\x80":
        raise bad("it is a pickle: PyTorch's legacy (pre-1.6) format or a plain pickle, which "
                  "tinyconv never unpickles because a pickle can run any code. Re-save it with a "
                  "current PyTorch (torch.save(torch.load(old, weights_only=True), new)), or as "
                  ".safetensors")
    if head[:6] == b"\x93NUMPY":
        raise bad("it is a single .npy array; read it with numpy.load(..., allow_pickle=False)")
    raise bad("not a tinyconv, PyTorch (zip) or safetensors file")


def is_safetensors_head(head):
    """Whether a file's first bytes are a safetensors header: its length (8 bytes, little
    endian) and then the JSON's opening brace."""
    return len(head) >= 9 and head[8:9] == b"{"


def _peek(f, n):
    if hasattr(f, "read"):
        here = f.tell()
        head = f.read(n)
        f.seek(here)
        return head
    with open(f, "rb") as fh:
        return fh.read(n)


def _load_zip(f, name, map_location, bad):
    with open_zip(f, bad) as z:
        names = z.namelist()
        if "__meta__.npy" in names:
            return _load_archive(f, name, map_location, bad)
        if any(n.endswith("/constants.pkl") for n in names) or any("/code/" in n for n in names):
            raise bad("it is a TorchScript archive (torch.jit.save); save the model's "
                      "state_dict() with torch.save instead")
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise bad("a zip archive that is neither tinyconv's format nor PyTorch's "
                      "(no <name>/data.pkl inside)")
        prefix = pickles[0][: -len("data.pkl")]
        return TorchZipReader(z, name, prefix, map_location, bad).load()


def _load_archive(f, name, map_location, bad):
    if hasattr(f, "seek"):
        f.seek(0)
    doc, arrays = read_archive(f, bad)
    if doc.get("format") != FORMAT:
        hint = (" (a training checkpoint: use tinyconv.checkpoint.load_checkpoint)"
                if doc.get("format") == "tinyconv-checkpoint" else "")
        raise bad(f"format {doc.get('format')!r}, expected {FORMAT!r}{hint}")
    if doc.get("version") != VERSION:
        raise bad(f"format version {doc.get('version')!r}; this tinyconv reads version {VERSION}")

    def rebuild(array, info):
        dev = map_location_to_device(map_location, info.get("device", "cpu"), name)
        return make_tensor(array, info, dev)

    try:
        return unpack(doc["object"], arrays, rebuild)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"malformed structure ({type(e).__name__}: {e})") from None


def _load_safetensors(f, map_location, name, bad):
    from safetensors import deserialize

    if hasattr(f, "read"):
        data = f.read()
    else:
        with open(f, "rb") as fh:
            data = fh.read()
    try:
        entries = deserialize(data)          # validates the header and every offset against the size
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except Exception as e:
        raise bad(f"not a valid safetensors file ({type(e).__name__}: {e})") from None
    out = OrderedDict()
    dev = map_location_to_device(map_location, "cpu", name)
    for key, info in entries:
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"].upper())
        if dtype is None:
            raise bad(f"tensor {key!r} has dtype {info['dtype']}, which tinyconv cannot hold")
        raw = np.frombuffer(bytearray(info["data"]), np.uint16 if dtype == "bfloat16" else dtype)
        if dtype == "bfloat16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[key] = make_tensor(raw.reshape(info["shape"]), {}, dev)
    order = _saved_order(meta, out)
    return OrderedDict((k, out[k]) for k in order)


def _saved_order(meta, tensors):
    try:
        order = json.loads(meta.get(_ORDER_KEY, "null"))
    except ValueError:
        order = None
    if isinstance(order, list) and sorted(order) == sorted(tensors):
        return order
    return list(tensors)
