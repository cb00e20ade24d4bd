"""Image transforms with torchvision's names, the paper's augmentation included
(Krizhevsky et al. 2012, section 4.1).  ``tinyconv.data.transforms`` stands for
``torchvision.transforms``.

Each transform is a callable on one sample.  Until ``ToArray`` (or ``ToTensor``) a
sample is a PIL image; after it, a CHW NumPy ``float32`` array with values in
[0, 1] (``ToTensor``: the same as a tinyconv Tensor)::

    train = Compose([Resize(256), RandomCrop(227), RandomHorizontalFlip(),
                     ToArray(), PCAColorAugment(eigvals, eigvecs), Normalize(mean)])
    test  = Compose([Resize(256), CenterCrop(227), ToArray(), Normalize(mean)])
    torchvision_style = Compose([Resize(32), ToTensor(), Normalize((0.5,), (0.5,))])

``Resize``, ``RandomCrop``, ``CenterCrop``, ``RandomHorizontalFlip`` and ``TenCrop``
take a PIL image, an array or a Tensor (the last two dims are height and width);
``Normalize`` takes arrays and Tensors, ``PCAColorAugment`` arrays.  This module
works on NumPy and Pillow and never imports autograd at import time: only
``ToTensor`` makes a Tensor (and Tensor inputs are recognised by their ``.array``).

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


def _unwrap(img):
    """(array, wrap) for an array or a tinyconv Tensor: ``wrap(out)`` gives a result of
    the input's kind.  Tensors are recognised by their ``.array`` (this module never
    imports autograd), and a transform's output is new data, not tracked by autograd."""
    if not isinstance(img, np.ndarray) and hasattr(img, "array") and hasattr(img, "grad_fn"):
        return img.array, type(img)
    return img, (lambda a: a)


def _size_hw(img, op):
    """(height, width) of a PIL image, or of an array / Tensor's last two dims (CHW, HW, NCHW)."""
    if _is_pil(img):
        return img.height, img.width
    a, _ = _unwrap(img)
    if hasattr(a, "shape") and len(a.shape) >= 2:
        return a.shape[-2], a.shape[-1]
    raise TypeError(f"{op}: expected a PIL image or a CHW NumPy array or Tensor, got "
                    f"{type(img).__name__}{getattr(img, 'shape', '')}")


def _crop(img, top, left, h, w):
    if _is_pil(img):
        return img.crop((left, top, left + w, top + h))      # PIL boxes are (left, upper, right, lower)
    a, wrap = _unwrap(img)
    return wrap(a[..., top:top + h, left:left + w].copy())


def _hflip(img):
    if _is_pil(img):
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a, wrap = _unwrap(img)
    return wrap(a[..., ::-1].copy())


def _pair(size, op):
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{op}: size must be a positive int or (height, width), got {size!r}")
    return size


def _check_fits(img, h, w, op):
    H, W = _size_hw(img, op)
    if h > H or w > W:
        raise ValueError(f"{op}: crop of {h}x{w} does not fit an image of {H}x{W} (height x width); "
                         "resize it first")
    return H, W


def _center(H, W, h, w):
    """torchvision's centre: offsets rounded half to even, ``round((H - h) / 2)``."""
    return int(round((H - h) / 2.0)), int(round((W - w) / 2.0))


def _padding4(padding, op):
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral):
        padding = (padding,)
    padding = tuple(int(p) for p in padding)
    if len(padding) not in (1, 2, 4) or min(padding) < 0:
        raise ValueError(f"{op}: padding must be an int >= 0 or a sequence of 1, 2 or 4 of them, "
                         f"got {padding!r}")
    if len(padding) == 1:
        return padding * 4
    if len(padding) == 2:
        return padding * 2                      # (left/right, top/bottom)
    return padding


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def _pad(img, left, top, right, bottom, fill=0, mode="constant"):
    """Pad the last two dims (arrays, Tensors) or the image (PIL)."""
    kw = {"constant_values": fill} if mode == "constant" else {}
    if _is_pil(img):
        if mode == "constant":
            out = Image.new(img.mode, (img.width + left + right, img.height + top + bottom), fill)
            out.paste(img, (left, top))
            return out
        a = np.asarray(img)
        widths = ((top, bottom), (left, right)) + ((0, 0),) * (a.ndim - 2)
        return Image.fromarray(np.pad(a, widths, mode=_PAD_MODES[mode]))
    a, wrap = _unwrap(img)
    widths = ((0, 0),) * (a.ndim - 2) + ((top, bottom), (left, right))
    return wrap(np.pad(a, widths, mode=_PAD_MODES[mode], **kw))


