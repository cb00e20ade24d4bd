"""A GPU training step on the fake CuPy (tests/fake_cupy): what it makes the host wait for.

The fake runs each CUDA kernel's g++ build on NumPy memory, and counts what on a real GPU
would be a device-to-host read, a synchronisation, or a copy from pageable memory
(``cupy.counts``; see tests/fake_cupy/cupy/__init__.py).  A few steps of the training
loop (tinyconv/train.py, small28 on mnist5k) must do none of these between two logging
points; the loop reads its loss and accuracy once at each.  Also checked there: every
kernel is built once (a second step builds no new RawKernel), a bad class target is
reported at the next host read with the CPU's message, and the loss is the CPU's.

Each check runs in a subprocess, where ``import cupy`` finds the fake.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_on_fake_cupy(code, tmp_path, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "tests", "fake_cupy"), ROOT]))
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=str(tmp_path))
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


STEPS = '''
import collections, json, shutil
import numpy as np
import cupy
import tinyconv
import tinyconv.functional as F
from tinyconv import train as TR

if shutil.which("g++") is None:
    print(json.dumps({"skip": "g++ is not installed"}))
    raise SystemExit(0)
TR.LOG_EVERY = 4
# strict FP32 on both sides: the fake rounds GEMM inputs to TF32 as an H100 would, when allowed
tinyconv.backends.cudnn.allow_tf32 = tinyconv.backends.cuda.matmul.allow_tf32 = False
def config(device):
    return TR.TrainConfig(device=device, variant="small28", data="mnist5k", batch_size=8, epochs=1,
                          max_steps_per_epoch=6, progress=False, plots=False, out="run-" + device,
                          num_workers=0, eval_limit=16, dropout=0.0)
run = TR._Run(config("cuda"), None)
marks = []                                        # the counters after each optimizer step
step = run.opt.step
def counted(*a, **k):
    out = step(*a, **k)
    marks.append(dict(cupy.counts))
    return out
run.opt.step = counted
logged = []
run.callback = lambda event, info: logged.append((info["step"], dict(cupy.counts)))
cupy.counts.clear()
loss, error, seen, _ = run.train_epoch(0)
end = dict(cupy.counts)
cpu_loss = TR._Run(config("cpu"), None).train_epoch(0)[0]

# a bad target: no error at the op, the CPU's message at the next host read
with tinyconv.no_grad():
    logits = run.model(tinyconv.tensor(np.zeros((2, 1, 28, 28), np.float32), device="cuda"))
before = dict(cupy.counts)
bad = F.cross_entropy(logits, tinyconv.tensor(np.array([3, 12]), device="cuda"))
quiet = dict(cupy.counts)
try:
    bad.item()
    message = None
except ValueError as e:
    message = str(e)
with tinyconv.use_kernels("reference"):              # the check in CuPy ops, not the kernel
    ref_bad = F.nll_loss(F.log_softmax(logits, 1), tinyconv.tensor(np.array([-5, 3]), device="cuda"))
    try:
        ref_bad.item()
        ref_message = None
    except ValueError as e:
        ref_message = str(e)
ignored = F.cross_entropy(logits, tinyconv.tensor(np.array([3, -100]), device="cuda")).item()
alone = F.cross_entropy(logits[:1], tinyconv.tensor(np.array([3]), device="cuda")).item()
print(json.dumps({"marks": marks, "logged": logged, "end": end, "loss": loss, "cpu_loss": cpu_loss,
                  "seen": seen, "before": before, "quiet": quiet, "message": message,
                  "ignored": ignored, "alone": alone, "ref_message": ref_message}))
'''


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    r = run_on_fake_cupy(STEPS, tmp_path_factory.mktemp("fake_gpu_steps"))
    if "skip" in r:
        pytest.skip(r["skip"])
    return r


def _diff(a, b, keys=("d2h", "sync", "h2d_pageable", "get_function")):
    return {k: b.get(k, 0) - a.get(k, 0) for k in keys}


def test_gpu_training_steps_never_wait_for_the_device(steps):
    r = steps
    marks, logged = r["marks"], r["logged"]
    assert len(marks) == 6 and r["seen"] == 48
    # steps 2-4 and 6 lie between logging points (after step 4, and the epoch's end)
    for i in (1, 2, 3, 5):
        d = _diff(marks[i - 1], marks[i])
        assert d == {"d2h": 0, "sync": 0, "h2d_pageable": 0, "get_function": 0}, (i + 1, d)
    # the batches come from pinned buffers: two copies (images, labels) per step
    assert marks[-1].get("h2d_pinned", 0) >= 12 and marks[-1].get("h2d_pageable", 0) == 0
    # the first step built every kernel it uses, once; the others reuse them
    assert marks[0]["get_function"] > 5 and marks[-1]["get_function"] == marks[0]["get_function"]
    # logging points after steps 4 and 6; one read each (the deferred target checks in one more)
    assert [s for s, _ in logged] == [4, 6]
    assert logged[0][1]["d2h"] - marks[3].get("d2h", 0) <= 2
    assert r["end"].get("sync", 0) == 0 and r["end"]["d2h"] <= 5
    # the same training as on the CPU (dropout off; float32 sums in another order)
    assert abs(r["loss"] - r["cpu_loss"]) <= 1e-4 * abs(r["cpu_loss"]), (r["loss"], r["cpu_loss"])


def test_gpu_bad_target_is_reported_at_the_next_read(steps):
    r = steps
    assert _diff(r["before"], r["quiet"])["d2h"] == 0                  # the op itself read nothing
    assert r["message"] == ("cross_entropy: target 12 is out of range for 10 classes "
                            "(expected 0 <= target < 10 or target == ignore_index (-100))")
    assert r["ref_message"] == ("nll_loss: target -5 is out of range for 10 classes "
                                "(expected 0 <= target < 10 or target == ignore_index (-100))")
    assert r["ignored"] == pytest.approx(r["alone"], rel=1e-6)          # ignore_index: the mean of the rest


CONV_ALGORITHMS = '''
import json, shutil
import numpy as np
import cupy
import tinyconv
import tinyconv.functional as F
from tinyconv.functional.conv import cuda_conv_algorithm

if shutil.which("g++") is None:
    print(json.dumps({"skip": "g++ is not installed"}))
    raise SystemExit(0)
runner = cupy._host_runner()
rng = np.random.default_rng(0)
# (x, w, stride, padding, groups): AlexNet's conv1 and conv2 made small
CASES = [((2, 3, 35, 35), (8, 3, 11, 11), 4, 2, 1), ((2, 8, 9, 9), (12, 4, 5, 5), 1, 2, 2)]
out = {"auto": {}, "cases": []}
import tinyconv.functional.conv as CV
for rule in (False, True):
    CV.AUTO_IMPLICIT_GEMM = rule
    for tf32 in (False, True):
        tinyconv.backends.cudnn.allow_tf32 = tf32
        out["auto"][f"{rule} {tf32}"] = [cuda_conv_algorithm(np.dtype(d)) for d in ("float32", "float64")]
CV.AUTO_IMPLICIT_GEMM = False
tinyconv.backends.cudnn.allow_tf32 = False
for xs, ws, s, p, g in CASES:
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    # the columns conv2d's im2col path would make: (G, C/G*kh*kw, N*OH*OW)
    OH = (xs[2] + 2 * p - ws[2]) // s + 1
    cols_bytes = xs[1] * ws[2] * ws[3] * xs[0] * OH * OH * 8
    case = {"cols_bytes": cols_bytes}
    for algo in ("implicit_gemm", "im2col_gemm", "cpu"):
        device = "cpu" if algo == "cpu" else "cuda"
        if algo != "cpu":
            tinyconv.backends.cuda.conv_algorithm = algo
        xt, wt, bt = (tinyconv.tensor(a, device=device, requires_grad=True) for a in (x, w, b))
        gy = tinyconv.tensor(np.linspace(-1, 1, 2 * ws[0] * OH * OH).reshape(2, ws[0], OH, OH), device=device)
        cupy.counts.clear()
        cupy.allocations.clear()
        calls, blas = len(runner.calls), len(cupy.cuda.cublas.calls)
        y = F.conv2d(xt, wt, bt, stride=s, padding=p, groups=g)
        (y * gy).sum().backward()
        counts = dict(cupy.counts)                      # before the reads below
        res = [t.array if device == "cpu" else t.array.get() for t in (y, xt.grad, wt.grad, bt.grad)]
        case[algo] = dict(
            counts=counts, kernels=sorted({e.split("<")[0] for _, e, _, _ in runner.calls[calls:]}),
            blas=len(cupy.cuda.cublas.calls) - blas,
            max_alloc=max((n for _, _, n in cupy.allocations), default=0),
            total_alloc=sum(n for _, _, n in cupy.allocations), results=[r.tolist() for r in res])
    out["cases"].append(case)
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def conv_algorithms(tmp_path_factory):
    r = run_on_fake_cupy(CONV_ALGORITHMS, tmp_path_factory.mktemp("fake_gpu_conv"))
    if "skip" in r:
        pytest.skip(r["skip"])
    return r


def test_auto_conv_algorithm_is_implicit_gemm_for_strict_fp32_only(conv_algorithms):
    # [float32, float64] under "AUTO_IMPLICIT_GEMM allow_tf32": im2col everywhere while the rule is
    # off (today); with it on, the implicit GEMM for strict-FP32 float32 only
    assert conv_algorithms["auto"] == {"False False": ["im2col_gemm", "im2col_gemm"],
                                       "False True": ["im2col_gemm", "im2col_gemm"],
                                       "True False": ["implicit_gemm", "im2col_gemm"],
                                       "True True": ["im2col_gemm", "im2col_gemm"]}


def test_implicit_gemm_conv_step_makes_no_column_matrix_and_no_host_wait(conv_algorithms):
    """conv2d forward + backward with implicit_gemm: only the igemm kernels, no cuBLAS call, no
    array near the size of the columns (im2col_gemm's own step makes them, as the contrast),
    nothing read back or waited for; the numbers are the CPU's (float64, to rounding)."""
    for case in conv_algorithms["cases"]:
        ig, im = case["implicit_gemm"], case["im2col_gemm"]
        assert set(ig["kernels"]) <= {"igemm_forward_narrow_kernel", "igemm_backward_data_narrow_kernel",
                                      "igemm_backward_filter_narrow_kernel", "igemm_splitk_sum_kernel"}
        assert {"igemm_forward_narrow_kernel", "igemm_backward_data_narrow_kernel",
                "igemm_backward_filter_narrow_kernel"} <= set(ig["kernels"])
        assert ig["blas"] == 0 and im["blas"] > 0
        assert {"im2col_kernel", "col2im_kernel"} <= set(im["kernels"])
        # nothing of column size; all of it together (y, gx, gW, partial sums) less than one column matrix
        assert im["max_alloc"] >= case["cols_bytes"] / 2
        assert ig["max_alloc"] < case["cols_bytes"] / 4 and ig["total_alloc"] < case["cols_bytes"]
        assert ig["counts"].get("d2h", 0) == 0 and ig["counts"].get("sync", 0) == 0
        for got, want in zip(ig["results"], case["cpu"]["results"]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
        for got, want in zip(im["results"], case["cpu"]["results"]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
