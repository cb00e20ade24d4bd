"""Safe files: arrays and plain JSON metadata in one ``.npz``, written atomically, read boundedly.

This module is the foundation of :func:`tinyconv.save` / :func:`tinyconv.load` and of the
training checkpoints (:func:`save_checkpoint` / :func:`load_checkpoint`).

File format (version 1).  A NumPy ``.npz`` (an uncompressed zip of ``.npy`` files) holding

* ``arr_00000``, ``arr_00001``, ...: every array (model weights, optimizer buffers);
* ``__meta__``: a uint8 array of UTF-8 JSON describing everything else: the format
  name and version, the saved structure as nested JSON in which
  ``{"__array__": "arr_00007"}`` stands for a NumPy array and ``{"__tensor__": ...}``
  for a Tensor (see :class:`Packer`), and for every array its dtype, shape and SHA-256;
* ``__meta_sha256__``: the SHA-256 of the JSON bytes.

Reading never unpickles and never trusts a size it has not checked: the zip's entries
must declare sizes the file can hold (a stored entry its exact size, a compressed one
no more than deflate can produce: no zip bombs), each ``.npy`` header must agree with
the JSON's dtype and shape *before* memory is allocated, nothing is read past what an
entry declares, nesting deeper than :data:`MAX_DEPTH` is refused, and every array is
checked against its hash.  A truncated, corrupted, edited or forged file is refused with
a :class:`CheckpointError` that names the file.  (The hashes catch accidents and casual
edits; they are not a signature against a forger, who could recompute them but still
could not make the loader run code or allocate more than the file declares.)

Writing is atomic (:func:`atomic_write`): the file is written to a temporary file in the
same folder, flushed and ``fsync``-ed, then renamed over the target with ``os.replace``
and the folder is ``fsync``-ed.  A crash, a full disk or Ctrl-C at any moment leaves
either the old file or the new one, never a mix, and never deletes the old one.  A full
disk (or any other failed write) is one :class:`CheckpointWriteError` saying so.  The
temporary file a killed process leaves behind (``.NAME.XXXXXXXX.tinyconv.tmp``) is removed by the
next save into that folder: each writer holds a lock on its temporary file, so only the
files of writers that are gone are taken.  Files get the mode ``open(path, "wb")`` would
give them (0666 less the umask, or the mode of the file they replace), as PyTorch's do.
"""
import contextlib
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from .autograd import Tensor
from .backend import to_device

FORMAT = "tinyconv-checkpoint"
VERSION = 1
_META, _META_HASH = "__meta__", "__meta_sha256__"
#: containers nested deeper than this are refused, on saving and on loading (no RecursionError)
MAX_DEPTH = 100
#: deflate cannot inflate more than ~1032:1; an entry declaring more is a forged zip bomb
_MAX_INFLATION = 1100
_MAX_NPY_HEADER = 10_000
#: tinyconv writes its arrays uncompressed; a re-zipped archive of real weights shrinks a few
#: times at most, so a whole archive inflating to more than this many times its size is a bomb
_MAX_TOTAL_INFLATION = 16


class CheckpointError(ValueError):
    """A file that cannot be written, read or applied; the message names the file."""


class CheckpointWriteError(CheckpointError, OSError):
    """Writing failed (a full disk, a file size limit, no permission); the previous file is
    untouched.  Both a :class:`CheckpointError` and an ``OSError`` (``errno`` is the cause's)."""


# --------------------------------------------------------------------------- packing


def to_numpy(x):
    """A NumPy array from a NumPy/CuPy array or a Tensor; None for anything else."""
    if isinstance(x, Tensor):
        x = x.array
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):
        return x.get()                               # a CuPy array
    return None


