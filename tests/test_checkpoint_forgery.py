"""Forged checkpoints (issue 15, part 2): metadata is attacker-controlled, loading stays bounded.

Anyone can recompute a checkpoint's hashes, so every field of ``meta`` and every size in
the zip directory may be chosen by an attacker.  Each case here was a raw traceback or a
memory blow-up of ``tinyconv predict`` / ``summary`` / ``tinyconv.load`` (``crop = 10**6``
grew ``predict`` to 24 GB; a zip bomb inflated to gigabytes before any check).  Each one
runs in a fresh process under an address-space cap (``RLIMIT_AS``), so a regression fails
the test instead of exhausting the machine, and must end with one line on stderr naming
the file and the field, a non-zero exit and no traceback.
"""
import hashlib
import io
import json
import os
import resource
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

from tinyconv.checkpoint import save_checkpoint
from tinyconv.models import alexnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_CAP = 2 * 2**30           # address space of each child (predict on small28 peaks near 0.7 GiB)

META = {"arch": "alexnet", "variant": "small28", "num_classes": 10, "in_channels": 1,
        "classes": [str(i) for i in range(10)],
        "preprocess": {"mode": "L", "resize": 28, "crop": 28, "mean": [0.1], "std": [0.3]}}


def run_capped(code, *args):
    """Run ``code`` in a fresh Python under the address-space cap; it prints its peak
    resident memory (MiB) as the last line of stdout."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = textwrap.dedent(code) + textwrap.dedent("""
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
        print("peak", int(hwm.split()[1]) // 1024)
        sys.exit(rc)
    """)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)


CLI = "import sys\nfrom tinyconv import cli\nrc = cli.main(sys.argv[1:])\n"


def assert_one_clear_line(proc, *words, peak_mib=1024):
    check_one_clear_line(proc.returncode, proc.stderr, *words)
    peak = int(proc.stdout.split()[-1])
    assert peak < peak_mib, f"peak {peak} MiB: {proc.stderr}"


def check_one_clear_line(rc, err, *words):
    err = err.strip()
    assert rc != 0, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A genuine small28 checkpoint (10 classes, 1 channel) and a 28x28 image."""
    from PIL import Image
    d = tmp_path_factory.mktemp("forgery")
    model = alexnet(num_classes=10, variant="small28", in_channels=1, init="default")
    save_checkpoint(d / "good.npz", model.state_dict(), None, META)
    Image.fromarray(np.full((28, 28), 40, np.uint8)).save(d / "digit.png")
    return d


def read_members(path):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(np.lib.format.read_array(io.BytesIO(members["__meta__.npy"])).tobytes())
    return doc, members


def npy_bytes(payload):
    b = io.BytesIO()
    np.save(b, np.frombuffer(payload, np.uint8))
    return b.getvalue()


def forge(src, dst, edit_meta=None, meta_json=None):
    """Copy checkpoint ``src`` to ``dst`` with its metadata edited and its hash recomputed,
    as a forger would: ``edit_meta(meta)`` edits the dict, or ``meta_json(doc)`` gives the JSON bytes."""
    doc, members = read_members(src)
    if edit_meta is not None:
        edit_meta(doc["meta"])
    raw = meta_json(doc) if meta_json else json.dumps(doc).encode()
    members["__meta__.npy"] = npy_bytes(raw)
    members["__meta_sha256__.npy"] = npy_bytes(hashlib.sha256(raw).hexdigest().encode())
    with zipfile.ZipFile(dst, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    return dst


def setter(value, *path):
    def edit(meta):
        for p in path[:-1]:
            meta = meta[p]
        meta[path[-1]] = value
    return edit


def nested_900(doc):
    s = json.dumps(doc)
    i = s.index('"meta": {') + len('"meta": {')
    return (s[:i] + '"x": ' + "[" * 900 + "]" * 900 + ", " + s[i:]).encode()


# case -> (how the forger edits meta, words the one-line error must hold); before the fix
# each was a raw traceback (MemoryError for crop/resize/num_classes/in_channels)
FORGED_META = {
    "crop_1e6": (setter(10**6, "preprocess", "crop"), "meta.preprocess.crop"),
    "resize_1e6": (setter(10**6, "preprocess", "resize"), "meta.preprocess.resize"),
    "crop_not_the_models": (setter(32, "preprocess", "crop"), "meta.preprocess"),
    "variant_unknown": (setter("nope", "variant"), "meta.variant"),
    "variant_a_list": (setter([1], "variant"), "meta.variant"),
    "num_classes_negative": (setter(-3, "num_classes"), "meta.num_classes"),
    "num_classes_1e9": (setter(10**9, "num_classes"), "meta.num_classes"),
    "num_classes_a_string": (setter("ten", "num_classes"), "meta.num_classes"),
    "in_channels_zero": (setter(0, "in_channels"), "meta.in_channels"),
    "in_channels_1e7": (setter(10**7, "in_channels"), "meta.in_channels"),
    "mean_a_string": (setter("x", "preprocess", "mean"), "meta.preprocess.mean"),
    "mean_nan": (setter([float("nan")], "preprocess", "mean"), "meta.preprocess.mean"),
    "mean_four_channels": (setter([0.1, 0.2, 0.3, 0.4], "preprocess", "mean"), "meta.preprocess"),
    "std_zero": (setter([0.0], "preprocess", "std"), "meta.preprocess.std"),
    "mode_cmyk": (setter("CMYK", "preprocess", "mode"), "meta.preprocess.mode"),
    "mode_rgb_for_one_channel": (setter("RGB", "preprocess", "mode"), "meta.preprocess"),
    "preprocess_a_list": (setter([1, 2], "preprocess"), "meta.preprocess"),
    "classes_an_int": (setter(5, "classes"), "meta.classes"),
}


OTHER_FORGERIES = {      # case -> (edit_meta, meta_json, words)
    "meta_a_list": (None, lambda doc: json.dumps({**doc, "meta": [1, 2]}).encode(), ["meta is a list"]),
    "nested_900": (None, nested_900, ["meta.x[0][0][0]... is nested more than 100 levels"]),  # named no field
    "num_classes_not_the_weights": (setter(11, "num_classes"), None,            # was a multi-line error
                                    ["meta.num_classes is 11", "stored weights have 10"]),
    # a recorded shape needing more bytes than its entry declares: refused from the zip directory
    "recorded_shape_2e40": (None, lambda doc: json.dumps(
        {**doc, "arrays": {**doc["arrays"], "arr_00000": {**doc["arrays"]["arr_00000"], "shape": [2**40]}}}
    ).encode(), ["arrays.arr_00000", "needs 4398046511104"]),
}

CLI_EACH = """
    import contextlib, io, json, sys, traceback
    from tinyconv import cli
    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except BaseException:                                 # a regression: keep its traceback
                code = "raised"
                err.write(traceback.format_exc())
        results.append([code, err.getvalue()])
    print(json.dumps(results))
    rc = 0
"""


def run_each(argvs):
    """``cli.main(argv)`` for every argv in one capped process (one start, not one per case)
    -> [(exit status, stderr), ...]; the whole run must stay under 1 GiB resident."""
    proc = run_capped(CLI_EACH, json.dumps(argvs))
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stdout.split()[-1])
    assert peak < 1024, f"the commands peaked at {peak} MiB"
    return json.loads(proc.stdout.splitlines()[-2])


@pytest.fixture(scope="module")
def predicted(files):
    """``tinyconv predict`` on the genuine and each forged checkpoint: case -> (path, status, stderr)."""
    paths = {case: forge(files / "good.npz", files / f"{case}.npz", edit)
             for case, (edit, _) in FORGED_META.items()}
    paths.update({case: forge(files / "good.npz", files / f"{case}.npz", edit, raw)
                  for case, (edit, raw, _) in OTHER_FORGERIES.items()})
    paths["genuine"] = files / "good.npz"
    image = str(files / "digit.png")
    results = run_each([["predict", image, "--checkpoint", str(p)] for p in paths.values()])
    return {case: (str(path), *r) for (case, path), r in zip(paths.items(), results)}


@pytest.mark.parametrize("case", sorted(FORGED_META))
def test_forged_metadata_is_one_line_from_predict(predicted, case):
    path, rc, err = predicted[case]
    check_one_clear_line(rc, err, "tinyconv predict:", path, FORGED_META[case][1])


@pytest.mark.parametrize("case", sorted(OTHER_FORGERIES))
def test_malformed_metadata_is_one_line_from_predict(predicted, case):
    path, rc, err = predicted[case]
    check_one_clear_line(rc, err, "tinyconv predict:", path, *OTHER_FORGERIES[case][2])


def test_the_genuine_checkpoint_still_predicts(predicted):
    _, rc, err = predicted["genuine"]
    assert rc == 0 and err == "", err


# --------------------------------------------------------------------------- zip bombs


def _zip(path, members):
    """Write a zip by hand: ``members`` maps name -> bytes (stored) or (deflate stream, size, crc)."""
    with open(path, "wb") as f:
        central = []
        for name, m in members.items():
            data, size, crc, method = (m, len(m), zlib.crc32(m), 0) if isinstance(m, bytes) else (*m, 8)
            offset, n = f.tell(), name.encode()
            f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size,
                                len(n), 0) + n + data)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                                       len(data), size, len(n), 0, 0, 0, 0, 0, offset) + n)
        start = f.tell()
        f.write(b"".join(central))
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central),
                            f.tell() - start, start, 0))


