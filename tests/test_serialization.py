"""tinyconv.save / tinyconv.load: round trips, safetensors and PyTorch interop (PyTorch blocked
where it must not be needed), atomic writes, and refusal of malicious, forged, truncated,
zip-bomb and deeply nested files under a memory limit."""
import errno
import hashlib
import io
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import checkpoint as ckpt
from tinyconv import nn
from tinyconv.checkpoint import CheckpointError
from tinyconv.torch_file import UnsafeFileError

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


def _array(dtype, shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape) * 50
    return (a > 0) if dtype == "bool" else a.astype(dtype)


def _same(a, b):
    a, b = (x.array if isinstance(x, tc.Tensor) else x for x in (a, b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_of_every_dtype_and_shape(tmp_path, dtype):
    big = _array(dtype, (4, 6))
    values = {"0d": tc.tensor(_array(dtype, ())), "empty": tc.tensor(_array(dtype, (0, 3))),
              "plain": tc.tensor(_array(dtype, (2, 3, 4))), "transposed": tc.tensor(big.T),
              "strided": tc.tensor(big[::2, 1::3]), "numpy": _array(dtype, (5,))}
    assert not values["transposed"].array.flags.c_contiguous
    tc.save(values, tmp_path / "x.pt")
    got = tc.load(tmp_path / "x.pt")
    assert list(got) == list(values)
    for k, v in values.items():
        assert type(got[k]) is type(v) and _same(got[k], v), k


def test_round_trip_of_nested_structures(tmp_path):
    w = nn.Parameter(tc.randn(3, 2).array)
    shared = tc.randn(2)
    obj = {
        "model": OrderedDict([("fc.weight", w), ("fc.bias", tc.zeros(2))]),
        "optimizer": {"state": {0: {"momentum_buffer": shared}, 1: {"momentum_buffer": None}},
                      "param_groups": [{"lr": 0.1, "params": [0, 1], "nesterov": False,
                                        "betas": (0.9, 0.999)}]},
        "scheduler": {"last_epoch": 3, "_last_lr": [0.1], "gamma": 0.5},
        "epoch": 7, "loss": float("nan"), "best": float("inf"), "big": 2 ** 70, "name": "zéro",
        "flags": [True, False, None], "tuple": (1, "a", (2.5, [])), "__dunder": 1, "again": shared,
        "np_scalar": np.float32(0.5), "grad": tc.randn(2, requires_grad=True),
    }
    buf = io.BytesIO()
    tc.save(obj, buf)                                  # a file object works too
    tc.save(obj, tmp_path / "ck.pth")
    for got in (tc.load(io.BytesIO(buf.getvalue())), tc.load(tmp_path / "ck.pth")):
        assert type(got["model"]) is OrderedDict and list(got["model"]) == ["fc.weight", "fc.bias"]
        assert type(got["model"]["fc.weight"]) is nn.Parameter and got["model"]["fc.weight"].requires_grad
        assert _same(got["model"]["fc.weight"], w) and _same(got["model"]["fc.bias"], tc.zeros(2))
        assert set(got["optimizer"]["state"]) == {0, 1}               # int keys stay ints
        assert got["optimizer"]["state"][0]["momentum_buffer"] is got["again"]   # one object, once
        assert got["optimizer"]["param_groups"] == obj["optimizer"]["param_groups"]
        assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)      # tuples stay tuples
        assert got["scheduler"] == obj["scheduler"] and got["tuple"] == (1, "a", (2.5, []))
        assert math.isnan(got["loss"]) and got["best"] == math.inf and got["big"] == 2 ** 70
        assert (got["name"], got["flags"], got["__dunder"]) == ("zéro", [True, False, None], 1)
        assert got["epoch"] == 7
        assert got["np_scalar"] == 0.5 and got["grad"].requires_grad and not got["again"].requires_grad


def test_module_optimizer_and_scheduler_state_round_trip(tmp_path):
    tc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    opt = tc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = tc.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        model(tc.randn(5, 4)).sum().backward()
        opt.step()
        sched.step()
    sd = model.state_dict()
    assert all(isinstance(v, tc.Tensor) for v in sd.values()) and sd["0.weight"].size() == (3, 4)
    tc.save({"model": sd, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "c.pt")
    got = tc.load(tmp_path / "c.pt")

    fresh = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    fresh.load_state_dict(got["model"])
    for k, v in model.state_dict().items():
        assert _same(fresh.state_dict()[k], v), k
    opt2 = tc.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(got["optimizer"])
    sched2 = tc.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    sched2.load_state_dict(got["scheduler"])
    x = tc.randn(5, 4)
    for m, o in ((model, opt), (fresh, opt2)):        # both continue identically
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    for k, v in model.state_dict().items():
        assert _same(fresh.state_dict()[k], v), k
    assert sched2.state_dict() == sched.state_dict()


def test_load_state_dict_accepts_tensors_arrays_and_loaded_files(tmp_path):
    m = nn.Linear(3, 2)
    tc.save(m.state_dict(), tmp_path / "m.pt")
    other = nn.Linear(3, 2)
    other.load_state_dict(tc.load(tmp_path / "m.pt"))
    assert _same(other.weight, m.weight)
    other.load_state_dict({k: v.numpy() * 2 for k, v in m.state_dict().items()})    # NumPy arrays
    np.testing.assert_array_equal(other.bias.detach().numpy(), m.bias.detach().numpy() * 2)


def test_unstorable_values_are_refused(tmp_path):
    for bad, where in (({"f": print}, "obj.f"), ({1, 2}, "obj"), ([np.array([object()])], "object")):
        with pytest.raises(CheckpointError, match=where):
            tc.save(bad, tmp_path / "x.pt")
    loop = []
    loop.append(loop)
    with pytest.raises(CheckpointError, match="nested more than 100 levels deep"):
        tc.save(loop, tmp_path / "x.pt")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- map_location


def _forged_device_file(path, device):
    p = ckpt.Packer("test")
    packed = p.pack({"w": tc.arange(3.0)}, "obj")
    packed["w"]["device"] = device
    ckpt.write_archive(str(path), {"format": "tinyconv-save", "version": 1, "object": packed}, p, "test")


def test_map_location(tmp_path):
    tc.save({"w": tc.arange(3.0)}, tmp_path / "a.pt")
    for loc in (None, "cpu", tc.device("cpu"), {"cuda:0": "cpu"}):
        assert tc.load(tmp_path / "a.pt", map_location=loc)["w"].device == "cpu"
    _forged_device_file(tmp_path / "gpu.pt", "cuda:0")     # as if saved on a GPU
    for loc in ("cpu", {"cuda:0": "cpu"}, tc.device("cpu")):
        got = tc.load(tmp_path / "gpu.pt", map_location=loc)["w"]
        assert got.device == "cpu" and got.tolist() == [0.0, 1.0, 2.0]
    if not tc.cuda.is_available():
        with pytest.raises(RuntimeError, match=r"gpu\.pt.*CUDA.*map_location='cpu'"):
            tc.load(tmp_path / "gpu.pt")
    _forged_device_file(tmp_path / "tpu.pt", "xla:0")
    with pytest.raises(CheckpointError, match="device 'xla:0'"):
        tc.load(tmp_path / "tpu.pt")
    with pytest.raises(TypeError, match="a map_location function is not supported"):
        tc.load(tmp_path / "a.pt", map_location=lambda storage, loc: storage)


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("name", ["last.pt", "last.safetensors"])
@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, name, failure):
    path = tmp_path / name
    tc.save({"w": tc.zeros(3)}, path)
    before = path.read_bytes()
    real_fsync = os.fsync

    def fail(fd):                                   # the data is written, then the disk fails
        raise failure
    if name.endswith(".pt"):
        def write_half_then_fail(f, arrays):
            f.write(b"PK\x03\x04" + b"\0" * 1000)    # part of a zip reaches the disk ...
            raise failure                             # ... then the disk fills up / Ctrl-C
        monkeypatch.setattr(ckpt, "_write_npz", write_half_then_fail)
    else:
        monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(failure)):
        tc.save({"w": tc.ones(3)}, path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == before and tc.load(path)["w"].tolist() == [0.0] * 3
    assert os.listdir(tmp_path) == [name]           # no temporary file left behind


# --------------------------------------------------------------------------- safetensors


def test_safetensors_interop_both_ways(tmp_path, torch):
    from safetensors.torch import load_file, save_file

    sd = OrderedDict([("z.weight", tc.randn(3, 2)), ("a.bias", tc.tensor(np.arange(3, dtype=np.int64))),
                      ("m.mask", tc.tensor(np.array([True, False]))), ("s", tc.tensor(np.float64(2.5))),
                      ("t", tc.tensor(np.ones((4, 2), np.float32).T)), ("e", tc.zeros(0, 3))])
    tc.save(sd, tmp_path / "ours.safetensors")
    theirs = load_file(tmp_path / "ours.safetensors")
    assert set(theirs) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(theirs[k].numpy(), v.numpy())
        assert theirs[k].numpy().dtype == v.dtype
    again = tc.load(tmp_path / "ours.safetensors")
    assert list(again) == list(sd)                                   # the state_dict's key order kept
    assert all(_same(again[k], v) for k, v in sd.items())

    tsd = {"w": torch.randn(2, 3), "h": torch.randn(4).half(), "b": torch.randn(5).bfloat16(),
           "i": torch.arange(4, dtype=torch.int32), "d": torch.randn(2, dtype=torch.float64)}
    save_file(tsd, tmp_path / "theirs.safetensors")
    got = tc.load(tmp_path / "theirs.safetensors")
    for k, v in tsd.items():
        want = v.float() if v.dtype == torch.bfloat16 else v        # bfloat16 -> float32, exactly
        assert _same(got[k], want.numpy()), k
    with pytest.raises(CheckpointError, match="holds a dict of name -> tensor"):
        tc.save([tc.zeros(1)], tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="only name -> tensor entries; 'n' is a int"):
        tc.save({"n": 3}, tmp_path / "bad.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "theirs.safetensors").read_bytes()[:-7])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors .*not a valid safetensors"):
        tc.load(tmp_path / "cut.safetensors")


# --------------------------------------------------------------------------- PyTorch files


def test_pytorch_files_every_dtype_views_and_shared_storage(tmp_path, torch):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    lin = torch.nn.Linear(3, 2)
    obj = {"sd": lin.state_dict(), "t": base.t(), "slice": base[1:, 2::2], "base": base,
           "expand": torch.ones(3)[None].expand(1000, 3), "param": torch.nn.Parameter(torch.ones(2)),
           "0d": torch.tensor(3), "empty": torch.zeros(0, 4), "epoch": 4, "names": ("a", None),
           "bf16": torch.randn(5).bfloat16(), "u16": torch.arange(3).to(torch.uint16)}
    for dt in (torch.float16, torch.float64, torch.int8, torch.int16, torch.int32, torch.int64,
               torch.uint8, torch.bool, torch.complex64):
        obj[str(dt)] = (torch.randn(3, 2) * 9).to(dt)
    torch.save(obj, tmp_path / "t.pth")
    got = tc.load(tmp_path / "t.pth", weights_only=True)
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            want = v.detach().float() if v.dtype == torch.bfloat16 else v.detach()
            assert isinstance(got[k], tc.Tensor) and _same(got[k], want.numpy()), k
    assert type(got["sd"]) is OrderedDict and list(got["sd"]) == ["weight", "bias"]
    assert type(got["param"]) is nn.Parameter and got["param"].requires_grad
    assert (got["epoch"], got["names"]) == (4, ("a", None))
    # views of one storage share memory, as in PyTorch; the expanded view is not copied
    assert np.shares_memory(got["t"].array, got["base"].array)
    assert np.shares_memory(got["slice"].array, got["base"].array)
    assert got["expand"].array.strides[0] == 0


def _rezip(src, dst, change=None, drop=()):
    """Copy zip ``src`` to ``dst`` (stored entries), ``change[name](bytes) -> bytes`` applied."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for n in z.namelist():
            if any(n.endswith(d) for d in drop):
                continue
            data = z.read(n)
            for suffix, fn in (change or {}).items():
                if n.endswith(suffix):
                    data = fn(data)
            out.writestr(n, data)
    return dst


def test_pytorch_device_locations_are_mapped(tmp_path, torch):
    torch.save({"w": torch.arange(3.0)}, tmp_path / "a.pth")
    to_gpu = {"data.pkl": lambda d: d.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")}
    gpu = _rezip(tmp_path / "a.pth", tmp_path / "gpu.pth", to_gpu)
    assert tc.load(gpu, map_location={"cuda:0": "cpu"})["w"].tolist() == [0.0, 1.0, 2.0]
    assert tc.load(gpu, map_location="cpu")["w"].device == "cpu"
    if not tc.cuda.is_available():
        with pytest.raises(RuntimeError, match=r"gpu\.pth.*map_location='cpu'"):
            tc.load(gpu)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, torch):
    flag = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))
    torch.save({"weight": torch.zeros(2), "payload": Boom()}, tmp_path / "evil.pth")
    assert b"system" in zipfile.ZipFile(tmp_path / "evil.pth").read("evil/data.pkl")
    with pytest.raises(UnsafeFileError, match=r"evil\.pth asks to run (posix|os|nt)\.system") as e:
        tc.load(tmp_path / "evil.pth")
    assert isinstance(e.value, pickle.UnpicklingError) and "weights_only=True" in str(e.value)
    assert not flag.exists()
    evals = {"data.pkl": lambda d: b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R."}
    _rezip(tmp_path / "evil.pth", tmp_path / "eval.pth", evals)
    with pytest.raises(UnsafeFileError, match="builtins.eval"):
        tc.load(tmp_path / "eval.pth")
    # a BUILD opcode may set attributes of what the pickle made: on a tensor they are dropped
    torch.save(torch.arange(3.0), tmp_path / "t.pth")
    inject = {"data.pkl": lambda d: d[:-1] + b"}X\x05\x00\x00\x00arrayX\x01\x00\x00\x00xsb."}
    _rezip(tmp_path / "t.pth", tmp_path / "build.pth", inject)
    got = tc.load(tmp_path / "build.pth")
    assert type(got.array) is np.ndarray and got.tolist() == [0.0, 1.0, 2.0]
    storage = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x03tQ"
    on_storage = {"data.pkl": lambda d: b"\x80\x02" + storage + b"}X\x03\x00\x00\x00rawK\x01sb."}
    _rezip(tmp_path / "t.pth", tmp_path / "build2.pth", on_storage)
    with pytest.raises(CheckpointError, match=r"build2\.pth .*set attributes of a storage"):
        tc.load(tmp_path / "build2.pth")
    torch.save({"a": np.zeros(3)}, tmp_path / "numpy.pth")       # NumPy arrays need pickle's globals
    with pytest.raises(UnsafeFileError, match=r"numpy\.pth asks to run numpy"):
        tc.load(tmp_path / "numpy.pth")


def test_legacy_and_foreign_files_get_clear_errors(tmp_path, torch):
    torch.save({"w": torch.zeros(2)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"old\.pth .*legacy \(pre-1\.6\).*Re-save it with a current"):
        tc.load(tmp_path / "old.pth")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="never unpickles"):
        tc.load(tmp_path / "p.pkl")
    with warnings.catch_warnings():                  # torch.jit is deprecated, still written
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "script.pt")
    with pytest.raises(CheckpointError, match="TorchScript"):
        tc.load(tmp_path / "script.pt")
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    with pytest.raises(CheckpointError, match="neither tinyconv's format nor PyTorch's"):
        tc.load(tmp_path / "plain.npz")
    np.save(tmp_path / "one.npy", np.zeros(2))
    with pytest.raises(CheckpointError, match="single .npy"):
        tc.load(tmp_path / "one.npy")
    (tmp_path / "text.pt").write_text("hello there, not a file format")
    with pytest.raises(CheckpointError, match=r"text\.pt cannot be loaded: not a tinyconv, PyTorch"):
        tc.load(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        tc.load(tmp_path / "absent.pt")
    ckpt.save_checkpoint(tmp_path / "ck.npz", {"w": np.zeros(2)})
    with pytest.raises(CheckpointError, match="use tinyconv.checkpoint.load_checkpoint"):
        tc.load(tmp_path / "ck.npz")


def test_truncated_and_flipped_files_are_refused_naming_them(tmp_path, torch):
    torch.save({"w": torch.randn(40, 3), "b": torch.zeros(3)}, tmp_path / "t.pth")
    tc.save({"w": tc.randn(40, 3), "n": {"k": [1, 2]}}, tmp_path / "t.pt")
    rng = np.random.default_rng(0)
    for name in ("t.pth", "t.pt"):
        data = (tmp_path / name).read_bytes()
        bad = tmp_path / f"bad_{name}"
        for cut in (10, 100, len(data) // 2, len(data) - 30, len(data) - 1):
            bad.write_bytes(data[:cut])
            with pytest.raises(CheckpointError, match=f"{bad} cannot be loaded"):
                tc.load(bad)
        for _ in range(30):
            flipped = bytearray(data)
            flipped[int(rng.integers(len(data)))] ^= 0xFF
            bad.write_bytes(flipped)
            try:
                got = tc.load(bad)
            except CheckpointError as e:
                assert str(bad) in str(e)
            else:                           # the flip hit bytes nobody reads: data must be intact
                assert got["w"].shape == (40, 3)


def test_forged_pytorch_geometry_and_sizes_are_refused(tmp_path, torch):
    torch.save({"w": torch.arange(12.0).reshape(3, 4)}, tmp_path / "a.pth")
    size_3_4, size_2e30_4 = b"K\x03K\x04\x86", b"J\x00\x00\x00\x40K\x04\x86"    # pickle opcodes
    cases = {  # the tensor's size (3, 4) claimed as (2**30, 4); the storage's numel 12 as 4000
        "reaches element": {"data.pkl": lambda d: d.replace(size_3_4, size_2e30_4)},
        "holds 48 bytes, 16000 expected": {"data.pkl": lambda d: d.replace(b"K\x0ct", b"M\xa0\x0ft")},
        "holds 40 bytes, 48 expected": {"data/0": lambda d: d[:40]},
    }
    for why, change in cases.items():
        forged = _rezip(tmp_path / "a.pth", tmp_path / "forged.pth", change)
        with pytest.raises(CheckpointError, match=rf"forged\.pth .*{why}"):
            tc.load(forged)
    missing = _rezip(tmp_path / "a.pth", tmp_path / "missing.pth", drop=("data/0",))
    with pytest.raises(CheckpointError, match="storage '0' is missing"):
        tc.load(missing)


# --------------------------------------------------------------------------- under a memory limit


def _run(code, tmp_path, limit_mb=None):
    """Run ``code`` in a fresh Python with ``import torch`` blocked (and an address-space limit of
    ``limit_mb`` above what the interpreter already uses); returns its stdout."""
    prelude = textwrap.dedent(f"""
        import resource, sys
        sys.modules["torch"] = None                       # PyTorch is not installed, as far as we know
        import numpy as np
        import tinyconv
        from tinyconv.checkpoint import CheckpointError
        if {limit_mb!r} is not None:
            vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
            limit = vm + {limit_mb!r} * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        def refused(path):
            try:
                tinyconv.load(path)
            except CheckpointError as e:
                print("refused:", e)
            else:
                print("loaded!")
    """)
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_torchvision_alexnet_pth_loads_without_torch(tmp_path, torch):
    from tinyconv.models import alexnet
    tc.manual_seed(0)
    ours = alexnet(variant="torchvision", init="default").eval()
    # a .pth with torchvision's keys and shapes, written by torch (DataParallel "module." keys too)
    torch.save({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()},
               tmp_path / "alexnet.pth")
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with tc.no_grad():
        want = ours(tc.tensor(x)).numpy()
    np.savez(tmp_path / "want.npz", logits=want, **{k: v.numpy() for k, v in ours.state_dict().items()})
    out = _run("""
        sd = tinyconv.load("alexnet.pth")
        want = np.load("want.npz")
        assert all(np.array_equal(sd[k].numpy(), want[k]) and sd[k].dtype == want[k].dtype for k in sd)
        from tinyconv.models import alexnet
        m = alexnet(variant="torchvision").eval()
        m.load_state_dict(sd)
        with tinyconv.no_grad():
            logits = m(tinyconv.tensor(np.load("x.npy"))).numpy()
        assert np.array_equal(logits, want["logits"]), np.abs(logits - want["logits"]).max()
        from tinyconv.cli import main
        assert main(["convert-torch", "alexnet.pth", "alexnet.npz"]) == 0     # the command too
        assert sys.modules.get("torch") is None           # never imported, never needed
        print("ok", len(sd))
    """, tmp_path)
    assert out.split()[-2:] == ["ok", "16"] and out.startswith("wrote alexnet.npz")


def _patch_declared_size(path, entry, size):
    """Make zip entry ``entry`` declare ``size`` uncompressed bytes (local and central headers)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(entry)
    data[info.header_offset + 22: info.header_offset + 26] = size.to_bytes(4, "little")
    name = entry.encode()
    cd = data.find(b"PK\x01\x02")
    while data[cd + 46: cd + 46 + len(name)] != name:
        cd = data.find(b"PK\x01\x02", cd + 4)
    data[cd + 24: cd + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _write_raw_archive(path, meta_bytes, npy_entries):
    """tinyconv's archive layout written by hand: any JSON (correctly hashed), any .npy bytes."""
    with zipfile.ZipFile(path, "w") as out:
        for key, data in npy_entries.items():
            out.writestr(f"{key}.npy", data)
        for key, payload in (("__meta__", meta_bytes),
                             ("__meta_sha256__", hashlib.sha256(meta_bytes).hexdigest().encode())):
            b = io.BytesIO()
            np.save(b, np.frombuffer(payload, np.uint8))
            out.writestr(f"{key}.npy", b.getvalue())


def test_bombs_forgeries_and_deep_nesting_fail_cleanly_under_a_memory_limit(tmp_path, torch):
    torch.save({"w": torch.arange(12.0)}, tmp_path / "a.pth")
    zeros = bytes(64 << 20)                                   # 64 MiB of zeros: ~64 KiB deflated
    # a storage that declares its 48 bytes but whose deflate stream would inflate to 64 MiB
    with zipfile.ZipFile(tmp_path / "a.pth") as z, \
            zipfile.ZipFile(tmp_path / "bomb_small.pth", "w", zipfile.ZIP_DEFLATED) as out:
        for n in z.namelist():
            out.writestr(n, zeros if n.endswith("data/0") else z.read(n))
    _patch_declared_size(tmp_path / "bomb_small.pth", "a/data/0", 48)
    # an entry declaring 2 GiB from 64 KiB compressed: more than deflate can produce
    (tmp_path / "bomb_big.pth").write_bytes((tmp_path / "bomb_small.pth").read_bytes())
    _patch_declared_size(tmp_path / "bomb_big.pth", "a/data/0", 2 ** 31)
    # tinyconv's own format: an array header claiming 2**40 elements in a tiny entry
    tc.save({"w": tc.zeros(4)}, tmp_path / "own.pt")
    with zipfile.ZipFile(tmp_path / "own.pt") as z:
        files = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(np.lib.format.read_array(io.BytesIO(files["__meta__.npy"])).tobytes())
    meta["arrays"]["arr_00000"]["shape"] = [2 ** 40]
    arrays = {"arr_00000": files["arr_00000.npy"].replace(b"(4,)", b"(1099511627776,)")}
    _write_raw_archive(tmp_path / "huge.pt", json.dumps(meta).encode(), arrays)
    # nesting: 100,000 levels in JSON and in a pickle; 150 levels (past MAX_DEPTH, under Python's limit)
    for name, depth in (("deep_json.pt", 100_000), ("deep150.pt", 150)):
        mb = b'{"format": "tinyconv-save", "version": 1, "arrays": {}, "object": ' + \
            b"[" * depth + b"]" * depth + b"}"
        _write_raw_archive(tmp_path / name, mb, {})
    # a truncated file, and a tensor claiming 2**30 elements of a 12-element storage
    (tmp_path / "cut.pth").write_bytes((tmp_path / "a.pth").read_bytes()[:700])
    _rezip(tmp_path / "a.pth", tmp_path / "forged.pth",
           {"data.pkl": lambda d: d.replace(b"K\x0c\x85", b"J\x00\x00\x00\x40\x85", 1)})
    deep_pickle = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    _rezip(tmp_path / "a.pth", tmp_path / "deep.pth", {"data.pkl": lambda d: deep_pickle})
    out = _run("""
        for f in ("bomb_small.pth", "bomb_big.pth", "huge.pt", "deep_json.pt", "deep150.pt", "deep.pth",
                  "cut.pth", "forged.pth"):
            print(f, end=" ")
            refused(f)
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
        print("peak", int(hwm.split()[1]) // 1024)
    """, tmp_path, limit_mb=512)
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert "CRC" in lines["bomb_small.pth"] and "refused" in lines["bomb_small.pth"], lines
    assert "more than deflate can produce (a zip bomb?)" in lines["bomb_big.pth"], lines
    assert "arrays.arr_00000 (<f4[1099511627776]) needs 4398046511104" in lines["huge.pt"], lines
    for f in ("deep_json.pt", "deep150.pt", "deep.pth"):
        assert lines[f].startswith(f"refused: tinyconv.load: {f} cannot be loaded") and \
            "nested more than 100 levels" in lines[f], lines
    assert "cut.pth cannot be loaded" in lines["cut.pth"] and "reaches element" in lines["forged.pth"], lines
    assert int(lines["peak"]) < 400, lines                   # MiB: nothing big was ever allocated
