"""Bad and unusual images (issue 15, part 3): each mode by its real value range, hostile files refused.

Every expected pixel value here is computed by hand from the formula in
``tinyconv.data.transforms.convert_image``'s table, for pixels written with Pillow or
NumPy into ``tmp_path``.  Each test failed before its fix: 16-bit and float images were
clipped by Pillow's ``convert`` (a 16-bit ramp's mean read 0.998 instead of 0.488), alpha
was dropped, EXIF orientation was ignored, a
decompression bomb raised Pillow's own error even with ``skip_bad``, a truncated JPEG
passed the build-time check, a FIFO named ``.png`` hung ``ImageFolder`` forever, and a
symlink loop listed files up to 41 times, some under two labels.  (The CMYK test
passed before too, with this Pillow: it pins the multiplicative formula that Pillow
uses since version 10, where Pillow 9, which setup.py allows, clipped ``255 - C - K``.)

The FIFO cases run in a child process with a timeout, so a regression fails instead of
hanging the suite.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image

from tinyconv import data as D
from tinyconv.data import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")


def pixels(path, mode):
    return np.asarray(D.load_image(path, mode))


# --------------------------------------------------------------------------- value ranges


def test_16_bit_png_is_scaled_by_65535_not_clipped(tmp_path):
    v = np.array([[0, 257, 32896], [65535, 1000, 50000]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "deep.png")
    Image.fromarray(v.astype(">u2")).save(tmp_path / "deep_b.tif")                 # big-endian "I;16B"
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    np.testing.assert_array_equal(pixels(tmp_path / "deep.png", "L"), pixels(tmp_path / "deep_b.tif", "L"))
    # round(v * 255 / 65535): 1000 -> 3.89 -> 4, 50000 -> 194.55 -> 195
    expected = np.array([[0, 1, 128], [255, 4, 195]], dtype=np.uint8)
    np.testing.assert_array_equal(pixels(tmp_path / "deep.png", "L"), expected)
    np.testing.assert_array_equal(pixels(tmp_path / "deep.png", "RGB"), np.stack([expected] * 3, -1))
    ramp = np.linspace(0, 65535, 256 * 4).astype(np.uint16).reshape(16, 64)   # mean 0.5 of full scale
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    x = D.open_image_array(tmp_path / "ramp.png", "L")
    assert abs(float(x.mean()) - 0.5) < 1 / 255          # was 0.998: everything above 255 clipped to white
    # ToArray on an undecoded-mode PIL image takes the same road
    np.testing.assert_array_equal(T.ToArray("L")(Image.open(tmp_path / "deep.png")),
                                  expected[None] * np.float32(1 / 255))


def test_16_bit_samples_in_an_int32_image_when_the_file_says_so():
    """Pillow before 11 opens a 16-bit PNG as mode "I"; load_image passes bits=16 for PNGs."""
    im = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32))
    assert im.mode == "I"
    np.testing.assert_array_equal(np.asarray(T.convert_image(im, "L", bits=16)), [[0, 4, 255]])
    with pytest.raises(ValueError, match="32-bit integer pixels"):
        T.convert_image(im, "L")
    with pytest.raises(ValueError, match="32-bit integer pixels"):          # not 16-bit after all
        T.convert_image(Image.fromarray(np.array([[-1, 70000]], dtype=np.int32)), "L", bits=16)


def test_float_tiff_in_0_1_is_scaled_by_255(tmp_path):
    v = np.array([[0.0, 0.25], [0.6, 1.0]], dtype=np.float32)
    Image.fromarray(v).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    # round(v * 255): 63.75 -> 64, 153.0 -> 153
    np.testing.assert_array_equal(pixels(tmp_path / "f.tif", "L"), [[0, 64], [153, 255]])


@pytest.mark.parametrize("bad", [[-1.0, 0.5], [0.0, 2.0], [0.0, np.nan]])
def test_float_tiff_outside_0_1_is_refused_with_its_range(tmp_path, bad):
    Image.fromarray(np.array([bad], dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"f\.tif .*finite and in \[0, 1\]"):
        D.load_image(tmp_path / "f.tif", "L")


def test_int32_tiff_is_refused_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    with pytest.raises(ValueError, match=r"load_image: cannot decode .*i\.tif .*32-bit integer"):
        D.load_image(tmp_path / "i.tif", "RGB")
    (tmp_path / "c").mkdir()
    os.replace(tmp_path / "i.tif", tmp_path / "c" / "i.tif")
    Image.new("L", (2, 1), 7).save(tmp_path / "c" / "ok.png")
    with pytest.raises(ValueError, match=r"i\.tif is not a readable image .*32-bit"):
        D.ImageFolder(tmp_path, mode="L")
    with pytest.warns(UserWarning, match=r"skipping .*i\.tif"):
        ds = D.ImageFolder(tmp_path, mode="L", skip_bad=True)
    assert [os.path.basename(p) for p, _ in ds.samples] == ["ok.png"]


def test_palette_is_looked_up_and_its_transparent_index_is_black(tmp_path):
    im = Image.new("P", (3, 1))
    im.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * (253 * 3))
    im.putdata([0, 1, 2])
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(pixels(tmp_path / "p.png", "RGB"),
                                  [[[10, 20, 30], [200, 100, 50], [0, 255, 0]]])
    im.save(tmp_path / "pt.png", transparency=1)                      # index 1 fully transparent
    np.testing.assert_array_equal(pixels(tmp_path / "pt.png", "RGB"),
                                  [[[10, 20, 30], [0, 0, 0], [0, 255, 0]]])
    Image.fromarray(np.array([[10, 20, 30]], dtype=np.uint8)).save(tmp_path / "lt.png", transparency=20)
    np.testing.assert_array_equal(pixels(tmp_path / "lt.png", "L"), [[10, 0, 30]])    # grey 20 transparent


def test_alpha_is_composited_onto_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 128], [255, 255, 255, 0], [9, 8, 7, 255]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    # round(c * a / 255): 200*128/255 = 100.4 -> 100, 100*128/255 = 50.2 -> 50, 50*128/255 = 25.1 -> 25
    np.testing.assert_array_equal(pixels(tmp_path / "a.png", "RGB"), [[[100, 50, 25], [0, 0, 0], [9, 8, 7]]])
    la = np.array([[[200, 64], [77, 0]]], dtype=np.uint8)
    Image.merge("LA", [Image.fromarray(la[..., 0]), Image.fromarray(la[..., 1])]).save(tmp_path / "la.png")
    np.testing.assert_array_equal(pixels(tmp_path / "la.png", "L"), [[50, 0]])     # 200*64/255 = 50.2


def test_cmyk_uses_the_multiplicative_formula(tmp_path):
    cmyk = np.array([[[51, 102, 0, 51], [0, 0, 0, 255]]], dtype=np.uint8)
    Image.frombytes("CMYK", (2, 1), cmyk.tobytes()).save(tmp_path / "k.tif")
    # R = round((255-C)(255-K)/255): 204*204/255 = 163.2, 153*204/255 = 122.4, 255*204/255 = 204
    np.testing.assert_array_equal(pixels(tmp_path / "k.tif", "RGB"), [[[163, 122, 204], [0, 0, 0]]])


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6                                    # Orientation 6: rotate 90 degrees clockwise to view
    im.save(tmp_path / "r.png", exif=exif)
    np.testing.assert_array_equal(pixels(tmp_path / "r.png", "L"), [[40, 10], [50, 20], [60, 30]])


# --------------------------------------------------------------------------- hostile files


@pytest.fixture
def folder(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (4, 3), (i * 50, 10, 200)).save(tmp_path / cls / f"{i}.png")
    return tmp_path


def test_decompression_bomb_is_refused_and_skipped_by_name(folder, monkeypatch):
    Image.new("L", (30, 30)).save(folder / "a" / "bomb.png")          # 900 pixels
    Image.new("L", (12, 12)).save(folder / "b" / "big.png")          # 144 pixels: Pillow only warns
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)               # 2 x 100 < 900: Pillow raises
    with pytest.raises(ValueError, match=r"load_image: cannot decode .*bomb\.png .*MAX_IMAGE_PIXELS"):
        D.load_image(folder / "a" / "bomb.png")
    with pytest.raises(ValueError, match=r"bomb\.png is not a readable image .*skip_bad=True"):
        D.ImageFolder(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ValueError, match=r"big\.png .*144 pixels, more than .*MAX_IMAGE_PIXELS = 100"):
            D.load_image(folder / "b" / "big.png")
        with pytest.warns(UserWarning, match="skipping"):
            ds = D.ImageFolder(folder, skip_bad=True)
    assert sorted(os.path.basename(p) for p in ds.skipped) == ["big.png", "bomb.png"] and len(ds) == 4


def test_truncated_jpeg_is_caught_when_the_folder_is_built(folder):
    path = folder / "b" / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(ValueError, match=r"cut\.jpg is not a readable image .*truncated"):
        D.ImageFolder(folder)
    with pytest.warns(UserWarning, match=r"skipping .*cut\.jpg"):
        ds = D.ImageFolder(folder, skip_bad=True)
    assert ds.skipped == [str(path)] and len(ds) == 4


def run_bounded(code, *args, timeout=60):
    """``code`` in a child Python (this checkout's tinyconv); a hang fails the test after ``timeout``."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s (a FIFO was opened?)")


@needs_fifo
def test_fifo_named_png_is_refused_without_opening_it(folder):
    fifo = folder / "a" / "pipe.png"
    os.mkfifo(fifo)
    done = run_bounded("""
        import sys, warnings
        from tinyconv import data as D
        root, fifo = sys.argv[1:]
        for call in (lambda: D.ImageFolder(root), lambda: D.load_image(fifo)):
            try:
                call()
            except ValueError as e:
                print("refused:", e)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ds = D.ImageFolder(root, skip_bad=True)
        print("skipped:", ds.skipped, len(ds), [str(x.message) for x in w])
        """, folder, fifo)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (f"refused: ImageFolder: {fifo} is not a readable image (a FIFO, not a regular file); "
                        "remove it or pass skip_bad=True to skip such files")
    assert lines[1] == f"refused: load_image: cannot decode {fifo} (a FIFO, not a regular file)"
    assert lines[2].startswith(f"skipped: [{str(fifo)!r}] 4 [") and "skipping" in lines[2]


@needs_symlinks
def test_device_and_broken_link_are_refused_by_name(folder):
    os.symlink(os.devnull, folder / "a" / "null.png")
    os.symlink(folder / "nowhere.png", folder / "b" / "gone.png")
    with pytest.warns(UserWarning) as w:
        ds = D.ImageFolder(folder, skip_bad=True)
    assert sorted(os.path.basename(p) for p in ds.skipped) == ["gone.png", "null.png"] and len(ds) == 4
    messages = " ".join(str(x.message) for x in w)
    assert "null.png: a character device, not a regular file" in messages
    assert "gone.png: a broken symbolic link" in messages


# --------------------------------------------------------------------------- symlinks followed once


@needs_symlinks
def test_symlink_loops_list_every_file_once_with_one_label(folder):
    os.symlink(folder, folder / "a" / "up")                 # a/up -> root: a loop through both classes
    os.symlink(folder / "b", folder / "b" / "self")        # b/self -> b
    os.symlink(folder / "b", folder / "a" / "to_b")        # a/to_b -> b: b's files are b's
    (folder / "a" / "sub").mkdir()
    Image.new("RGB", (4, 3)).save(folder / "a" / "sub" / "deep.png")
    with pytest.warns(UserWarning, match="not entering"):
        ds = D.ImageFolder(folder, skip_bad=True)
    got = sorted((os.path.relpath(p, folder), label) for p, label in ds.samples)
    assert got == [(os.path.join("a", "0.png"), 0), (os.path.join("a", "1.png"), 0),
                   (os.path.join("a", "sub", "deep.png"), 0),
                   (os.path.join("b", "0.png"), 1), (os.path.join("b", "1.png"), 1)]
    assert ds.skipped == []


@needs_symlinks
def test_a_file_linked_into_another_class_is_refused_and_a_same_class_link_counted_once(folder):
    os.symlink(folder / "a" / "0.png", folder / "a" / "again.png")
    with pytest.warns(UserWarning, match=r"skipping .*again\.png: the same file as .*0\.png"):
        ds = D.ImageFolder(folder)
    assert len(ds) == 4
    os.link(folder / "a" / "1.png", folder / "b" / "2.png")          # a hard link: the same inode
    with pytest.raises(ValueError, match=r"b.2\.png is not a readable image \(the same file as .*1\.png, "
                                         r"already labelled 'a'\)"), pytest.warns(UserWarning, match="again"):
        D.ImageFolder(folder)
    with pytest.warns(UserWarning):
        ds = D.ImageFolder(folder, skip_bad=True)
    assert len(ds) == 4 and ds.skipped == [str(folder / "b" / "2.png")]
    assert sorted(ds.targets) == [0, 0, 1, 1]


@needs_symlinks
def test_two_class_folders_that_are_one_directory_are_refused(folder):
    os.symlink(folder / "a", folder / "c")
    with pytest.raises(ValueError, match=r"class folder .*c is the same directory as .*a \(a symlink\?\)"):
        D.ImageFolder(folder)