# --------------------------------------------------------------------------- honest mode conversion


def _premultiplied(a):
    """uint8 colour planes ``a[..., :-1]`` composited onto black by the alpha plane ``a[..., -1]``."""
    colour, alpha = a[..., :-1].astype(np.uint32), a[..., -1:].astype(np.uint32)
    return ((colour * alpha + 127) // 255).astype(np.uint8)


def convert_image(img, mode, bits=None):
    """A PIL image as an 8-bit ``"L"`` or ``"RGB"`` image, each source mode converted by its
    real value range (Pillow's ``convert`` clips instead: a 16-bit image becomes nearly white).

    ==================  =============================================================
    source mode         8-bit value
    ==================  =============================================================
    ``"I;16*"``         ``round(v * 255 / 65535)`` (unsigned 16-bit: 0..65535)
    ``"F"`` (float)     ``round(v * 255)``; values must be finite and in [0, 1], the
                        float-image convention (else a ``ValueError`` with the range)
    ``"I"`` (int32)     refused (``ValueError``): 32-bit integers have no fixed range,
                        unless ``bits=16`` says the file holds 16-bit samples (a 16-bit
                        PNG, which Pillow before 11 opens as ``"I"``): then as ``"I;16"``
    ``"CMYK"``          ``R = round((255 - C) (255 - K) / 255)``, likewise G from M and
                        B from Y (the naive formula torchvision's JPEG decoder uses;
                        ICC profiles are ignored)
    alpha (``"RGBA"``,  composited onto black (premultiplied: ``round(c * a / 255)``), so
    ``"LA"``, ``"PA"``, a fully transparent pixel is black whatever colour it hides;
    ``"P"`` with a      torchvision's PIL loader (``convert("RGB")``) drops the alpha
    transparent index)  and shows that hidden colour
    ``"P"``, ``"1"``,   Pillow's exact conversion (palette lookup; 0/255; YCbCr -> RGB)
    ``"YCbCr"``
    ==================  =============================================================

    ``"RGB"`` -> ``"L"`` is Pillow's ITU-R 601-2 luma (as torchvision's ``Grayscale``),
    ``"L"`` -> ``"RGB"`` repeats the plane.  Any other ``mode`` is Pillow's ``convert``.
    """
    src = img.mode
    if src == mode and "transparency" not in img.info:
        return img
    if mode not in ("L", "RGB"):
        return img.convert(mode)
    if src.startswith("I;16") or src in ("I", "F"):
        a = np.asarray(img)
        if src == "F":
            lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
            if not (np.isfinite(a).all() and lo >= 0.0 and hi <= 1.0):
                raise ValueError(f"float pixels (mode 'F') must be finite and in [0, 1], found values "
                                 f"in [{lo:g}, {hi:g}]; rescale the file or pass a loader= that does")
            a8 = np.floor(a.astype(np.float64) * 255 + 0.5)
        elif a.dtype.str[1:] == "u2" or (bits == 16 and (a.size == 0 or 0 <= a.min() <= a.max() < 2**16)):
            a8 = (a.astype(np.uint32) * 255 + 32767) // 65535
        else:
            raise ValueError(f"{a.dtype.itemsize * 8}-bit integer pixels (mode {src!r}) have no fixed "
                             "value range to scale to 8 bits; save the image as 8- or 16-bit, or pass "
                             "a loader= that scales it")
        img = Image.fromarray(a8.astype(np.uint8))
    elif src == "CMYK":
        a = 255 - np.asarray(img).astype(np.uint32)
        rgb = (a[..., :3] * a[..., 3:] + 127) // 255
        img = Image.fromarray(rgb.astype(np.uint8))
    else:
        if src in ("PA", "RGBa", "La") or (src in ("P", "L", "RGB") and "transparency" in img.info):
            img = img.convert("RGBA")                  # a transparent index or colour becomes alpha 0
        elif src not in ("L", "RGB", "LA", "RGBA"):
            try:
                img = img.convert("RGB")
            except ValueError as e:
                raise ValueError(f"cannot convert mode {src!r} to {mode!r} ({e})") from None
        if img.mode in ("LA", "RGBA"):
            colour = _premultiplied(np.asarray(img))
            img = Image.fromarray(colour[..., 0] if colour.shape[-1] == 1 else colour)
    return img if img.mode == mode else img.convert(mode)


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
    """Resize to ``size``, as torchvision's ``Resize``: an int (or ``[int]``) scales the
    shorter side to it keeping the aspect ratio (the longer side becomes
    ``int(size * long / short)``, truncated; the paper's "rescaled such that the
    shorter side was of length 256"), capped by ``max_size`` on the longer side; a
    pair (height, width) gives the exact size.

    Takes a PIL image, or an array / Tensor whose last two dims are (H, W); those are
    resized plane by plane through Pillow's float ("F") mode, which matches
    ``torch.nn.functional.interpolate(..., antialias=True)`` (torchvision's tensor
    path) for bilinear and bicubic.  Integer arrays are rounded back to their dtype.
    ``interpolation`` is a name ("bilinear", "nearest", "bicubic", "lanczos") or
    torchvision's ``InterpolationMode`` (anything with that ``.value``); ``antialias``
    is accepted for torchvision's signature: Pillow always antialiases.
    """

    _METHODS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}

    def __init__(self, size, interpolation="bilinear", max_size=None, antialias=True):
        if isinstance(size, numbers.Integral) or (isinstance(size, (list, tuple)) and len(size) == 1):
            size = int(size if isinstance(size, numbers.Integral) else size[0])
            if size < 1:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size = size
        else:
            if max_size is not None:
                raise ValueError("Resize: max_size is only allowed when size is an int (the shorter side)")
            self.size = _pair(size, "Resize")
        name = getattr(interpolation, "value", interpolation)
        if name not in self._METHODS:
            raise ValueError(f"Resize: interpolation must be one of {sorted(self._METHODS)}, got "
                             f"{interpolation!r}")
        self.interpolation = name
        self._resample = self._METHODS[name]
        self.max_size = max_size
        self.antialias = antialias

    def output_size(self, h, w):
        """The (height, width) an (h, w) image is resized to."""
        if not isinstance(self.size, int):
            return self.size
        short, long_ = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long_ / short)
        if self.max_size is not None and new_long > self.max_size:
            new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)

    def __call__(self, img):
        h, w = _size_hw(img, "Resize")
        new_h, new_w = self.output_size(h, w)
        if (new_h, new_w) == (h, w):
            return img
        if _is_pil(img):
            return img.resize((new_w, new_h), resample=self._resample)
        a, wrap = _unwrap(img)
        a = np.asarray(a)
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(p, dtype=np.float32), mode="F")
                             .resize((new_w, new_h), resample=self._resample))
                  for p in a.reshape(-1, h, w)]
        out = np.stack(planes).reshape(a.shape[:-2] + (new_h, new_w))
        if a.dtype.kind in "iub":
            info = np.iinfo(a.dtype) if a.dtype.kind != "b" else None
            out = np.rint(out) if info is None else np.clip(np.rint(out), info.min, info.max)
        return wrap(out.astype(a.dtype, copy=False))

    def __repr__(self):
        return f"Resize({self.size!r}, interpolation={self.interpolation!r}, max_size={self.max_size})"


