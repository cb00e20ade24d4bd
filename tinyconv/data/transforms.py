"""Image transforms, the paper's augmentation included (Krizhevsky et al. 2012, section 4.1).

Each transform is a callable on one sample.  Until ``ToArray`` a sample is a PIL
image; after it, a NumPy ``float32`` array in CHW layout with values in [0, 1]::

    train = Compose([Resize(256), RandomCrop(227), RandomHorizontalFlip(),
                     ToArray(), PCAColorAugment(eigvals, eigvecs), Normalize(mean)])
    test  = Compose([Resize(256), CenterCrop(227), ToArray(), Normalize(mean)])

``RandomCrop``, ``CenterCrop``, ``RandomHorizontalFlip`` and ``TenCrop`` take either
kind of sample; ``Resize`` needs a PIL image; ``Normalize`` and ``PCAColorAugment``
need arrays.

Randomness.  A random transform draws from the generator it was given, else from
:func:`current_rng`: the per-sample generator the DataLoader installs around each
``dataset[i]`` (seeded by loader seed, epoch and index, so augmentation is the same
whichever thread decodes the sample), else tinyconv's global generator
(:func:`tinyconv.random.generator`, seeded by ``tinyconv.manual_seed``).

The statistics the paper computes "over the training set" come from
:func:`channel_stats` (per-channel mean and std) and :func:`rgb_pca` (eigenvalues
and eigenvectors of the 3x3 covariance of RGB pixel values).
"""
import contextlib
import numbers
import threading

import numpy as np

from .. import random as _random

try:                                   # Pillow is a dependency, but arrays work without it
    from PIL import Image
except ImportError:                    # pragma: no cover
    Image = None

# --------------------------------------------------------------------------- randomness

_local = threading.local()


def current_rng():
    """The generator a random transform draws from when it was given none."""
    rng = getattr(_local, "rng", None)
    return rng if rng is not None else _random.generator()


@contextlib.contextmanager
def rng_scope(rng):
    """Make ``rng`` this thread's :func:`current_rng` inside the ``with`` block."""
    previous = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield rng
    finally:
        _local.rng = previous


# --------------------------------------------------------------------------- helpers


def _is_pil(img):
    return Image is not None and isinstance(img, Image.Image)


def _size_hw(img, op):
    """(height, width) of a PIL image or a CHW array."""
    if _is_pil(img):
        return img.height, img.width
    if isinstance(img, np.ndarray) and img.ndim == 3:
        return img.shape[1], img.shape[2]
    raise TypeError(f"{op}: expected a PIL image or a CHW NumPy array, got "
                    f"{type(img).__name__}{getattr(img, 'shape', '')}")


def _crop(img, top, left, h, w):
    if _is_pil(img):
        return img.crop((left, top, left + w, top + h))      # PIL boxes are (left, upper, right, lower)
    return np.ascontiguousarray(img[:, top:top + h, left:left + w])


def _hflip(img):
    if _is_pil(img):
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.ascontiguousarray(img[:, :, ::-1])


def _pair(size, op):
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{op}: size must be a positive int or (height, width), got {size!r}")
    return size


def _check_fits(img, h, w, op):
    H, W = _size_hw(img, op)
    if h > H or w > W:
        raise ValueError(f"{op}: crop of {h}x{w} does not fit an image of {H}x{W} (height x width); "
                         "resize it first")
    return H, W


# --------------------------------------------------------------------------- transforms


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Resize:
    """Resize a PIL image: an int scales the shorter side to it (keeping the aspect
    ratio, as the paper's "rescaled such that the shorter side was of length 256");
    a pair (height, width) gives the exact size."""

    def __init__(self, size, interpolation="bilinear"):
        if isinstance(size, numbers.Integral):
            if size < 1:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size = int(size)
        else:
            self.size = _pair(size, "Resize")
        methods = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}
        if interpolation not in methods:
            raise ValueError(f"Resize: interpolation must be one of {sorted(methods)}, got {interpolation!r}")
        self.interpolation = interpolation
        self._resample = methods[interpolation]

    def __call__(self, img):
        if not _is_pil(img):
            raise TypeError(f"Resize: expected a PIL image (put Resize before ToArray), got "
                            f"{type(img).__name__}")
        if isinstance(self.size, int):
            w, h = img.size
            short, long_ = (w, h) if w <= h else (h, w)
            new_long = max(1, int(round(long_ * self.size / short)))
            new_w, new_h = (self.size, new_long) if w <= h else (new_long, self.size)
        else:
            new_h, new_w = self.size
        if (new_w, new_h) == img.size:
            return img
        return img.resize((new_w, new_h), resample=self._resample)

    def __repr__(self):
        return f"Resize({self.size!r})"


