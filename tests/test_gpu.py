"""Device support and the CUDA kernels on a real GPU.

The first part runs everywhere: ``tinyconv.cuda`` without CuPy or without a GPU (clear
errors naming which is missing) and zero-copy DLPack exchange on the CPU.

Everything marked ``gpu`` runs only where CuPy sees a GPU and is skipped with a reason
elsewhere; ``benchmarks/gpu_suite.sh`` runs it on a lent GPU.  There: every op and every
kernel matches the CPU reference forward and backward, the float64 gradient checks pass
on the GPU, the deterministic kernels are bitwise repeatable, one training step of the
paper AlexNet gives the CPU's loss and gradients, a few hundred GPU steps reduce the
loss, and compute-sanitizer (memcheck, racecheck) runs clean over the kernel tests.

Without a GPU the ``gpu`` tests can be rehearsed on an emulated CuPy whose kernels run
from their g++ builds (``PYTHONPATH=tests/fake_cupy pytest tests/test_gpu.py -m gpu``; see
``tests/fake_cupy/cupy/__init__.py``): that checks the tests and the launchers' GPU path,
not the GPU.
"""
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import tinyconv
import tinyconv.functional as F
from tinyconv import backend

sys.path.insert(0, os.path.dirname(__file__))

GPU_REASON = "CuPy with a CUDA GPU is not available"


# ---------------------------------------------------------------------------- everywhere


def test_cuda_module_answers_without_raising():
    assert isinstance(tinyconv.cuda.is_available(), bool)
    assert tinyconv.cuda.device_count() >= 0
    if not tinyconv.cuda.is_available():
        assert "CuPy" in tinyconv.cuda.why_unavailable()


def test_missing_cupy_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)        # makes `import cupy` fail
    assert tinyconv.cuda.is_available() is False and tinyconv.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="needs CuPy, which is not installed"):
        tinyconv.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        tinyconv.tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        tinyconv.cuda.synchronize()


def test_missing_gpu_is_named(monkeypatch):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert tinyconv.cuda.is_available() is False
    with pytest.raises(RuntimeError, match="CuPy is installed but sees no GPU"):
        tinyconv.tensor([1.0], device="cuda")


def test_missing_gpu_index_is_named(monkeypatch):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(RuntimeError, match=r"'cuda:3': CuPy sees 1 GPU\(s\), cuda:0 ... cuda:0"):
        tinyconv.tensor([1.0]).to("cuda:3")


def test_dlpack_round_trip_shares_memory_on_cpu():
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    x = tinyconv.from_dlpack(t)
    assert x.shape == (2, 3) and x.dtype == np.float32 and x.device == "cpu" and not x.requires_grad
    x.array[0, 0] = 42.0
    assert t[0, 0].item() == 42.0                         # zero-copy: one buffer
    y = tinyconv.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=tinyconv.float64)
    ty = torch.from_dlpack(y)
    ty[1, 1] = -1.0
    assert y.array[1, 1] == -1.0 and ty.dtype == torch.float64
    assert y.__dlpack_device__()[0] == 1                  # kDLCPU


def test_dlpack_errors():
    with pytest.raises(RuntimeError, match="requires grad"):
        tinyconv.tensor([1.0], requires_grad=True).__dlpack__()
    with pytest.raises(TypeError, match="from_dlpack"):
        tinyconv.from_dlpack([1.0, 2.0])


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench_module():
    path = os.path.join(ROOT, "benchmarks", "bench_gpu.py")
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_gpu_dry_run_writes_markdown_and_json(tmp_path, capsys):
    """The GPU benchmark's CPU-side parts: arguments, the rows at AlexNet's shapes, both writers."""
    import json
    bench = _bench_module()
    bench.main(["--dry-run", "--out", str(tmp_path)])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith("-dry-run.json") and files[1].endswith("-dry-run.md")
    doc = json.loads((tmp_path / files[0]).read_text())
    assert doc["dry_run"] is True and [r["precision"] for r in doc["results"]] == ["fp32", "tf32"]
    rows = {r["name"]: r for r in doc["results"][0]["rows"]}
    # convs (5 layers x 3 passes x 2 algorithms, + Winograd for conv2-5), pools, LRNs, ReLU, dropouts,
    # FCs, steps (2 by "auto" + 3 by each explicit algorithm)
    assert len(rows) == 30 + 12 + 6 + 4 + 2 + 4 + 6 + 5
    assert rows["conv1 backward-data (implicit GEMM)"]["algorithm"] == "implicit_gemm"
    assert rows["conv1 backward-data"]["algorithm"] == "im2col_gemm"
    assert "conv1 forward (winograd)" not in rows
    assert rows["conv2 forward (winograd)"]["algorithm"] == "winograd4x4"
    assert {f"train step b128 ({a})" for a in ("im2col_gemm", "implicit_gemm", "winograd4x4")} <= set(rows)
    conv1 = rows["conv1 forward"]
    assert conv1["flops"] == 2 * 128 * 96 * 55 * 55 * 3 * 11 * 11          # about 105 GFLOP
    assert rows["pool1 forward"]["bytes"] == 4 * 128 * 96 * 55 * 55 + 12 * 128 * 96 * 27 * 27
    assert {"train step b128", "train step b256"} <= set(rows)
    md = (tmp_path / files[1]).read_text()
    assert "| conv2 backward-filter |" in md and "Dry run" in md