class Packer:
    """Turns nested containers of arrays, Tensors and plain values into JSON + a table of arrays.

    JSON encoding: str/int/float/bool/None as themselves; a list as a list; a dict whose
    keys are all strings not starting with ``__`` as an object; ``{"__tuple__": [...]}``,
    ``{"__items__": [[k, v], ...]}`` (a dict with other keys, such as an optimizer's int
    keys) and ``{"__odict__": [[k, v], ...]}`` (an OrderedDict); ``{"__array__": key}`` a
    NumPy array; ``{"__tensor__": key, "device": ..., "requires_grad": ..., "parameter": ...}``
    a Tensor.  The same array or Tensor object saved twice is stored once and comes
    back as one object.  NumPy scalars are stored as Python numbers.
    """

    def __init__(self, who):
        self.who = who
        self.arrays = OrderedDict()
        self._memo = {}                   # id(obj) -> key, for objects kept alive by the caller

    def add(self, array, obj=None):
        if obj is not None and id(obj) in self._memo:
            return self._memo[id(obj)]
        key = f"arr_{len(self.arrays):05d}"
        a = np.asarray(array, order="C")            # (ascontiguousarray would make 0-d 1-d)
        if a.dtype.hasobject or a.dtype.fields is not None:
            raise CheckpointError(f"{self.who}: {a.dtype} arrays cannot be stored safely ({key})")
        self.arrays[key] = a
        if obj is not None:
            self._memo[id(obj)] = key
        return key

    def pack(self, obj, where, depth=0):
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{self.who}: {where} is nested more than {MAX_DEPTH} levels deep "
                                  "(or contains itself)")
        if isinstance(obj, Tensor):
            from .nn.module import Parameter
            return {"__tensor__": self.add(to_numpy(obj), obj), "device": str(obj.device),
                    "requires_grad": obj.requires_grad, "parameter": isinstance(obj, Parameter)}
        a = to_numpy(obj)
        if a is not None:
            return {"__array__": self.add(a, obj)}
        if isinstance(obj, np.generic):
            return obj.item()
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        d = depth + 1
        if isinstance(obj, dict):
            items = [[self.pack(k, where, d), self.pack(v, _child(where, k), d)] for k, v in obj.items()]
            if isinstance(obj, OrderedDict):
                return {"__odict__": items}
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: v for k, (_, v) in zip(obj, items)}
            return {"__items__": items}      # non-string keys (an optimizer's per-parameter state)
        if isinstance(obj, tuple):
            return {"__tuple__": [self.pack(v, f"{where}[{i}]", d) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.pack(v, f"{where}[{i}]", d) for i, v in enumerate(obj)]
        raise CheckpointError(f"{self.who}: cannot store {where} of type {type(obj).__name__}; "
                              "only arrays, Tensors, numbers, strings, None, lists, tuples and dicts "
                              "are allowed")


def _child(where, key):
    return f"{where}.{key}" if isinstance(key, str) else f"{where}[{key!r}]"


def _cpu_tensor(array, info):
    """How :func:`unpack` rebuilds a Tensor by default: on the CPU."""
    return make_tensor(array, info, "cpu")


def make_tensor(array, info, dev):
    array = to_device(array, dev)
    if info.get("parameter"):
        from .nn.module import Parameter
        return Parameter(array, requires_grad=bool(info.get("requires_grad")))
    t = Tensor(array)
    if info.get("requires_grad"):
        t.requires_grad_(True)
    return t


def unpack(obj, arrays, build_tensor=_cpu_tensor, where="obj"):
    """Inverse of :meth:`Packer.pack`.  ``build_tensor(array, info)`` builds each Tensor
    (``info`` is its JSON record: device, requires_grad, parameter).  Raises
    :class:`KeyError` / :class:`TypeError` / :class:`ValueError` for malformed JSON; nesting
    deeper than :data:`MAX_DEPTH` is a ValueError naming the field (``where`` names ``obj``)."""
    memo = {}

    def tensor(info):
        key = info["__tensor__"]
        if key not in memo:
            memo[key] = build_tensor(arrays[key], info)
        return memo[key]

    def walk(o, path):                  # path: the keys and indices from obj down to o
        if len(path) > MAX_DEPTH:
            raise ValueError(f"{_field(where, path)} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(o, list):
            return [walk(v, path + (i,)) for i, v in enumerate(o)]
        if not isinstance(o, dict):
            return o
        if set(o) == {"__array__"}:
            return arrays[o["__array__"]]
        if "__tensor__" in o:
            return tensor(o)
        if set(o) == {"__tuple__"}:
            return tuple(walk(v, path + (i,)) for i, v in enumerate(o["__tuple__"]))
        if set(o) == {"__items__"} or set(o) == {"__odict__"}:
            pairs = o.get("__items__", o.get("__odict__"))
            keys = [_freeze(walk(k, path + ("<key>",))) for k, _ in pairs]
            items = [(k, walk(v, path + (k,))) for k, (_, v) in zip(keys, pairs)]
            return dict(items) if "__items__" in o else OrderedDict(items)
        return {k: walk(v, path + (k,)) for k, v in o.items()}

    return walk(obj, ())


def _field(where, path, shown=4):
    """``meta.x[0][0]...`` : the first ``shown`` steps of ``path`` below ``where``."""
    name = where
    for k in path[:shown]:
        name = _child(name, k)
    return name + ("..." if len(path) > shown else "")


def _freeze(k):
    return tuple(k) if isinstance(k, list) else k    # a list key from an old file: hashable again


def _sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()    # hashes the raw bytes, no copy


# --------------------------------------------------------------------------- writing


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


#: atomic_write's temporary files: "." + the target's name + "." + mkstemp's 8 characters + _SUFFIX,
#: and those of older versions (".tmp" only) beside checkpoints, the only files removed as stale
_SUFFIX = ".tinyconv.tmp"
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tinyconv\.tmp|\..+\.npz\.[A-Za-z0-9_]{8}\.tmp")


def _lock(f):
    """Hold an advisory lock on a temporary file while it is written (none on Windows)."""
    try:
        import fcntl
    except ImportError:                           # pragma: no cover - Windows
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def _remove_stale_temps(folder):
    """Delete temporary files of earlier writers that died (their lock is free) in ``folder``."""
    try:
        import fcntl
    except ImportError:                           # pragma: no cover - Windows: no way to tell who is alive
        return
    try:
        names = [n for n in os.listdir(folder) if _TEMP.fullmatch(n)]
    except OSError:
        return
    for name in names:
        tmp = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)    # raises while its writer lives
                    os.unlink(tmp)
            finally:
                os.close(fd)


def _umask():
    """The process's umask, read without changing it where the OS allows (Linux's /proc)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)                        # elsewhere: set and restore it at once
    os.umask(mask)
    return mask


def _mode_for(path):
    """The mode ``open(path, "wb")`` would leave: the replaced file's, or 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    Either the whole new file is there afterwards or the old one is untouched; no
    temporary file is left behind, whatever ``write`` raises (and those of a killed
    writer are removed here, see the module doc).  An ``OSError`` while writing (a full
    disk) becomes one :class:`CheckpointWriteError`.  Returns ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temps(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f)
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _mode_for(path))      # mkstemp's 0600 -> what open() would give
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                     # atomic on POSIX and Windows
    except BaseException as e:                    # full disk, crash, Ctrl-C: the old file stays
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, CheckpointError):
            kept = "the previous file is unchanged" if os.path.exists(path) else "nothing was written"
            err = CheckpointWriteError(f"cannot write {path}: {e.strerror or e} (is the disk full?); {kept}")
            err.errno = e.errno                   # (no strerror: str(err) stays the message)
            raise err from None
        raise
    _fsync_dir(folder)                            # make the rename itself durable
    return path