def _deflated_zeros_npy(n_floats, chunk=1 << 20):
    """A float32 ``.npy`` of ``n_floats`` zeros as a deflate stream of repeated flushed blocks
    (about 1000:1, built in milliseconds) -> (stream, size, crc32, sha256 of the data)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (n_floats,)})
    header = header.getvalue()
    nbytes = 4 * n_floats
    assert (nbytes + len(header)) % chunk == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(header + bytes(chunk - len(header))) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(chunk)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    n_blocks = (nbytes + len(header)) // chunk - 1
    stream = first + block * n_blocks + c.flush()
    crc, sha = zlib.crc32(header), hashlib.sha256()
    for _ in range(nbytes // chunk):
        crc = zlib.crc32(zeros, crc)
        sha.update(zeros)
    crc = zlib.crc32(bytes(nbytes % chunk), crc)
    sha.update(bytes(nbytes % chunk))
    return (stream, nbytes + len(header), crc), sha.hexdigest()


@pytest.fixture(scope="module")
def bomb(files):
    """The genuine checkpoint plus an 'optimizer buffer' of 1 GiB zeros in ~1 MB, every hash right."""
    doc, members = read_members(files / "good.npz")
    n_floats = (1 << 28) - 32                                  # 1 GiB of float32 with its header
    entry, sha = _deflated_zeros_npy(n_floats)
    doc["arrays"]["arr_99999"] = {"dtype": "<f4", "shape": [n_floats], "sha256": sha}
    doc["optimizer"] = {"momentum": {"__array__": "arr_99999"}}
    raw = json.dumps(doc).encode()
    members["__meta__.npy"] = npy_bytes(raw)
    members["__meta_sha256__.npy"] = npy_bytes(hashlib.sha256(raw).hexdigest().encode())
    path = files / "bomb.npz"
    _zip(path, {"arr_99999.npy": entry, **members})
    assert os.path.getsize(path) < 3 << 20
    return path


def test_zip_bomb_is_refused_by_predict_before_inflating(files, bomb):
    proc = run_capped(CLI, "predict", files / "digit.png", "--checkpoint", bomb)
    assert_one_clear_line(proc, str(bomb), "zip bomb", peak_mib=400)


def test_zip_bomb_is_refused_by_tinyconv_load_before_inflating(bomb):
    proc = run_capped("""
        import sys
        import tinyconv
        try:
            tinyconv.load(sys.argv[1])
            rc = 0
        except tinyconv.checkpoint.CheckpointError as e:
            print(e, file=sys.stderr)
            rc = 1
    """, bomb)
    assert_one_clear_line(proc, str(bomb), "zip bomb", peak_mib=400)


# --------------------------------------------------------------------------- summary


SUMMARY = {      # flags -> words; each was a NumPy MemoryError traceback (now the flag's own check)
    ("--num-classes", "1000000000"): "--num-classes: expected an int from 1 to 100000, got 1000000000",
    ("--in-channels", "10000000"): "--in-channels: expected an int from 1 to 64, got 10000000",
    ("--input-shape", "1", "100000", "100000"): "--input-shape: expected an int from 1 to 4096, got 100000",
}


@pytest.fixture(scope="module")
def summarized():
    return dict(zip(SUMMARY, run_each([["summary", "small28", *flags] for flags in SUMMARY])))


@pytest.mark.parametrize("flags", list(SUMMARY), ids=lambda f: f[0])
def test_summary_with_huge_sizes_is_one_line(summarized, flags):
    check_one_clear_line(*summarized[flags], "tinyconv summary:", SUMMARY[flags])
