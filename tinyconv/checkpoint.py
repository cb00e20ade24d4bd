"""Safe checkpoints: arrays and plain JSON metadata in one ``.npz``, written atomically.

File format (version 1).  A NumPy ``.npz`` (a zip of ``.npy`` files) holding

* ``arr_00000``, ``arr_00001``, ...: every array (model weights, optimizer buffers);
* ``__meta__``: a uint8 array of UTF-8 JSON describing everything else: the format
  name and version, the user's metadata (architecture, variant, classes, epoch, ...),
  the model's parameter names in order, the optimizer and RNG state as nested JSON
  in which ``{"__array__": "arr_00007"}`` stands for an array, and for every array
  its dtype, shape and SHA-256;
* ``__meta_sha256__``: the SHA-256 of the JSON bytes.

It is read with ``np.load(..., allow_pickle=False)`` and ``json.loads``: no pickle, no
code, so loading a stranger's checkpoint can never run anything.  Every array is
checked against its recorded dtype, shape and hash, so a truncated, corrupted or
edited file is refused with a :class:`CheckpointError` that names the file.  (The
hashes catch accidents and casual edits; they are not a signature against a forger,
who could recompute them but still could not make the loader run code.)

Writing is atomic: the file is written to a temporary file in the same folder,
flushed and ``fsync``-ed, then renamed over the target with ``os.replace`` and the
folder is ``fsync``-ed.  A crash, a full disk or Ctrl-C at any moment leaves either
the old checkpoint or the new one, never a mix, and never deletes the old one.
"""
import contextlib
import hashlib
import json
import os
import tempfile
from collections import OrderedDict

import numpy as np

FORMAT = "tinyconv-checkpoint"
VERSION = 1
_META, _META_HASH = "__meta__", "__meta_sha256__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, read or applied; the message names the file."""


# --------------------------------------------------------------------------- packing


def _to_numpy(x):
    """A NumPy array from a NumPy/CuPy array or a Tensor (by duck typing: no autograd import)."""
    if hasattr(x, "array") and not isinstance(x, np.ndarray) and hasattr(x.array, "shape"):
        x = x.array                                   # a Tensor
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):
        return x.get()                               # a CuPy array
    return None