class CenterCrop:
    """The central ``size`` patch (offsets as torchvision's: ``round((H - h) / 2)``).
    Unlike torchvision, a crop bigger than the image is an error, not zero padding."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img):
        h, w = self.size
        H, W = _check_fits(img, h, w, "CenterCrop")
        return _crop(img, *_center(H, W, h, w), h, w)

    def __repr__(self):
        return f"CenterCrop({self.size!r})"


class RandomCrop:
    """A ``size`` patch at a uniformly random position (every position equally likely),
    as torchvision's ``RandomCrop``.

    ``padding`` first pads the borders (an int for every side, (left/right, top/bottom)
    or (left, top, right, bottom)) with ``fill`` or by ``padding_mode`` ("constant",
    "edge", "reflect", "symmetric"), the usual way to get translations out of small
    images such as 28x28 digits; ``pad_if_needed`` pads an image smaller than ``size``.
    ``generator`` (a NumPy Generator, keyword only) fixes the draws; see the module doc.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant", *,
                 generator=None):
        self.size = _pair(size, "RandomCrop")
        self.padding = _padding4(padding or 0, "RandomCrop")
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {sorted(_PAD_MODES)}, got "
                             f"{padding_mode!r}")
        self.pad_if_needed, self.fill, self.padding_mode = bool(pad_if_needed), fill, padding_mode
        self.generator = generator

    def __call__(self, img):
        if any(self.padding):
            img = _pad(img, *self.padding, fill=self.fill, mode=self.padding_mode)
        h, w = self.size
        if self.pad_if_needed:
            H, W = _size_hw(img, "RandomCrop")
            dw, dh = max(w - W, 0), max(h - H, 0)
            if dw or dh:
                img = _pad(img, dw, dh, dw, dh, fill=self.fill, mode=self.padding_mode)
        H, W = _check_fits(img, h, w, "RandomCrop")
        rng = self.generator or current_rng()
        top = int(rng.integers(0, H - h + 1))       # H - h + 1 possible top rows
        left = int(rng.integers(0, W - w + 1))
        return _crop(img, top, left, h, w)

    def __repr__(self):
        return f"RandomCrop({self.size!r}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (PIL images, arrays, Tensors)."""

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
    palette and RGBA files gives one channel count; without it an image that is
    neither becomes "RGB".  The conversion is :func:`convert_image`: 16-bit and float
    images by their value range, alpha composited onto black.
    """

    def __init__(self, mode=None):
        if mode not in (None, "RGB", "L"):
            raise ValueError(f"ToArray: mode must be None, 'RGB' or 'L', got {mode!r}")
        self.mode = mode

    def __call__(self, img):
        if _is_pil(img):
            if self.mode is not None:
                img = convert_image(img, self.mode)
            elif img.mode not in ("RGB", "L"):
                img = convert_image(img, "RGB")
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


class ToTensor:
    """torchvision's ``ToTensor``: a PIL image or an HWC / HW array -> a CHW Tensor;
    uint8 data (and 1-bit images) scaled to float32 in [0, 1], other dtypes kept
    (as torchvision: a 16-bit image keeps its 0..65535 values; :class:`ToArray`, or
    ``load_image(path, "L")`` before ``ToTensor``, scales it by its range).

    The one transform that makes a Tensor (it imports tinyconv's core when called);
    :class:`ToArray` is the same conversion to a float32 NumPy array.
    """

    def __call__(self, pic):
        if _is_pil(pic):
            a = np.asarray(pic)
            if pic.mode == "1":
                a = a.astype(np.uint8) * 255
        elif isinstance(pic, np.ndarray):
            a = pic
        else:
            raise TypeError(f"ToTensor: pic should be a PIL Image or ndarray, got {type(pic).__name__}")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"ToTensor: pic should be 2 or 3 dimensional (HW or HWC), got shape {a.shape}")
        out = np.ascontiguousarray(a.transpose(2, 0, 1))
        if out.dtype == np.uint8:
            out = out.astype(np.float32) * np.float32(1 / 255)
        from ..autograd import Tensor
        return Tensor(out)

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a CHW (or NCHW) array or Tensor, as
    torchvision's ``Normalize``; floating input keeps its dtype, other input becomes
    float32, and a Tensor gives a Tensor.

    With ``std=None`` it is the paper's plain mean subtraction ("subtracting the mean
    activity over the training set from each pixel", here per channel); torchvision
    requires ``std``.  ``inplace=True`` writes into a floating array.
    """

    def __init__(self, mean, std=None, inplace=False):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(-1)
        if self.std is not None and (self.std.shape != self.mean.shape or np.any(self.std <= 0)):
            raise ValueError(f"Normalize: std must be positive and match mean's {self.mean.size} "
                             f"channels, got {std!r}")
        self.inplace = bool(inplace)

    def __call__(self, x):
        a, wrap = _unwrap(x)
        if not isinstance(a, np.ndarray) or a.ndim not in (3, 4):
            raise TypeError(f"Normalize: expected a CHW (or NCHW) array or Tensor, put it after "
                            f"ToArray / ToTensor; got {type(x).__name__}{getattr(x, 'shape', '')}")
        c = a.shape[-3]
        if c != self.mean.size:
            raise ValueError(f"Normalize: mean has {self.mean.size} channels, the image has {c}")
        dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float32)
        out = a if self.inplace and a.dtype.kind == "f" else a.astype(dtype)
        out -= self.mean.astype(dtype)[:, None, None]
        if self.std is not None:
            out /= self.std.astype(dtype)[:, None, None]
        return wrap(out)

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
        corners = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), _center(H, W, h, w)]
        crops = [_crop(img, t, l, h, w) for t, l in corners]
        crops += [_hflip(c) for c in crops]
        if _is_pil(img):
            return crops
        a, wrap = _unwrap(img)
        return wrap(np.stack([_unwrap(c)[0] for c in crops]))

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