class CenterCrop:
    """The central ``size`` patch."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img):
        h, w = self.size
        H, W = _check_fits(img, h, w, "CenterCrop")
        return _crop(img, (H - h) // 2, (W - w) // 2, h, w)

    def __repr__(self):
        return f"CenterCrop({self.size!r})"


class RandomCrop:
    """A ``size`` patch at a uniformly random position (every position equally likely).

    ``padding`` first pads each side with zeros (arrays) or black (PIL), the usual way
    to get translations out of small images such as 28x28 digits.
    """

    def __init__(self, size, padding=0, generator=None):
        self.size = _pair(size, "RandomCrop")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.generator = generator

    def _pad(self, img):
        p = self.padding
        if _is_pil(img):
            out = Image.new(img.mode, (img.width + 2 * p, img.height + 2 * p))
            out.paste(img, (p, p))
            return out
        return np.pad(img, ((0, 0), (p, p), (p, p)))

    def __call__(self, img):
        if self.padding:
            img = self._pad(img)
        h, w = self.size
        H, W = _check_fits(img, h, w, "RandomCrop")
        rng = self.generator or current_rng()
        top = int(rng.integers(0, H - h + 1))       # H - h + 1 possible top rows
        left = int(rng.integers(0, W - w + 1))
        return _crop(img, top, left, h, w)

    def __repr__(self):
        return f"RandomCrop({self.size!r}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p=0.5, generator=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = generator

    def __call__(self, img):
        _size_hw(img, "RandomHorizontalFlip")
        rng = self.generator or current_rng()
        return _hflip(img) if rng.random() < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class ToArray:
    """PIL image (or HWC / HW uint8 array) -> CHW float32 array in [0, 1].

    ``mode`` ("RGB" or "L") converts the image first, so a folder of mixed greyscale,
    palette and RGBA files gives one channel count.
    """

    def __init__(self, mode=None):
        if mode not in (None, "RGB", "L"):
            raise ValueError(f"ToArray: mode must be None, 'RGB' or 'L', got {mode!r}")
        self.mode = mode

    def __call__(self, img):
        if _is_pil(img):
            if self.mode is not None and img.mode != self.mode:
                img = img.convert(self.mode)
            elif img.mode not in ("RGB", "L"):
                img = img.convert("RGB")
            a = np.asarray(img)
        elif isinstance(img, np.ndarray):
            a = img
        else:
            raise TypeError(f"ToArray: expected a PIL image or a NumPy array, got {type(img).__name__}")
        if a.ndim == 2:
            a = a[:, :, None]                      # HW -> HW1
        if a.ndim != 3:
            raise ValueError(f"ToArray: expected an HWC or HW image, got shape {a.shape}")
        out = np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)   # HWC -> CHW
        if a.dtype == np.uint8:
            out *= np.float32(1 / 255)
        return out

    def __repr__(self):
        return f"ToArray(mode={self.mode!r})"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a CHW array.

    With ``std=None`` it is the paper's plain mean subtraction ("subtracting the mean
    activity over the training set from each pixel", here per channel).
    """

    def __init__(self, mean, std=None):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(-1)
        if self.std is not None and (self.std.shape != self.mean.shape or np.any(self.std <= 0)):
            raise ValueError(f"Normalize: std must be positive and match mean's {self.mean.size} "
                             f"channels, got {std!r}")

    def __call__(self, x):
        if not isinstance(x, np.ndarray) or x.ndim not in (3, 4):
            raise TypeError(f"Normalize: expected a CHW (or NCHW) array, put it after ToArray; got "
                            f"{type(x).__name__}{getattr(x, 'shape', '')}")
        c = x.shape[-3]
        if c != self.mean.size:
            raise ValueError(f"Normalize: mean has {self.mean.size} channels, the image has {c}")
        out = x - self.mean[:, None, None]
        if self.std is not None:
            out /= self.std[:, None, None]
        return out.astype(np.float32, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={None if self.std is None else self.std.tolist()})"