class _Packer:
    """Turns nested dicts/lists of arrays and plain values into JSON + a table of arrays."""

    def __init__(self):
        self.arrays = OrderedDict()

    def add(self, array):
        key = f"arr_{len(self.arrays):05d}"
        a = np.ascontiguousarray(array)
        if a.dtype.hasobject:
            raise CheckpointError(f"save_checkpoint: object arrays cannot be stored safely ({key})")
        self.arrays[key] = a
        return key

    def pack(self, obj, where):
        a = _to_numpy(obj)
        if a is not None:
            return {"__array__": self.add(a)}
        if isinstance(obj, np.generic):
            return obj.item()
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.pack(v, f"{where}.{k}") for k, v in obj.items()}
            # non-string keys (an optimizer's per-parameter state is keyed by int): keep them typed
            return {"__items__": [[self.pack(k, where), self.pack(v, f"{where}[{k!r}]")]
                                  for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            return [self.pack(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        raise CheckpointError(f"save_checkpoint: cannot store {where} of type {type(obj).__name__}; "
                              "only arrays, numbers, strings, None, lists and dicts are allowed")


def _unpack(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        if set(obj) == {"__items__"}:
            return {_freeze(_unpack(k, arrays)): _unpack(v, arrays) for k, v in obj["__items__"]}
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def _freeze(k):
    return tuple(k) if isinstance(k, list) else k


def _sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()    # hashes the raw bytes, no copy


# --------------------------------------------------------------------------- saving


def _write_npz(f, arrays):
    """Write the npz body (separate so a test can simulate a full disk midway)."""
    np.savez(f, **arrays)


def _fsync_dir(folder):
    if os.name == "nt":                          # Windows cannot open a folder for fsync
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(path, model_state, optimizer_state=None, meta=None, rng_state=None):
    """Atomically write a checkpoint to ``path`` (see the module doc).

    ``model_state``: a mapping name -> array or Tensor (``model.state_dict()``).
    ``optimizer_state``, ``rng_state``: nested dicts/lists of arrays and plain values.
    ``meta``: plain JSON-able metadata (architecture, variant, num_classes, epoch, step,
    class names, loader state, history, ...); arrays are allowed too.
    Returns the path.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    p = _Packer()
    names = list(model_state.keys())
    model_keys = []
    for name in names:
        a = _to_numpy(model_state[name])
        if a is None:
            raise CheckpointError(f"save_checkpoint: model_state[{name!r}] is a "
                                  f"{type(model_state[name]).__name__}, not an array or Tensor")
        model_keys.append(p.add(a))
    doc = {
        "format": FORMAT, "version": VERSION,
        "model": {"names": names, "arrays": model_keys},
        "optimizer": p.pack(optimizer_state, "optimizer_state"),
        "rng": p.pack(rng_state, "rng_state"),
        "meta": p.pack(meta or {}, "meta"),
    }
    doc["arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _sha256(a)}
                     for k, a in p.arrays.items()}
    try:
        meta_bytes = json.dumps(doc, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"save_checkpoint: metadata is not JSON-able: {e}") from None
    arrays = dict(p.arrays)
    arrays[_META] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays[_META_HASH] = np.frombuffer(hashlib.sha256(meta_bytes).hexdigest().encode(), dtype=np.uint8)

    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                     # atomic on POSIX and Windows
    except BaseException:                         # full disk, crash, Ctrl-C: the old file stays
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)                            # make the rename itself durable
    return path


# --------------------------------------------------------------------------- loading


def load_checkpoint(path):
    """Read and verify a checkpoint.  Returns a dict with ``model_state`` (an ordered
    dict name -> NumPy array), ``optimizer_state``, ``rng_state``, ``meta`` and
    ``path``.  Raises :class:`CheckpointError` naming the file for anything wrong."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"load_checkpoint: no such checkpoint file: {path}")

    def bad(why):
        return CheckpointError(f"load_checkpoint: {path} is not a valid tinyconv checkpoint: {why}")

    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise bad("it is a single .npy array, not a checkpoint archive")
            files = set(npz.files)
            if _META not in files or _META_HASH not in files:
                raise bad("no tinyconv metadata inside (a foreign .npz file?)")
            meta_bytes = npz[_META].tobytes()
            if hashlib.sha256(meta_bytes).hexdigest().encode() != npz[_META_HASH].tobytes():
                raise bad("its metadata does not match its checksum (edited or corrupted)")
            doc = json.loads(meta_bytes.decode("utf-8"))
            if doc.get("format") != FORMAT:
                raise bad(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            if doc.get("version") != VERSION:
                raise bad(f"format version {doc.get('version')!r}; this tinyconv reads version {VERSION}")
            declared = doc["arrays"]
            missing = sorted(set(declared) - files)
            extra = sorted(files - set(declared) - {_META, _META_HASH})
            if missing or extra:
                raise bad(f"arrays missing {missing[:5]} / unexpected {extra[:5]} (truncated or edited)")
            arrays = {}
            for key, info in declared.items():
                a = npz[key]
                if a.dtype.str != info["dtype"] or list(a.shape) != info["shape"]:
                    raise bad(f"array {key} is {a.dtype.str}{list(a.shape)}, recorded as "
                              f"{info['dtype']}{info['shape']} (edited or corrupted)")
                if _sha256(a) != info["sha256"]:
                    raise bad(f"array {key} does not match its SHA-256 (edited or corrupted)")
                arrays[key] = a
    except CheckpointError:
        raise
    except Exception as e:     # a damaged zip can raise almost anything (BadZipFile, zlib.error, ...)
        raise bad(f"{type(e).__name__}: {e} (truncated, corrupted or not a .npz file)") from None

    names, keys = doc["model"]["names"], doc["model"]["arrays"]
    return {
        "model_state": OrderedDict((n, arrays[k]) for n, k in zip(names, keys)),
        "optimizer_state": _unpack(doc["optimizer"], arrays),
        "rng_state": _unpack(doc["rng"], arrays),
        "meta": _unpack(doc["meta"], arrays),
        "path": path,
    }


def check_model_state(model_state_expected, model_state_loaded, path="checkpoint", meta=None):
    """Raise a :class:`CheckpointError` listing every key or shape that differs between a
    model's ``state_dict()`` and a checkpoint's ``model_state``."""
    want = {k: tuple(np.shape(_to_numpy(v))) for k, v in model_state_expected.items()}
    have = {k: tuple(np.shape(v)) for k, v in model_state_loaded.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shapes = [f"{k}: checkpoint {have[k]} vs model {want[k]}"
              for k in want if k in have and want[k] != have[k]]
    if not (missing or unexpected or shapes):
        return
    lines = [f"{path} does not fit this model:"]
    if meta and meta.get("arch"):
        lines.append(f"  the checkpoint was saved from {meta.get('arch')} variant={meta.get('variant')!r} "
                     f"num_classes={meta.get('num_classes')}")
    if shapes:
        lines.append("  shape mismatch: " + "; ".join(shapes[:8]) + (" ..." if len(shapes) > 8 else ""))
    if missing:
        lines.append(f"  missing in checkpoint: {missing[:8]}" + (" ..." if len(missing) > 8 else ""))
    if unexpected:
        lines.append(f"  not in the model: {unexpected[:8]}" + (" ..." if len(unexpected) > 8 else ""))
    raise CheckpointError("\n".join(lines))