def archive_bytes(doc, packer, who):
    """The arrays to write for JSON ``doc`` (completed with every array's dtype, shape, hash)."""
    doc = dict(doc)
    doc["arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _sha256(a)}
                     for k, a in packer.arrays.items()}
    try:
        meta_bytes = json.dumps(doc, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{who}: metadata is not JSON-able: {e}") from None
    arrays = dict(packer.arrays)
    arrays[_META] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays[_META_HASH] = np.frombuffer(hashlib.sha256(meta_bytes).hexdigest().encode(), dtype=np.uint8)
    return arrays


def write_archive(f, doc, packer, who):
    """Write ``doc`` and ``packer``'s arrays: atomically to a path, or into a binary file object."""
    arrays = archive_bytes(doc, packer, who)
    if hasattr(f, "write"):
        _write_npz(f, arrays)
        return f
    return atomic_write(f, lambda out: _write_npz(out, arrays))


# --------------------------------------------------------------------------- bounded reading


def describe(source):
    """How error messages name a file: its path, or the file object's name."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(source)
    return getattr(source, "name", None) or f"<{type(source).__name__}>"


def open_zip(source, bad):
    """A ``ZipFile`` whose entries all declare sizes the file can really hold.

    A stored entry must declare exactly the bytes it occupies and a compressed one no
    more than deflate can inflate to; so reading an entry (which ``zipfile`` never
    continues past its declared size) can never inflate beyond what the file declares.
    ``bad(why)`` makes the error to raise.
    """
    try:
        z = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise bad(f"not a readable zip archive ({type(e).__name__}: {e}; truncated?)") from None
    total = 0
    for i in z.infolist():
        total += i.compress_size
        if i.compress_type == zipfile.ZIP_STORED and i.file_size != i.compress_size:
            z.close()
            raise bad(f"entry {i.filename} declares {i.file_size} bytes but stores {i.compress_size} "
                      "(forged or corrupted)")
        if i.file_size > _MAX_INFLATION * i.compress_size + 4096:
            z.close()
            raise bad(f"entry {i.filename} declares {i.file_size} bytes from {i.compress_size} "
                      "compressed, more than deflate can produce (a zip bomb?)")
    size = _file_size(source)
    if size is not None and total > size:
        z.close()
        raise bad(f"its entries declare {total} bytes, more than the file's {size} (truncated or forged)")
    inflated = sum(i.file_size for i in z.infolist())
    if size is not None and inflated > _MAX_TOTAL_INFLATION * size + (1 << 20):
        z.close()
        raise bad(f"its entries inflate to {inflated} bytes from a {size}-byte file, more than "
                  f"{_MAX_TOTAL_INFLATION} times its size (a zip bomb?)")
    return z


def _file_size(source):
    try:
        if hasattr(source, "seek"):
            here = source.tell()
            end = source.seek(0, io.SEEK_END)
            source.seek(here)
            return end
        return os.path.getsize(source)
    except (OSError, ValueError):
        return None


def read_entry(z, info, bad, nbytes=None):
    """An entry's bytes (a writable bytearray), exactly ``info.file_size`` of them, or
    ``nbytes`` when given (which must then be what the entry declares)."""
    if nbytes is not None and info.file_size != nbytes:
        raise bad(f"entry {info.filename} holds {info.file_size} bytes, {nbytes} expected")
    buf = _allocate(info.file_size, info.filename, bad)
    with z.open(info) as fp:
        n = fp.readinto(buf)
    if n != len(buf):
        raise bad(f"entry {info.filename} ends after {n} of {len(buf)} bytes (truncated)")
    return buf


def _allocate(nbytes, what, bad):
    try:
        return bytearray(nbytes)
    except MemoryError:
        raise bad(f"{what} needs {nbytes} bytes of memory, more than is available") from None


def _read_npy(z, info, want, bad):
    """One ``.npy`` entry as an array; its header must match ``want`` ({dtype, shape}, or None
    for any 1-d uint8 array) before anything is allocated."""
    with z.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise bad(f"{info.filename} is .npy version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fp, max_header_size=_MAX_NPY_HEADER)
        if dtype.hasobject or dtype.fields is not None:
            raise bad(f"{info.filename} holds {dtype} data, which cannot be loaded safely")
        name = info.filename[:-4]
        if want is None:
            if dtype != np.uint8 or len(shape) != 1:
                raise bad(f"{name} is {dtype}{list(shape)}, expected uint8 bytes")
        elif dtype.str != want["dtype"] or list(shape) != want["shape"]:
            raise bad(f"array {name} is {dtype.str}{list(shape)}, recorded as "
                      f"{want['dtype']}{want['shape']} (edited or corrupted)")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != fp.tell() + nbytes:
            raise bad(f"array {name} declares {nbytes} bytes of data but its entry holds "
                      f"{info.file_size - fp.tell()} (truncated or forged)")
        buf = _allocate(nbytes, f"array {name}", bad)
        if fp.readinto(buf) != nbytes:
            raise bad(f"array {name} is truncated")
    return np.frombuffer(buf, dtype).reshape(shape, order="F" if fortran else "C")


def _check_declared_size(info, want, bad):
    """The entry holding an array must declare the bytes its recorded dtype and shape need
    (plus a ``.npy`` header), checked from the zip directory before it is opened."""
    name = info.filename[:-4]
    shape, dtype = want.get("shape"), want.get("dtype")
    if not (isinstance(shape, list) and len(shape) <= 64
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise bad(f"arrays.{name}.shape is {str(shape)[:80]}; expected a list of non-negative ints")
    try:
        itemsize = np.dtype(dtype).itemsize if isinstance(dtype, str) and len(dtype) < 16 else None
    except (TypeError, ValueError):
        itemsize = None
    if itemsize is None:
        raise bad(f"arrays.{name}.dtype is {str(dtype)[:80]!r}; expected a NumPy dtype string")
    need = math.prod(shape) * itemsize
    if not need + 10 <= info.file_size <= need + _MAX_NPY_HEADER + 16:
        raise bad(f"entry {info.filename} declares {info.file_size} bytes but arrays.{name} "
                  f"({dtype}{shape}) needs {need} plus a header (forged or corrupted)")


def read_archive(source, bad):
    """Read and verify an archive written by :func:`write_archive` -> ``(doc, arrays)``.

    ``bad(why)`` makes the error to raise; every failure, however the file is damaged,
    comes out as that error."""
    try:
        with open_zip(source, bad) as z:
            infos = {i.filename: i for i in z.infolist()}
            if f"{_META}.npy" not in infos or f"{_META_HASH}.npy" not in infos:
                if _is_torch_zip(infos):
                    raise bad("it is a PyTorch file (torch.save), not tinyconv's format; "
                              "tinyconv.load reads it")
                raise bad("no tinyconv metadata inside (a foreign zip or .npz file?)")
            meta_bytes = _read_npy(z, infos[f"{_META}.npy"], None, bad).tobytes()
            if hashlib.sha256(meta_bytes).hexdigest().encode() != \
                    _read_npy(z, infos[f"{_META_HASH}.npy"], None, bad).tobytes():
                raise bad("its metadata does not match its checksum (edited or corrupted)")
            try:
                doc = json.loads(meta_bytes.decode("utf-8"))
            except RecursionError:
                raise bad(f"its metadata is nested more than {MAX_DEPTH} levels deep") from None
            declared = doc["arrays"]
            files = {n[:-4] for n in infos if n.endswith(".npy")} - {_META, _META_HASH}
            missing, extra = sorted(set(declared) - files), sorted(files - set(declared))
            if missing or extra or len(files) != len(infos) - 2:
                raise bad(f"arrays missing {missing[:5]} / unexpected {extra[:5]} (truncated or edited)")
            for key, want in declared.items():          # sizes, before anything is inflated
                _check_declared_size(infos[f"{key}.npy"], want, bad)
            arrays = {}
            for key, info in declared.items():
                a = _read_npy(z, infos[f"{key}.npy"], info, bad)
                if _sha256(a) != info["sha256"]:
                    raise bad(f"array {key} does not match its SHA-256 (edited or corrupted)")
                arrays[key] = a
    except CheckpointError:
        raise
    except Exception as e:     # a damaged zip can raise almost anything (BadZipFile, zlib.error, ...)
        raise bad(f"{type(e).__name__}: {e} (truncated, corrupted or not a .npz file)") from None
    return doc, arrays


def _is_torch_zip(names):
    return any(n.endswith("/data.pkl") and n.count("/") == 1 for n in names)


def archive_kind(source):
    """What a zip file holds, from its directory and metadata only (no array is read):
    "checkpoint" (:func:`save_checkpoint`), "save" (``tinyconv.save``), "torch"
    (``torch.save``), or None (anything else, or a damaged file)."""
    def bad(why):
        return CheckpointError(why)
    try:
        with open_zip(source, bad) as z:
            infos = {i.filename: i for i in z.infolist()}
            if _is_torch_zip(infos):
                return "torch"
            if f"{_META}.npy" not in infos:
                return None
            doc = json.loads(_read_npy(z, infos[f"{_META}.npy"], None, bad).tobytes().decode("utf-8"))
    except Exception:                  # damaged: the loader that runs next says how
        return None
    kind = doc.get("format") if isinstance(doc, dict) else None
    return {FORMAT: "checkpoint", "tinyconv-save": "save"}.get(kind)


# --------------------------------------------------------------------------- metadata schema


def _int_in(lo, hi):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"an int from {lo} to {hi}"
    return check


def _str(max_len):
    def check(v):
        if not isinstance(v, str) or len(v) > max_len:
            return f"a string of at most {max_len} characters"
    return check


def _numbers(positive, max_len=64):
    def check(v):
        if not (isinstance(v, list) and 1 <= len(v) <= max_len and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                and (x > 0 or not positive) for x in v)):
            return f"a list of 1 to {max_len} finite{' positive' if positive else ''} numbers"
    return check


def _one_of(*choices):
    def check(v):
        if v not in choices:
            return "one of " + ", ".join(map(repr, choices))
    return check


def _bool(v):
    if not isinstance(v, bool):
        return "true or false"


def _optional(check):
    return lambda v: None if v is None else check(v)


def _list_of(check, max_len):
    def each(v):
        if not isinstance(v, list) or len(v) > max_len or any(check(x) for x in v):
            return f"a list of at most {max_len} items, each {check(None) or 'valid'}"
    return each


#: what ``tinyconv predict`` (and resuming) builds from a checkpoint's ``meta``: field -> check
#: (a function returning None or what was expected).  Every field is optional; present, it must pass.
MAX_IMAGE_SIDE, MAX_CLASSES, MAX_CHANNELS = 4096, 100_000, 64
META_SCHEMA = {
    "arch": _str(100), "variant": _str(100),
    "num_classes": _int_in(1, MAX_CLASSES), "in_channels": _int_in(1, MAX_CHANNELS),
    "input_shape": _list_of(_int_in(1, MAX_IMAGE_SIDE), 3),
    "classes": _list_of(_str(1000), 100_000),
    "epoch": _int_in(0, 2**62), "step": _int_in(0, 2**62),
    "preprocess": {"mode": _one_of("L", "RGB"), "resize": _int_in(1, MAX_IMAGE_SIDE),
                   "crop": _int_in(1, MAX_IMAGE_SIDE), "mean": _numbers(False),
                   "std": _optional(_numbers(True)), "invert_hint": _str(1000),
                   "hflip": _bool},
}


def check_meta(meta, bad, schema=META_SCHEMA, where="meta"):
    """Raise ``bad("meta.<field> is ...; expected ...")`` for the first field of ``meta``
    that does not fit :data:`META_SCHEMA` (types and ranges), before anything is built from it."""
    if not isinstance(meta, dict):
        raise bad(f"{where} is a {type(meta).__name__}; expected a dict")
    for field, check in schema.items():
        if field not in meta:
            continue
        v, name = meta[field], f"{where}.{field}"
        if isinstance(check, dict):
            check_meta(v, bad, check, name)
            continue
        expected = check(v)
        if expected:
            raise bad(f"{name} is {short_repr(v)}; expected {expected}")


def short_repr(v, limit=60):
    """``repr(v)``, cut to ``limit`` characters (for error messages about untrusted values)."""
    r = repr(v)
    return r if len(r) <= limit else r[:limit - 3] + "..."


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model_state, optimizer_state=None, meta=None, rng_state=None):
    """Atomically write a checkpoint to ``path`` (see the module doc).

    ``model_state``: a mapping name -> array or Tensor (``model.state_dict()``).
    ``optimizer_state``, ``rng_state``: nested containers of arrays, Tensors and plain values.
    ``meta``: plain JSON-able metadata (architecture, variant, num_classes, epoch, step,
    class names, loader state, history, ...); arrays are allowed too.
    Returns the path.
    """
    who = "save_checkpoint"
    p = Packer(who)
    names = list(model_state.keys())
    model_keys = []
    for name in names:
        a = to_numpy(model_state[name])
        if a is None:
            raise CheckpointError(f"{who}: model_state[{name!r}] is a "
                                  f"{type(model_state[name]).__name__}, not an array or Tensor")
        model_keys.append(p.add(a))
    doc = {
        "format": FORMAT, "version": VERSION,
        "model": {"names": names, "arrays": model_keys},
        "optimizer": p.pack(optimizer_state, "optimizer_state"),
        "rng": p.pack(rng_state, "rng_state"),
        "meta": p.pack(meta or {}, "meta"),
    }
    return write_archive(os.fspath(path), doc, p, who)


def load_checkpoint(path):
    """Read and verify a checkpoint.  Returns a dict with ``model_state`` (an ordered
    dict name -> NumPy array), ``optimizer_state``, ``rng_state``, ``meta`` (Tensors in
    them come back as CPU Tensors) and ``path``.  Raises :class:`CheckpointError` naming
    the file for anything wrong."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"load_checkpoint: no such checkpoint file: {path}")

    def bad(why):
        return CheckpointError(f"load_checkpoint: {path} is not a valid tinyconv checkpoint: {why}")

    doc, arrays = read_archive(path, bad)
    if doc.get("format") != FORMAT:
        hint = (" (written by tinyconv.save: tinyconv.load reads it)"
                if doc.get("format") == "tinyconv-save" else "")
        raise bad(f"format {doc.get('format')!r}, expected {FORMAT!r}{hint}")
    if doc.get("version") != VERSION:
        raise bad(f"format version {doc.get('version')!r}; this tinyconv reads version {VERSION}")
    try:
        names, keys = doc["model"]["names"], doc["model"]["arrays"]
        out = {
            "model_state": OrderedDict((n, arrays[k]) for n, k in zip(names, keys, strict=True)),
            "optimizer_state": unpack(doc["optimizer"], arrays, where="optimizer_state"),
            "rng_state": unpack(doc["rng"], arrays, where="rng_state"),
            "meta": unpack(doc["meta"], arrays, where="meta"),
            "path": path,
        }
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"malformed metadata ({type(e).__name__}: {e})") from None
    check_meta(out["meta"], bad)
    return out


def _shape(v):
    return tuple(v.shape) if hasattr(v, "shape") else tuple(np.shape(v))


def check_model_state(model_state_expected, model_state_loaded, path="checkpoint", meta=None):
    """Raise a :class:`CheckpointError` listing every key or shape that differs between a
    model's ``state_dict()`` and a checkpoint's ``model_state``."""
    want = {k: _shape(v) for k, v in model_state_expected.items()}
    have = {k: _shape(v) for k, v in model_state_loaded.items()}
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