class PCAColorAugment:
    """The paper's "fancy PCA" colour augmentation on a 3xHxW array.

    With ``p_i`` and ``lambda_i`` the eigenvectors and eigenvalues of the 3x3
    covariance of RGB pixel values over the training set (:func:`rgb_pca`), each
    image gets, at every pixel, ``[p1 p2 p3] [a1*l1, a2*l2, a3*l3]^T`` added, with
    ``a_i ~ N(0, std)`` drawn once per image (std 0.1 in the paper).
    """

    def __init__(self, eigvals, eigvecs, std=0.1, generator=None):
        self.eigvals = np.asarray(eigvals, dtype=np.float64).reshape(3)
        self.eigvecs = np.asarray(eigvecs, dtype=np.float64).reshape(3, 3)   # column i is p_i
        if np.any(self.eigvals < 0):
            raise ValueError(f"PCAColorAugment: eigenvalues must be >= 0, got {self.eigvals}")
        self.std = float(std)
        self.generator = generator

    def noise(self, rng=None):
        """One draw of the per-channel offset ``sum_i a_i * l_i * p_i`` (shape (3,))."""
        rng = rng or self.generator or current_rng()
        alpha = rng.normal(0.0, self.std, size=3)
        return self.eigvecs @ (alpha * self.eigvals)

    def __call__(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[0] != 3:
            raise ValueError(f"PCAColorAugment: expected a 3xHxW RGB array (after ToArray), got "
                             f"{type(x).__name__}{getattr(x, 'shape', '')}")
        return (x + self.noise().astype(np.float32)[:, None, None]).astype(np.float32, copy=False)

    def __repr__(self):
        return f"PCAColorAugment(eigvals={self.eigvals.tolist()}, std={self.std})"


class TenCrop:
    """The paper's test-time crops: four corners and the centre, then the same five
    mirrored.  An array gives one (10, C, h, w) array; a PIL image a list of 10."""

    def __init__(self, size):
        self.size = _pair(size, "TenCrop")

    def __call__(self, img):
        h, w = self.size
        H, W = _check_fits(img, h, w, "TenCrop")
        corners = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), ((H - h) // 2, (W - w) // 2)]
        crops = [_crop(img, t, l, h, w) for t, l in corners]
        crops += [_hflip(c) for c in crops]
        return np.stack(crops) if isinstance(img, np.ndarray) else crops

    def __repr__(self):
        return f"TenCrop({self.size!r})"


# --------------------------------------------------------------------------- training-set statistics


def _as_chw(sample):
    if isinstance(sample, tuple):          # (image, label) pairs from a dataset
        sample = sample[0]
    if not isinstance(sample, np.ndarray):
        sample = ToArray()(sample)
    return sample


def _iter_samples(dataset, max_samples, seed):
    n = len(dataset)
    idx = np.arange(n)
    if max_samples is not None and n > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
    for i in idx:
        yield _as_chw(dataset[int(i)])


def channel_stats(dataset, max_samples=None, seed=0):
    """Per-channel (mean, std) of the images of ``dataset`` (CHW arrays or PIL images,
    or (image, label) pairs), over every pixel.  ``max_samples`` uses a fixed random
    subset for big sets.  Computed in float64 with running sums."""
    s = ss = None
    count = 0
    for x in _iter_samples(dataset, max_samples, seed):
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        s = flat.sum(1) if s is None else s + flat.sum(1)
        ss = (flat ** 2).sum(1) if ss is None else ss + (flat ** 2).sum(1)
        count += flat.shape[1]
    if not count:
        raise ValueError("channel_stats: the dataset is empty")
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean ** 2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def rgb_pca(dataset, max_samples=None, seed=0):
    """Eigenvalues (descending) and eigenvectors (columns) of the 3x3 covariance of
    RGB pixel values over the images of ``dataset``, as ``PCAColorAugment`` wants."""
    s = np.zeros(3)
    outer = np.zeros((3, 3))
    count = 0
    for x in _iter_samples(dataset, max_samples, seed):
        if x.shape[0] != 3:
            raise ValueError(f"rgb_pca: expected RGB images with 3 channels, got {x.shape[0]}")
        px = x.reshape(3, -1).astype(np.float64)        # one column per pixel
        s += px.sum(1)
        outer += px @ px.T
        count += px.shape[1]
    if not count:
        raise ValueError("rgb_pca: the dataset is empty")
    mean = s / count
    cov = outer / count - np.outer(mean, mean)
    eigvals, eigvecs = np.linalg.eigh(cov)              # ascending, for a symmetric matrix
    order = np.argsort(eigvals)[::-1]
    return np.maximum(eigvals[order], 0.0), eigvecs[:, order]