def test_bench_gpu_arguments():
    bench = _bench_module()
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeat", "5"])             # the median needs at least 20 calls
    a = bench.parse_args(["--precision", "tf32", "--steps", "64"])
    assert a.precision == "tf32" and a.steps == [64] and a.batch == 128


def test_gpu_suite_script_is_valid_bash():
    script = os.path.join(ROOT, "benchmarks", "gpu_suite.sh")
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    r = subprocess.run([bash, "-n", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_gpu_suite_dry_run_runs_on_the_cpu(tmp_path):
    """``TINYCONV_SUITE_DRY_RUN=1 bash benchmarks/gpu_suite.sh``: every phase's CPU side (test
    collection, the sanitizer's small training step on the CPU, the benchmark's writers),
    so that a broken suite shows here and not in the first minutes of a lent GPU."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    env = dict(os.environ, TINYCONV_SUITE_DRY_RUN="1", PYTHON=sys.executable, OUT=str(tmp_path))
    r = subprocess.run([bash, os.path.join(ROOT, "benchmarks", "gpu_suite.sh")], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    files = sorted(p.name for p in tmp_path.iterdir())
    assert {"suite.log", "tests.log", "sanitizer.log", "bench.log"} <= set(files) and len(files) <= 8
    assert any(f.endswith("-dry-run.md") for f in files)
    assert "status 0" in (tmp_path / "suite.log").read_text()
    assert "mean loss" in (tmp_path / "sanitizer.log").read_text()
    assert "test_gpu_kernels_match_cpu_references" in (tmp_path / "tests.log").read_text()


def test_bench_gpu_datasheet_peaks():
    bench = _bench_module()
    assert bench.datasheet_peaks("NVIDIA H200", "tf32") == dict(card="H200", TFLOPs=494.7, GBps=4800.0)
    assert bench.datasheet_peaks("NVIDIA H100 80GB HBM3", "fp32")["GBps"] == 3350.0
    assert bench.datasheet_peaks("NVIDIA H100 PCIe", "fp32")["card"] == "H100 PCIe"
    assert bench.datasheet_peaks("some other card", "fp32") is None
    row = bench.finish_row(dict(bytes=4e9, flops=None, tinyconv=dict(median_ms=1.0)), dict(copy_GBps=3200.0),
                           dict(card="H200", TFLOPs=67.0, GBps=4800.0))
    assert row["tinyconv"]["GBps"] == 4000.0 and row["tinyconv"]["frac_bw"] == 1.25
    assert abs(row["tinyconv"]["frac_peak_bw"] - 4000 / 4800) < 1e-12


# ---------------------------------------------------------------------------- GPU only

@pytest.fixture
def cp(monkeypatch):
    """CuPy, for the tests marked ``gpu``; skips them with the reason where there is no GPU.

    TF32 off for the convolutions too (``backends.cudnn.allow_tf32`` is True by default, as
    PyTorch's): these tests compare with the CPU at FP32 tolerances.
    """
    if not tinyconv.cuda.is_available():
        pytest.skip(GPU_REASON)
    monkeypatch.setattr(tinyconv.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(tinyconv.backends.cuda.matmul, "allow_tf32", False)
    import cupy
    if os.environ.get("TINYCONV_IN_SANITIZER"):
        # no memory pool: each array its own cudaMalloc, so memcheck sees its true bounds
        cupy.cuda.set_allocator(None)
    return cupy


def _launchers():
    return types.SimpleNamespace(**{m: importlib.import_module(f"tinyconv.kernels.{m}_cuda")
                                    for m in ("activation", "conv", "linear", "loss", "lrn", "optim",
                                              "pooling")})


def _refs():
    return types.SimpleNamespace(**{m: importlib.import_module(f"tinyconv.functional.{m}")
                                    for m in ("activation", "conv", "linear", "loss", "lrn", "pooling")})


def _close(got, want, dtype, rtol=None):
    got = got.get() if hasattr(got, "get") else np.asarray(got)
    want = want.get() if hasattr(want, "get") else np.asarray(want)
    rtol = rtol or (1e-5 if dtype == np.float32 else 1e-12)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(np.abs(want).max(initial=0))))


from test_cuda_sources import CONV_CASES, LRN_CASES, POOL_CASES  # noqa: E402

DTYPES = [np.float32, np.float64]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_kernels_match_cpu_references(cp, dtype):
    """Every launcher on CuPy arrays vs the NumPy reference on the same data (the shape grid of
    tests/test_cuda_sources.py)."""
    K, R = _launchers(), _refs()
    rng = np.random.default_rng(0)
    for N, C, H, W, *g in CONV_CASES:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        np.testing.assert_array_equal(K.conv.im2col(cp.asarray(x), *g).get(), R.conv.im2col_reference(x, *g))
        cols = rng.standard_normal(R.conv.im2col_reference(x, *g).shape).astype(dtype)
        _close(K.conv.col2im(cp.asarray(cols), x.shape, *g), R.conv.col2im_reference(cols, x.shape, *g),
               dtype)
    for N, C, H, W, kh, kw, sh, sw, ph, pw in POOL_CASES:
        x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)        # ties
        y, arg = K.pooling.max_pool2d_forward(cp.asarray(x), kh, kw, sh, sw, ph, pw)
        y_ref, arg_ref = R.pooling.max_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw)
        np.testing.assert_array_equal(y.get(), y_ref)
        np.testing.assert_array_equal(arg.get(), arg_ref)
        gy = rng.standard_normal(y_ref.shape).astype(dtype)
        ref = R.pooling.max_pool2d_backward_reference(gy, arg_ref, x.shape)
        gather = K.pooling.max_pool2d_backward(cp.asarray(gy), arg, x.shape, (kh, kw), (sh, sw), (ph, pw))
        _close(gather, ref, dtype)
    for *shape, size in LRN_CASES:
        x = (rng.standard_normal(shape) * 2).astype(dtype)
        y, s = K.lrn.lrn_forward(cp.asarray(x), size, 0.5, 0.75, 1.0)
        y_ref, s_ref = R.lrn.lrn_forward_reference(x, size, 0.5, 0.75, 1.0)
        _close(y, y_ref, dtype)
        _close(s, s_ref, dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        _close(K.lrn.lrn_backward(cp.asarray(gy), cp.asarray(x), cp.asarray(y_ref), cp.asarray(s_ref), size,
                                  0.5, 0.75),
               R.lrn.lrn_backward_reference(gy, x, y_ref, s_ref, size, 0.5, 0.75), dtype)
    x = rng.standard_normal(10_001).astype(dtype)
    x[::5] = 0
    y = K.activation.relu_forward(cp.asarray(x))
    np.testing.assert_array_equal(y.get(), R.activation.relu_forward_reference(x))
    gy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(K.activation.relu_backward(cp.asarray(gy), y).get(),
                                  R.activation.relu_backward_reference(gy, y.get()))
    logits = (rng.standard_normal((64, 1000)) * 20).astype(dtype)
    t = rng.integers(0, 1000, 64)
    loss, probs = K.loss.softmax_cross_entropy_forward(cp.asarray(logits), cp.asarray(t))
    loss_ref, probs_ref = R.loss.softmax_cross_entropy_forward_reference(logits, t)
    _close(loss, loss_ref, dtype)
    _close(probs, probs_ref, dtype)
    gl = rng.standard_normal(64).astype(dtype)
    _close(K.loss.softmax_cross_entropy_backward(cp.asarray(gl), probs, cp.asarray(t)),
           R.loss.softmax_cross_entropy_backward_reference(gl, probs.get(), t), dtype)
    yl = rng.standard_normal((128, 4096)).astype(dtype)
    b = rng.standard_normal(4096).astype(dtype)
    np.testing.assert_array_equal(K.linear.bias_add(cp.asarray(yl), cp.asarray(b)).get(), yl + b)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_implicit_gemm_matches_reference(cp, dtype):
    """The implicit-GEMM kernels on the GPU: the shape grid of tests/test_cuda_sources.py plus the
    paper's conv1 and conv2 at batch 2 (many tiles, 16 phases, split-K), within the rounding bound
    of a sum of n products against float64 im2col + einsum."""
    import test_cuda_sources as T
    from tinyconv.kernels import conv_implicit_gemm_cuda as IG
    rng = np.random.default_rng(0)
    cases = T.IGEMM_CASES + [(2, 3, 227, 227, 96, 11, 11, 4, 4, 0, 0, 1, 1, 1),
                             (2, 96, 27, 27, 256, 5, 5, 1, 1, 2, 2, 1, 1, 2)]
    for case in cases:
        xs, ws, geo = T._igemm_geometry(case)
        x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
        y = IG.forward(cp.asarray(x), cp.asarray(w), None, **geo).get()
        gy = rng.standard_normal(y.shape).astype(dtype)
        ref = T.igemm_references(x, w, gy, **geo)
        T._assert_within(y, *ref["forward"], f"{case} forward")
        gx = IG.backward_data(cp.asarray(gy), cp.asarray(w), xs, **geo).get()
        T._assert_within(gx, *ref["backward-data"], f"{case} backward-data")
        T._assert_within(IG.backward_filter(cp.asarray(gy), cp.asarray(x), ws, **geo).get(),
                         *ref["backward-filter"], f"{case} backward-filter")


@pytest.mark.gpu
@pytest.mark.parametrize("flag", ["cudnn", "matmul"])
def test_gpu_tf32_flags_change_the_gemms(cp, monkeypatch, flag):
    """On the GPU: with its TF32 flag, conv2d (cudnn.allow_tf32) / linear (cuda.matmul.allow_tf32)
    differ from strict FP32 by TF32's rounding (about 2^-11 relative), not more; float64 never."""
    rng = np.random.default_rng(0)
    if flag == "cudnn":
        arrays = [rng.standard_normal((8, 16, 13, 13)), rng.standard_normal((32, 16, 3, 3))]
        op = lambda x, w: F.conv2d(x, w, padding=1)                     # noqa: E731
        where = tinyconv.backends.cudnn
    else:
        arrays = [rng.standard_normal((64, 512)), rng.standard_normal((256, 512))]
        op, where = F.linear, tinyconv.backends.cuda.matmul

    def run(dtype, allow):
        monkeypatch.setattr(where, "allow_tf32", allow)
        ins = [tinyconv.tensor(a.astype(dtype), requires_grad=True, device="cuda") for a in arrays]
        y = op(*ins)
        y.backward(tinyconv.tensor(np.ones(y.shape, dtype), device="cuda"))
        return [t.array.get() for t in [y] + [i.grad for i in ins]]

    strict, fast = run(np.float32, False), run(np.float32, True)
    for s, f in zip(strict, fast):
        scale = np.abs(s).max()
        assert np.abs(f - s).max() > 1e-6 * scale          # TF32 was used (an H100 rounds the inputs)
        np.testing.assert_allclose(f, s, rtol=1e-2, atol=1e-2 * scale)
    for a, b in zip(run(np.float64, False), run(np.float64, True)):
        np.testing.assert_array_equal(a, b)                 # dgemm: no TF32 for doubles


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_ignore_index_and_bad_targets_on_gpu(cp, dtype):
    """The GPU's fused path handles ignore_index in its kernels and checks the targets on the
    device: the same loss and gradient as the CPU, and a bad target raised at the next read."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((6, 5)).astype(dtype)
    t = np.array([1, -100, 4, 0, -100, 2])
    for reduction in ("mean", "sum", "none"):
        outs = {}
        for dev in ("cpu", "cuda"):
            x = tinyconv.tensor(z, requires_grad=True, device=dev)
            y = F.cross_entropy(x, tinyconv.tensor(t, device=dev), reduction=reduction)
            y.backward(tinyconv.ones_like(y))
            outs[dev] = [backend.to_device(a, "cpu") for a in (y.array, x.grad.array)]
        for got, want in zip(outs["cuda"], outs["cpu"]):
            _close(got, want, dtype)
    x = tinyconv.tensor(z, device="cuda")
    bad = F.cross_entropy(x, tinyconv.tensor(np.array([1, 2, 5, 0, 3, 9]), device="cuda"))
    with pytest.raises(ValueError, match=r"cross_entropy: target 5 is out of range for 5 classes"):
        bad.item()
    assert F.cross_entropy(x, tinyconv.tensor(np.array([1, 2, 3, 0, 3, 4]), device="cuda")).item() > 0


@pytest.mark.gpu
def test_gpu_dropout_mask_matches_its_definition(cp):
    from test_cuda_sources import _keep_numpy
    K = _launchers()
    tinyconv.manual_seed(0)
    seed, offset = tinyconv.random.philox_seed_offset(100_003)
    x = cp.asarray(np.random.default_rng(1).standard_normal(100_003).astype(np.float32) + 3)
    y, mask = K.activation.dropout_forward(x, 0.5, seed, offset)
    assert (mask.seed, mask.offset) == (seed, offset)
    keep = _keep_numpy(x.size, 0.5, seed, offset)
    np.testing.assert_array_equal(mask.keep().get(), keep)
    np.testing.assert_array_equal(y.get(), np.where(keep, x.get() * np.float32(2.0), 0))
    gx = K.activation.dropout_backward(x, mask, 0.5)
    np.testing.assert_array_equal(gx.get(), y.get())


@pytest.mark.gpu
def test_gpu_deterministic_kernels_repeat_bitwise(cp):
    K = _launchers()
    rng = np.random.default_rng(2)
    cols = cp.asarray(rng.standard_normal((8, 96 * 9, 27 * 27)).astype(np.float32))
    a = K.conv.col2im(cols, (8, 96, 27, 27), 3, 3, 1, 1, 1, 1)
    b = K.conv.col2im(cols, (8, 96, 27, 27), 3, 3, 1, 1, 1, 1)
    assert bool((a == b).all())
    x = cp.asarray(rng.standard_normal((8, 96, 55, 55)).astype(np.float32))
    y, arg = K.pooling.max_pool2d_forward(x, 3, 3, 2, 2, 0, 0)
    gy = cp.asarray(rng.standard_normal(y.shape).astype(np.float32))
    g1 = K.pooling.max_pool2d_backward(gy, arg, x.shape, (3, 3), (2, 2), (0, 0))
    g2 = K.pooling.max_pool2d_backward(gy, arg, x.shape, (3, 3), (2, 2), (0, 0))
    assert bool((g1 == g2).all())


def _op_cases(rng, dtype):
    """(name, fn, inputs as numpy arrays): each op of the engine with a small input."""
    x4 = rng.standard_normal((2, 4, 9, 9)).astype(dtype)
    return [
        ("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
         [x4, rng.standard_normal((6, 4, 3, 3)).astype(dtype), rng.standard_normal(6).astype(dtype)]),
        ("conv2d_groups", lambda x, w: F.conv2d(x, w, None, stride=1, padding=2, groups=2),
         [x4, rng.standard_normal((4, 2, 5, 5)).astype(dtype)]),
        ("max_pool2d", lambda x: F.max_pool2d(x, 3, stride=2), [x4]),
        ("max_pool2d_pad", lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), [x4]),
        ("lrn", lambda x: F.local_response_norm(x, 5, alpha=0.5, beta=0.75, k=2.0), [x4]),
        ("relu", F.relu, [x4]),
        ("linear", F.linear, [rng.standard_normal((3, 7)).astype(dtype),
                              rng.standard_normal((5, 7)).astype(dtype),
                              rng.standard_normal(5).astype(dtype)]),
        ("cross_entropy", lambda z: F.cross_entropy(z, tinyconv.tensor(np.array([1, 0, 4]), device=z.device)),
         [rng.standard_normal((3, 5)).astype(dtype)]),
    ]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_op_matches_cpu_forward_and_backward(cp, dtype):
    rng = np.random.default_rng(3)
    for name, fn, arrays in _op_cases(rng, dtype):
        outs = {}
        for dev in ("cpu", "cuda"):
            ins = [tinyconv.tensor(a, requires_grad=True, device=dev) for a in arrays]
            with tinyconv.use_kernels("reference" if dev == "cpu" else "fast"):
                y = fn(*ins)
                gy = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
                y.backward(tinyconv.tensor(gy, device=dev))
            outs[dev] = [y.array] + [t.grad.array for t in ins]
            assert all(backend.device_of(a) == dev for a in outs[dev]), name
        for got, want in zip(outs["cuda"], outs["cpu"]):
            _close(got, want, dtype, rtol=2e-5 if dtype == np.float32 else 1e-11)


@pytest.mark.gpu
def test_gpu_gradchecks_float64(cp):
    rng = np.random.default_rng(5)
    for name, fn, arrays in _op_cases(rng, np.float64):
        if name in ("max_pool2d", "max_pool2d_pad", "relu"):
            arrays = [a + 0.01 * np.arange(a.size).reshape(a.shape) for a in arrays]   # no ties or kinks
        ins = [tinyconv.tensor(a, requires_grad=True, device="cuda") for a in arrays]
        assert tinyconv.gradcheck(fn, ins), name


def _paper_alexnet_step(device, state, x, target, dtype=np.float32):
    from tinyconv.models import alexnet
    model = alexnet(variant="paper")
    model.load_state_dict(state)
    model.to(device)
    model.to(dtype)
    model.eval()            # dropout off: the two devices draw different masks
    xt = tinyconv.tensor(x.astype(dtype), device=device)
    loss = F.cross_entropy(model(xt), tinyconv.tensor(target, device=device))
    loss.backward()
    grads = {k: backend.to_device(p.grad.array, "cpu") for k, p in model.named_parameters()}
    return loss.item(), grads


@pytest.mark.gpu
def test_paper_alexnet_training_step_same_on_gpu_and_cpu(cp):
    """Same weights and batch, float64: the same loss and every parameter's gradient on both devices.

    The weights use the PyTorch-style init: with the paper's N(0, 0.01) weights and biases of
    1 the activations are nearly constant and max-pool windows hold near-ties.  The float32
    step is checked layer by layer below, not as a whole.
    """
    from tinyconv.models import alexnet
    tinyconv.manual_seed(0)
    state = alexnet(variant="paper", init="default").state_dict()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 227, 227)).astype(np.float32)
    target = np.array([3, 997])
    tol = 1e-10
    loss_cpu, g_cpu = _paper_alexnet_step("cpu", state, x, target, np.float64)
    loss_gpu, g_gpu = _paper_alexnet_step("cuda", state, x, target, np.float64)
    assert abs(loss_gpu - loss_cpu) <= tol * abs(loss_cpu)
    for k in g_cpu:
        g, ref = g_gpu[k], g_cpu[k]
        err = np.linalg.norm(g - ref) / max(np.linalg.norm(ref), 1e-30)
        assert err < 10 * tol, (k, err)


def _paper_alexnet_layers(model, target):
    """The paper net as (name, module or function) in the order forward runs them, loss last."""
    layers = [(f"features.{i}", m) for i, m in enumerate(model.features)]
    layers.append(("flatten", lambda h: h.reshape(h.shape[0], -1)))
    layers += [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    layers.append(("cross_entropy", lambda h: F.cross_entropy(h, tinyconv.tensor(target, device=h.device))))
    return layers


@pytest.mark.gpu
@pytest.mark.parametrize("cpu_algorithm,cuda_algorithm", [("im2col", "im2col_gemm"),
                                                          ("winograd4x4", "winograd4x4")])
def test_paper_alexnet_layers_same_on_gpu_and_cpu_float32(cp, cpu_algorithm, cuda_algorithm, monkeypatch):
    """Each layer of the paper AlexNet in float32, fed the same input and upstream gradient on both devices.

    Both devices run one convolution algorithm (im2col, then Winograd F(4x4) for conv2-5), so
    they differ only in the order of float32 sums.

    A whole float32 step is not comparable entry by entry: wherever a ReLU input or a
    max-pool window's top two lie within float32 rounding of each other, the two devices
    may decide differently, and that unit's whole gradient moves.  Seen under the emulated
    CuPy: one ReLU at conv3's output moved the gradients of conv3, conv2 and conv1 by 1.5e-3
    while every other parameter agreed to 5e-7.  Fed the GPU's own activations, each layer
    makes the same decisions on both devices and must agree to float32 rounding (the
    float64 step above checks how they compose).
    """
    from tinyconv.models import alexnet
    monkeypatch.setattr(tinyconv.backends, "conv_algorithm", cpu_algorithm)
    monkeypatch.setattr(tinyconv.backends.cuda, "conv_algorithm", cuda_algorithm)
    tinyconv.manual_seed(0)
    nets = {"cpu": alexnet(variant="paper", init="default").eval()}
    nets["cuda"] = alexnet(variant="paper").eval()
    nets["cuda"].load_state_dict(nets["cpu"].state_dict())
    nets["cuda"].to("cuda")
    target = np.array([3, 997])
    layers = {dev: _paper_alexnet_layers(net, target) for dev, net in nets.items()}
    h = np.random.default_rng(6).standard_normal((2, 3, 227, 227)).astype(np.float32)
    for i, (name, _) in enumerate(layers["cpu"]):
        got = {}
        for dev in ("cpu", "cuda"):
            fn = layers[dev][i][1]
            t = tinyconv.tensor(h, device=dev, requires_grad=True)
            y = fn(t)
            gy = np.random.default_rng(i).standard_normal(y.shape).astype(np.float32)
            y.backward(tinyconv.tensor(gy, device=dev))
            params = list(fn.parameters()) if hasattr(fn, "parameters") else []
            got[dev] = [backend.to_device(a.array, "cpu") for a in [y, t.grad] + [p.grad for p in params]]
        for which, (g, ref) in enumerate(zip(got["cuda"], got["cpu"])):
            try:
                _close(g, ref, np.float32, rtol=2e-5)
            except AssertionError as e:
                raise AssertionError(f"{name}: {['output', 'input grad', 'weight grad', 'bias grad'][which]}"
                                     f"\n{e}") from None
        h = got["cuda"][0]                     # the next layer starts from the GPU's output


@pytest.mark.gpu
def test_a_few_hundred_gpu_steps_reduce_the_loss(cp):
    """300 SGD steps on one fixed batch of 32 random images and labels: the net memorizes it.

    Training runs with dropout (the Philox kernel), so the per-step loss is noisy; the check
    is the loss in eval mode before and after.  The same settings on the CPU (fast kernels):
    eval loss 2.88 before, 4e-7 after (training loss 5.27 at step 0, 0.70 at 100).
    """
    from tinyconv.models import alexnet
    tinyconv.manual_seed(1)
    model = alexnet(variant="small32").to("cuda")
    opt = tinyconv.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(7)
    x = tinyconv.tensor(rng.standard_normal((32, 3, 32, 32)).astype(np.float32), device="cuda")
    t = tinyconv.tensor(rng.integers(0, 10, 32), device="cuda")

    def eval_loss():
        model.eval()
        with tinyconv.no_grad():
            loss = F.cross_entropy(model(x), t).item()
        model.train()
        return loss

    before = eval_loss()
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = eval_loss()
    assert all(np.isfinite(losses)) and np.isfinite(after)
    assert after < 0.5 * before, (before, after, losses[::25])
    assert all(backend.device_of(p.array) == "cuda" for p in model.parameters())
    for state in opt.state.values():
        assert backend.device_of(state["momentum_buffer"]) == "cuda"


@pytest.mark.gpu
def test_dlpack_with_torch_on_gpu(cp):
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    x = tinyconv.from_dlpack(t)
    assert x.device == "cuda:0"
    x.array[0, 0] = 7.0
    torch.cuda.synchronize()
    assert t[0, 0].item() == 7.0
    back = torch.from_dlpack(tinyconv.tensor(np.ones((2, 2), np.float32), device="cuda"))
    assert back.is_cuda and back.sum().item() == 4.0


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("tool", ["memcheck", "racecheck"])
def test_compute_sanitizer_clean(cp, tool):
    exe = shutil.which("compute-sanitizer") or next(
        (p for p in ("/usr/local/cuda/bin/compute-sanitizer",) if os.path.exists(p)), None)
    if exe is None:
        pytest.skip("compute-sanitizer is not installed")
    if os.environ.get("TINYCONV_IN_SANITIZER"):
        pytest.skip("already inside compute-sanitizer")
    env = dict(os.environ, TINYCONV_IN_SANITIZER="1")
    cmd = [exe, "--tool", tool, "--error-exitcode", "99", sys.executable, "-m", "pytest", "-q", "-x",
           "-p", "no:cacheprovider", __file__, "-k",
           "kernels_match_cpu_references and float32 or dropout_mask_matches or deterministic_kernels"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=540)
    assert r.returncode == 0, (f"compute-sanitizer {tool} failed ({r.returncode}):\n"
                               f"{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
