"""The CUDA C kernels, proven without a GPU.

1. nvcc compiles every ``kernels/*.cu`` (every template instance) for sm_80 and sm_90 with
   warnings as errors.
2. NVRTC compiles every source exactly as the CuPy launcher hands it over (the same text,
   options and name expressions, plus the options CuPy adds itself), so a source nvcc
   accepts but NVRTC rejects fails here.
3. g++ compiles every source as C++ with ``kernels/cuda_host_emulation.h``; the launchers
   in ``kernels/*_cuda.py`` then run on NumPy arrays through
   ``cuda_loader.use_host_emulation`` and their results are compared with the NumPy
   references of ``tinyconv.functional`` over a grid of shapes, edges included.  The
   runner also checks every argument against the kernel's C parameter list (a launcher
   passing ``np.int64`` for an ``int`` would misalign the GPU's parameter buffer) and
   poisons every output buffer first, so an element no thread writes shows up.
4. All of 3. once more with the host builds under AddressSanitizer (libasan preloaded, so
   NumPy's buffers get red zones): compute-sanitizer's memcheck on the CPU, which fails a
   kernel that touches one element outside its arrays even where its results come out right.

Missing tools skip with a reason, except under ``CI=true``, where they fail.
"""
import ctypes
import importlib
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv.kernels import activation_cuda, conv_cuda, conv_implicit_gemm_cuda, cuda_loader, linear_cuda
from tinyconv.kernels import loss_cuda, lrn_cuda
from tinyconv.kernels import optim_cuda, pooling_cuda, winograd_cuda
from tinyconv.optim import adam_update_reference

sys.path.insert(0, os.path.dirname(__file__))
from _nvrtc import NVRTC, find_libnvrtc  # noqa: E402

# the reference modules (by module path: tinyconv.functional.linear is also a function name)
A, CV, LI, LO, LR, PO = (importlib.import_module(f"tinyconv.functional.{m}")
                         for m in ("activation", "conv", "linear", "loss", "lrn", "pooling"))

KDIR = cuda_loader.KERNEL_DIR
FAMILIES = sorted(f[:-3] for f in os.listdir(KDIR) if f.endswith(".cu"))
ARCHS = ("sm_80", "sm_90")
#: what CuPy 14's compiler appends to a RawModule's options, besides -arch=sm_XX (read from
#: cupy/cuda/compiler.py); its --pch (precompiled headers) only changes the log, and the -I
#: of CuPy's own headers is unused by sources that include nothing
CUPY_ADDED_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
#: kernels that read their output buffer (updated in place, or accumulated into zeros): not poisoned
IN_PLACE = {"bias_add_kernel", "sgd_update_kernel", "adam_update_kernel",
            "winograd_input_adjoint_tiles_kernel"}


def need(ok, reason):
    """Skip when a tool is missing; fail instead under CI=true, where it must be there."""
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (required under CI=true)")
        pytest.skip(reason)


def test_every_family_has_source_and_launcher():
    assert FAMILIES == ["activation", "conv", "conv_implicit_gemm", "linear", "loss", "lrn", "optim",
                        "pooling", "winograd"]
    for fam in FAMILIES:
        names = cuda_loader.kernel_names(fam)
        src = cuda_loader.source(fam)
        assert "#include" not in src.replace("#include <", ""), f"{fam}: local include not inlined"
        for name in names:
            assert re.search(rf"__global__ void {name}\(", src), f"{fam}.cu has no kernel {name}"


# ---------------------------------------------------------------------------- 1. nvcc

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)


def _instantiating_unit():
    """One .cu including every family and taking the address of every kernel instance.

    One translation unit, so nvcc runs once (its host pass dominates the time).
    """
    lines = []
    for fam in FAMILIES:
        refs = ", ".join(f"(void*)&{e}" for e in cuda_loader.name_expressions(fam))
        lines += [f'#include "{fam}.cu"', f"void* tinyconv_instances_{fam}[] = {{{refs}}};"]
    return "\n".join(lines) + "\n"


def test_nvcc_compiles_every_source_with_warnings_as_errors(tmp_path):
    need(NVCC, "nvcc (the CUDA compiler) is not installed")
    unit = tmp_path / "all_kernels.cu"
    unit.write_text(_instantiating_unit())
    cmd = [NVCC, "-std=c++17", "-I", KDIR, "-c", str(unit), "-o", str(tmp_path / "all_kernels.o"),
           "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror"]
    for a in ARCHS:
        cmd += ["-gencode", f"arch=compute_{a[3:]},code={a}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"nvcc failed:\n{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    # every instance really was compiled, for each architecture
    dump = shutil.which("cuobjdump", path=os.path.dirname(os.path.realpath(NVCC)))
    if dump:
        listing = subprocess.run([dump, "--list-elf", str(tmp_path / "all_kernels.o")],
                                 capture_output=True, text=True).stdout
        for a in ARCHS:
            assert a in listing, f"no {a} code in the object:\n{listing}"


def test_nvcc_check_has_teeth(tmp_path):
    """A warning (here an unused variable in device code) fails the same command."""
    need(NVCC, "nvcc (the CUDA compiler) is not installed")
    unit = tmp_path / "warn.cu"
    unit.write_text("__global__ void k(float* y) { int unused = 3; y[0] = 1.0f; }\n")
    cmd = [NVCC, "-c", str(unit), "-o", str(tmp_path / "w.o"), "-arch=sm_90", "-Werror", "all-warnings",
           "-Xcompiler", "-Wall,-Wextra,-Werror"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and "unused" in (r.stdout + r.stderr)


# ---------------------------------------------------------------------------- 2. NVRTC


@pytest.fixture(scope="module")
def nvrtc():
    path = find_libnvrtc()
    need(path, "libnvrtc not found (pip install nvidia-cuda-nvrtc, part of tinyconv[test])")
    return NVRTC(path)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fam", FAMILIES)
def test_nvrtc_compiles_as_cupy_loads_it(fam, arch, nvrtc):
    exprs = cuda_loader.name_expressions(fam)
    options = cuda_loader.NVRTC_OPTIONS + CUPY_ADDED_OPTIONS + (f"-arch={arch}",)
    log, lowered, cubin = nvrtc.compile(cuda_loader.source(fam), f"{fam}.cu", options, exprs)
    assert log == "", f"NVRTC warnings for {fam}.cu ({arch}):\n{log}"
    assert set(lowered) == set(exprs) and all(lowered.values())
    assert cubin[:4] == b"\x7fELF"


def test_nvrtc_check_rejects_what_only_nvcc_accepts(nvrtc):
    """The NVRTC check has teeth: a host header nvcc finds is an error under NVRTC."""
    src = "#include <cstdio>\n__global__ void k(int* p) { printf(\"%d\", *p); }\n"
    with pytest.raises(RuntimeError, match="cstdio"):
        nvrtc.compile(src, "bad.cu", ("--gpu-architecture=sm_90",), ["k"])


# ---------------------------------------------------------------------------- 3. host emulation

GXX = shutil.which("g++")

_CTYPE = {"float": np.float32, "double": np.float64, "i64": np.int64, "int": np.int32,
          "unsigned int": np.uint32, "unsigned char": np.uint8, "unsigned long long": np.uint64}


def _signatures(fam):
    """{kernel: [(is_pointer, is_const, C type), ...]} parsed from the source."""
    src = cuda_loader.source(fam)
    sigs = {}
    for m in re.finditer(r"__global__ void (\w+)\(([^)]*)\)", src):
        params = []
        for p in m.group(2).split(","):
            p = " ".join(p.replace("__restrict__", "").split())
            ctype = p.rsplit(" ", 1)[0]             # drop the parameter name
            const = ctype.startswith("const ")
            ctype = ctype.removeprefix("const ")
            ptr = ctype.endswith("*")
            params.append((ptr, const, ctype.rstrip("* ").strip()))
        sigs[m.group(1)] = params
    return sigs


class HostRunner:
    """Runs a kernel's g++ build for :func:`cuda_loader.launch` on NumPy arrays."""

    def __init__(self, libs):
        self.libs, self.sigs, self.calls = libs, {f: _signatures(f) for f in libs}, []

    def __call__(self, fam, expr, grid, block, args):
        name, _, t = expr.partition("<")
        t = t.rstrip(">").split(",")[0]                  # the type; a variant's arguments follow
        params = self.sigs[fam][name]
        assert len(args) == len(params), f"{expr}: {len(args)} arguments for {len(params)} parameters"
        keep, ptrs = [], []
        for k, (a, (ptr, const, ctype)) in enumerate(zip(args, params)):
            want = np.dtype(_CTYPE[t if ctype == "T" else ctype])
            if ptr:
                assert isinstance(a, np.ndarray), f"{expr} parameter {k}: expected an array, got {type(a)}"
                assert a.dtype == want, f"{expr} parameter {k}: array of {a.dtype}, kernel takes {want}"
                assert a.flags.c_contiguous, f"{expr} parameter {k}: array not C-contiguous"
                if not const and name not in IN_PLACE:     # poison outputs: unwritten shows up
                    a[...] = np.nan if a.dtype.kind == "f" else 123
                v = ctypes.c_void_p(a.ctypes.data)
            else:
                assert isinstance(a, np.generic) and a.dtype == want, (
                    f"{expr} parameter {k}: passed {type(a).__name__}, kernel takes {want}")
                v = np.ctypeslib.as_ctypes_type(want)(a.item())
            keep.append(v)
            ptrs.append(ctypes.cast(ctypes.pointer(v), ctypes.c_void_p))
        fn = getattr(self.libs[fam], _symbol(expr))
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = None
        self.calls.append((fam, expr, grid, block))
        fn(grid, block, (ctypes.c_void_p * len(ptrs))(*ptrs))


def _symbol(expr):
    return "tc_host_" + expr.replace("<", "__").replace(">", "").replace(", ", "_")


def cooperative_kernels(fam):
    """The kernels of a family whose threads cooperate (its launcher's ``COOPERATIVE``)."""
    return set(getattr(importlib.import_module(f"tinyconv.kernels.{fam}_cuda"), "COOPERATIVE", ()))


def _kernel_bodies(fam):
    """{kernel: its source text up to the next kernel}."""
    src = cuda_loader.source(fam)
    starts = [(m.group(1), m.start()) for m in re.finditer(r"__global__ void (\w+)\(", src)]
    return {name: src[a:b] for (name, a), (_, b) in zip(starts, starts[1:] + [("", len(src))])}


def test_cooperative_kernels_are_declared():
    """A kernel using shared memory or barriers must run as cooperating threads in the emulation."""
    for fam in FAMILIES:
        for name, body in _kernel_bodies(fam).items():
            # tc_block_reduce and the tc_igemm_* tile loops share memory and meet at barriers
            uses = any(s in body for s in ("__shared__", "__syncthreads", "tc_block_reduce", "tc_igemm_"))
            assert uses == (name in cooperative_kernels(fam)), (fam, name)
    src = cuda_loader.source("loss")
    assert f"#define TC_ROW_BLOCK {loss_cuda.ROW_BLOCK}\n" in src


#: TINYCONV_HOST_ASAN=1 builds the host kernels with AddressSanitizer (see
#: test_host_kernels_under_address_sanitizer: compute-sanitizer's memcheck, on the CPU)
ASAN_FLAGS = (["-fsanitize=address", "-fno-omit-frame-pointer"] if os.environ.get("TINYCONV_HOST_ASAN") == "1"
              else [])


def build_host_libs(out):
    """Compile every family with g++ and the host-emulation header; {family: ctypes.CDLL}."""
    libs = {}
    for fam in FAMILIES:
        coop = cooperative_kernels(fam)
        exports = "\n".join(
            f"TC_HOST_EXPORT{'_COOPERATIVE' if e.split('<')[0] in coop else ''}({_symbol(e)}, {e})"
            for e in cuda_loader.name_expressions(fam))
        unit = os.path.join(out, f"{fam}_host.cpp")
        with open(unit, "w") as f:
            f.write(f'#include "cuda_host_emulation.h"\n#include "{fam}.cu"\n{exports}\n')
        so = os.path.join(out, f"lib{fam}_host.so")
        cmd = [GXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
               "-I", KDIR, "-x", "c++", unit, "-o", so] + ASAN_FLAGS
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"g++ failed on {fam}.cu:\n{' '.join(cmd)}\n{r.stderr}"
        libs[fam] = ctypes.CDLL(so)
    return libs


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Build every family's host library once; launchers on NumPy arrays run them."""
    need(GXX, "g++ is not installed")
    runner = HostRunner(build_host_libs(str(tmp_path_factory.mktemp("host_kernels"))))
    with cuda_loader.use_host_emulation(runner):
        yield runner


DTYPES = [np.float32, np.float64]


def close(a, b, dtype, rtol=None):
    rtol = rtol or (2e-6 if dtype == np.float32 else 1e-13)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    assert not np.isnan(a).any(), "an output element was never written (still NaN)"
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max(initial=0))))


# (N, C, H, W, kh, kw, sh, sw, ph, pw)
CONV_CASES = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0),      # 1x1 image, 1x1 kernel
    (1, 1, 1, 1, 3, 3, 1, 1, 1, 1),      # 1x1 image, kernel == padded input
    (2, 3, 5, 5, 3, 3, 1, 1, 1, 1),
    (2, 3, 7, 6, 3, 2, 2, 3, 1, 0),      # rectangular everything
    (1, 2, 4, 4, 6, 6, 1, 1, 1, 1),      # kernel == padded input: one output
    (2, 2, 9, 9, 2, 2, 4, 4, 0, 0),      # stride > kernel: pixels nobody reads
    (1, 3, 27, 27, 11, 11, 4, 4, 2, 2),  # AlexNet conv1 geometry
    (3, 4, 6, 5, 1, 1, 1, 1, 0, 0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_col2im_match_reference(host, case, dtype, rng):
    N, C, H, W, *g = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    cols = conv_cuda.im2col(x, *g)
    np.testing.assert_array_equal(cols, CV.im2col_reference(x, *g))   # a pure copy: exact
    gcols = rng.standard_normal(cols.shape).astype(dtype)
    close(conv_cuda.col2im(gcols, x.shape, *g), CV.col2im_reference(gcols, x.shape, *g), dtype)


# (N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw): dilated kernels
DILATED_CONV_CASES = [
    (2, 3, 7, 7, 3, 3, 1, 1, 0, 0, 2, 2),
    (1, 2, 9, 8, 3, 2, 2, 1, 2, 1, 3, 2),
    (2, 1, 10, 11, 2, 3, 3, 2, 1, 2, 2, 3),
    (1, 2, 3, 3, 3, 3, 1, 1, 2, 2, 2, 2),     # dilated kernel == padded input
    (1, 2, 12, 12, 3, 3, 4, 4, 0, 1, 1, 5),   # stride > span: pixels nobody reads
    (2, 2, 6, 6, 2, 2, 1, 1, 1, 1, 1, 1),     # dilation 1 through the same grid
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DILATED_CONV_CASES)
def test_dilated_im2col_col2im_match_reference(host, case, dtype, rng):
    N, C, H, W, *g = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    cols = conv_cuda.im2col(x, *g)
    np.testing.assert_array_equal(cols, CV.im2col_reference(x, *g))
    gcols = rng.standard_normal(cols.shape).astype(dtype)
    close(conv_cuda.col2im(gcols, x.shape, *g), CV.col2im_reference(gcols, x.shape, *g), dtype)


# (N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, groups): conv2d's batched GEMM layout (G, K, N*L)
BATCHED_CONV_CASES = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1),      # everything one
    (3, 4, 7, 6, 3, 2, 2, 3, 1, 0, 1, 1, 2),      # rectangular, odd N, groups
    (2, 6, 9, 8, 3, 3, 1, 2, 2, 1, 2, 3, 3),      # dilated, three groups
    (1, 2, 4, 4, 6, 6, 1, 1, 1, 1, 1, 1, 2),      # kernel == padded input: L = 1
    (5, 2, 9, 9, 2, 2, 4, 4, 0, 0, 1, 1, 1),      # stride > kernel: pixels nobody reads
    (2, 3, 27, 27, 11, 11, 4, 4, 2, 2, 1, 1, 1),  # AlexNet conv1 geometry
    (2, 4, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 4),    # conv4-like, depthwise-grouped
]


def _batched_reference(x, g, groups):
    """The batched layout by definition: the contract's columns, transposed (N, G, K, L) -> (G, K, N*L)."""
    cols = CV.im2col_reference(x, *g)
    N, CK, L = cols.shape
    return np.ascontiguousarray(cols.reshape(N, groups, CK // groups, L).transpose(1, 2, 0, 3)).reshape(
        groups, CK // groups, N * L)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", BATCHED_CONV_CASES)
def test_batched_im2col_col2im_match_reference(host, case, dtype, rng):
    N, C, H, W, *g, groups = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    want = _batched_reference(x, g, groups)
    np.testing.assert_array_equal(conv_cuda.im2col_batched(x, *g[:6], groups, dh=g[6], dw=g[7]), want)
    out = np.empty_like(want)
    assert conv_cuda.im2col_batched(x, *g[:6], groups, out=out, dh=g[6], dw=g[7]) is out
    np.testing.assert_array_equal(out, want)
    gcols = rng.standard_normal(want.shape).astype(dtype)
    K, L = want.shape[1], want.shape[2] // N
    contract = np.ascontiguousarray(gcols.reshape(groups, K, N, L).transpose(2, 0, 1, 3)).reshape(N, -1, L)
    ref = CV.col2im_reference(contract, x.shape, *g)
    gx = np.empty(x.shape, dtype)
    assert conv_cuda.col2im_batched(gcols, x.shape, *g[:6], out=gx, dh=g[6], dw=g[7]) is gx
    close(gx, ref, dtype)
    # the two layouts fold in the same order per pixel: bit for bit the contract kernel's result
    np.testing.assert_array_equal(gx, conv_cuda.col2im(contract, x.shape, *g))


def test_batched_launchers_check_shapes_before_launching(host):
    n_calls = len(host.calls)
    x = np.ones((2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"im2col_batched: expected a C-contiguous out of shape \(1, 27, 50"):
        conv_cuda.im2col_batched(x, 3, 3, 1, 1, 1, 1, 1, out=np.empty((1, 27, 49)))
    with pytest.raises(ValueError, match="im2col_batched: expected a C-contiguous out"):
        conv_cuda.im2col_batched(x, 3, 3, 1, 1, 1, 1, 1, out=np.empty((1, 27, 50), np.float32))
    with pytest.raises(ValueError, match="im2col_batched: expected a C-contiguous out"):
        conv_cuda.im2col_batched(x, 3, 3, 1, 1, 1, 1, 1, out=np.empty((1, 50, 27)).transpose(0, 2, 1))
    with pytest.raises(ValueError, match="groups=2 does not divide C\\*kh\\*kw = 27"):
        conv_cuda.im2col_batched(x, 3, 3, 1, 1, 1, 1, 2)
    with pytest.raises(ValueError, match=r"col2im_batched: expected gcols of shape \(G, 27/G, 50\)"):
        conv_cuda.col2im_batched(np.ones((1, 27, 49)), x.shape, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"col2im_batched: expected a C-contiguous out of shape \(2, 3, 5"):
        conv_cuda.col2im_batched(np.ones((3, 9, 50)), x.shape, 3, 3, 1, 1, 1, 1, out=np.empty((2, 3, 5, 4)))
    assert len(host.calls) == n_calls


def test_batched_launch_covers_more_items_than_threads(host, rng, monkeypatch):
    monkeypatch.setattr(cuda_loader, "MAX_GRID", 2)
    x = rng.standard_normal((3, 4, 12, 11))
    g = (3, 3, 1, 1, 1, 1, 1, 1)
    want = _batched_reference(x, g, 2)
    np.testing.assert_array_equal(conv_cuda.im2col_batched(x, *g[:6], 2), want)
    assert host.calls[-1][2] == 2 and x.size > 2 * cuda_loader.BLOCK


def test_im2col_launch_covers_more_items_than_threads(host, rng, monkeypatch):
    """Grid-stride loop: with the grid capped at 2 blocks every thread handles many items."""
    monkeypatch.setattr(cuda_loader, "MAX_GRID", 2)
    x = rng.standard_normal((2, 3, 20, 20))
    g = (3, 3, 1, 1, 1, 1)
    np.testing.assert_array_equal(conv_cuda.im2col(x, *g), CV.im2col_reference(x, *g))
    cols = rng.standard_normal((2, 27, 400))
    close(conv_cuda.col2im(cols, x.shape, *g), CV.col2im_reference(cols, x.shape, *g), np.float64)
    assert host.calls[-1][2] == 2


# ---------------------------------------------------------------------------- Winograd transforms

WG = importlib.import_module("tinyconv.functional.conv_winograd")

# (N, C, K, H, W, top, left): the input and the padding; the output is H + 2*top - r + 1 rows
# (partial last tiles included), one channel, one sample, a tile wider than the image
WINOGRAD_CASES = [
    (2, 3, 4, 7, 9, 1, 2),
    (1, 1, 1, 1, 1, 2, 2),          # a 1x1 image, all padding around it
    (1, 2, 3, 6, 5, 0, 0),          # no padding: few, whole tiles
    (3, 5, 2, 13, 13, 1, 1),        # AlexNet conv3-5 size, 13 = 3*4 + 1: a last tile mostly outside
]


def _winograd_geometry(case, m, r):
    N, C, K, H, W, top, left = case
    OH, OW = H + 2 * top - r + 1, W + 2 * left - r + 1
    th, tw = WG.tiles(OH, OW, m)
    return N, C, K, H, W, top, left, OH, OW, th, tw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_CASES)
@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (2, 5), (4, 5)])
def test_winograd_transforms_match_reference(host, m, r, case, dtype, rng):
    """Each of winograd.cu's transforms (through its launcher) against the NumPy reference."""
    N, C, K, H, W, top, left, OH, OW, th, tw = _winograd_geometry(case, m, r)
    if OH < 1 or OW < 1:
        pytest.skip("kernel larger than the padded input")
    BT, G, AT = WG.transforms(m, r, dtype)
    a, P = m + r - 1, N * th * tw
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, r, r)).astype(dtype)
    close(winograd_cuda.input_transform(x, BT, m, top, left, th, tw),
          WG.input_transform_reference(x, BT, m, top, left, th, tw), dtype)
    close(winograd_cuda.filter_transform(w, G), WG.filter_transform_reference(w, G), dtype)
    M = rng.standard_normal((a * a, K, P)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    close(winograd_cuda.output_transform(M, AT, m, N, OH, OW, b),
          WG.output_transform_reference(M, AT, m, N, OH, OW, b), dtype)
    close(winograd_cuda.output_transform(M, AT, m, N, OH, OW),
          WG.output_transform_reference(M, AT, m, N, OH, OW), dtype)
    gy = rng.standard_normal((N, K, OH, OW)).astype(dtype)
    close(winograd_cuda.output_adjoint(gy, AT, m), WG.output_adjoint_reference(gy, AT, m), dtype)
    gU = rng.standard_normal((a * a, K, C)).astype(dtype)
    close(winograd_cuda.filter_adjoint(gU, G), WG.filter_adjoint_reference(gU, G), dtype)
    gV = rng.standard_normal((a * a, C, P)).astype(dtype)
    want = WG.input_adjoint_reference(gV, BT, m, top, left, th, tw, x.shape)
    close(winograd_cuda.input_adjoint(gV.copy(), BT, m, top, left, th, tw, x.shape), want, dtype)


def test_winograd_transforms_are_adjoints(host, rng):
    """<T x, y> = <x, T* y> for each transform pair, on the CUDA kernels alone (float64)."""
    m, r = 4, 5
    N, C, K, H, W, top, left, OH, OW, th, tw = _winograd_geometry(WINOGRAD_CASES[0], m, r)
    BT, G, AT = WG.transforms(m, r, np.float64)
    a, P = m + r - 1, N * th * tw
    x, gV = rng.standard_normal((N, C, H, W)), rng.standard_normal((a * a, C, P))
    lhs = np.vdot(winograd_cuda.input_transform(x, BT, m, top, left, th, tw), gV)
    gx = winograd_cuda.input_adjoint(gV.copy(), BT, m, top, left, th, tw, x.shape)
    assert np.isclose(lhs, np.vdot(x, gx))
    w, gU = rng.standard_normal((K, C, r, r)), rng.standard_normal((a * a, K, C))
    assert np.isclose(np.vdot(winograd_cuda.filter_transform(w, G), gU),
                      np.vdot(w, winograd_cuda.filter_adjoint(gU, G)))
    M, gy = rng.standard_normal((a * a, K, P)), rng.standard_normal((N, K, OH, OW))
    assert np.isclose(np.vdot(winograd_cuda.output_transform(M, AT, m, N, OH, OW), gy),
                      np.vdot(M, winograd_cuda.output_adjoint(gy, AT, m)))


def test_winograd_launch_covers_more_items_than_threads(host, rng, monkeypatch):
    """Grid-stride loops: with the grid capped at 2 blocks, every thread handles many tiles or pixels."""
    monkeypatch.setattr(cuda_loader, "MAX_GRID", 2)
    m, r = 2, 3
    BT, G, AT = WG.transforms(m, r, np.float64)
    x = rng.standard_normal((2, 9, 20, 20))
    th, tw = WG.tiles(20, 20, m)
    V = winograd_cuda.input_transform(x, BT, m, 1, 1, th, tw)
    close(V, WG.input_transform_reference(x, BT, m, 1, 1, th, tw), np.float64)
    assert host.calls[-1][2] == 2 and V[0].size > 2 * cuda_loader.BLOCK
    want = WG.input_adjoint_reference(V, BT, m, 1, 1, th, tw, x.shape)
    close(winograd_cuda.input_adjoint(V.copy(), BT, m, 1, 1, th, tw, x.shape), want, np.float64)
    assert x.size > 2 * cuda_loader.BLOCK and host.calls[-1][2] == 2


_WM = WG.transforms(2, 3, np.float32)      # BT (4, 4), G (4, 3), AT (2, 4)
WINOGRAD_BAD_CALLS = [
    (lambda: winograd_cuda.input_transform(np.ones((1, 2, 4, 4), np.float32), _WM[0] * 2, 2, 1, 1, 2, 2),
     ValueError, r"winograd input_transform: BT is not the BT of F\(2x2, 3x3\) compiled into winograd.cu"),
    (lambda: winograd_cuda.input_transform(np.ones((1, 2, 4, 4), np.float32), _WM[1], 2, 1, 1, 2, 2),
     ValueError, r"winograd input_transform: BT is not the BT of F\(2x2, 3x3\)"),
    (lambda: winograd_cuda.input_transform(np.ones((1, 2, 4, 4), np.float32), np.eye(7, dtype=np.float32),
                                           2, 1, 1, 2, 2),
     ValueError, r"no kernel for F\(2x2, 6x6\); compiled: F\(2x2, 3x3\), F\(2x2, 5x5\), F\(4x4, 3x3\)"),
    (lambda: winograd_cuda.input_transform(np.ones((2, 4, 4), np.float32), _WM[0], 2, 1, 1, 2, 2),
     ValueError, r"winograd input_transform: expected x to be 4-d"),
    (lambda: winograd_cuda.input_transform(np.ones((1, 2, 4, 4), np.float32), _WM[0], 2, 1, 1, 2, 2,
                                           out=np.empty((16, 2, 3), np.float32)),
     ValueError, r"winograd input_transform: expected out of shape \(16, 2, 4\)"),
    (lambda: winograd_cuda.input_adjoint(np.ones((16, 2, 3), np.float32), _WM[0], 2, 1, 1, 2, 2,
                                         (1, 2, 4, 4)),
     ValueError, r"winograd input_adjoint: expected gV of shape \(16, 2, 4\)"),
    (lambda: winograd_cuda.input_adjoint(np.ones((16, 4, 2), np.float32).transpose(0, 2, 1), _WM[0], 2, 1, 1,
                                         2, 2, (1, 2, 4, 4)),
     ValueError, r"gV must be C-contiguous"),
    (lambda: winograd_cuda.filter_transform(np.ones((3, 2, 5, 5), np.float32), _WM[1]),
     ValueError, r"winograd filter_transform: expected w of shape \(K, Cg, 3, 3\)"),
    (lambda: winograd_cuda.filter_adjoint(np.ones((9, 3, 2), np.float32), _WM[1]),
     ValueError, r"winograd filter_adjoint: expected gU of shape \(16, K, Cg\)"),
    (lambda: winograd_cuda.output_transform(np.ones((16, 3, 5), np.float32), _WM[2], 2, 1, 4, 4),
     ValueError, r"winograd output_transform: expected M of shape \(16, 3, 4\)"),
    (lambda: winograd_cuda.output_transform(np.ones((16, 3, 4), np.float32), _WM[2], 2, 1, 4, 4,
                                            np.ones(2, np.float32)),
     ValueError, r"winograd output_transform: expected bias of shape \(3,\)"),
    (lambda: winograd_cuda.output_transform(np.ones((16, 3, 4), np.float32), _WM[2], 4, 1, 4, 4),
     ValueError, r"no kernel for F\(4x4, 1x1\)"),
    (lambda: winograd_cuda.output_adjoint(np.ones((1, 3, 4, 4), np.float32), _WM[2], 2,
                                          out=np.empty((16, 3, 4), np.float64)),
     TypeError, r"winograd output_adjoint: expected out of dtype float32"),
]


def test_winograd_matrices_header_is_generated_from_transforms():
    """kernels/winograd_matrices.cuh is conv_winograd.cuda_matrices_source()'s text (regenerate it
    with write_cuda_matrices after changing TRANSFORMS), and the launchers read back the same numbers."""
    with open(os.path.join(KDIR, "winograd_matrices.cuh"), encoding="utf-8") as f:
        assert f.read() == WG.cuda_matrices_source(), "run: write_cuda_matrices()"
    compiled = winograd_cuda.compiled_matrices()
    assert sorted(compiled) == sorted(WG.TRANSFORMS)
    for mr, t in WG.TRANSFORMS.items():
        for name in ("BT", "G", "AT"):
            np.testing.assert_array_equal(compiled[mr][name], t[name])
    assert {f"{m}, {r}" for m, r in compiled} == set(winograd_cuda.VARIANTS)


@pytest.mark.parametrize("call,error,message", WINOGRAD_BAD_CALLS)
def test_winograd_launchers_check_before_launching(host, call, error, message):
    n_calls = len(host.calls)
    with pytest.raises(error, match=message):
        call()
    assert len(host.calls) == n_calls


# ---------------------------------------------------------------------------- implicit GEMM

# (N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, groups); the tile each pass picks is in the comment
# (forward and backward-filter by O/groups, backward-data by C/groups: conv_implicit_gemm_cuda.tile_for)
IGEMM_CASES = [
    (2, 3, 27, 27, 8, 11, 11, 4, 4, 2, 2, 1, 1, 1),     # AlexNet conv1, small: 16 phases, C = 3 (narrow)
    (2, 8, 9, 9, 12, 5, 5, 1, 1, 2, 2, 1, 1, 2),        # conv2: 5x5 pad 2, groups 2 (narrow)
    (1, 16, 7, 7, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1),       # 3x3 pad 1, N = 1 (mid)
    (1, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1),         # C = O = N = 1
    (1, 2, 6, 6, 200, 3, 3, 1, 1, 1, 1, 1, 1, 1),       # wide, an edge row tile; K = 18, not a multiple of 8
    (3, 4, 10, 9, 130, 3, 2, 2, 1, 1, 0, 2, 1, 1),      # mid: three row tiles, rectangular, dilated rows
    (1, 130, 4, 4, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1),       # backward-data over 130 channels (mid)
    (2, 2, 9, 9, 3, 2, 2, 4, 4, 0, 0, 1, 1, 1),         # stride > kernel: pixels no tap reaches (gx = 0)
    (1, 2, 12, 12, 4, 3, 3, 2, 2, 1, 1, 2, 2, 1),       # dilation 2, stride 2: a phase without taps
    (1, 2, 9, 8, 3, 3, 2, 2, 1, 2, 1, 3, 2, 1),         # dilation 3 with stride 2: taps i = 0, 2 or 1
    (2, 3, 20, 20, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1),       # N*L = 800: several column tiles
    (2, 6, 7, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 3),         # 1x1, three groups
]


def _igemm_geometry(case):
    N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, G = case
    return (N, C, H, W), (O, C // G, kh, kw), dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                                                   groups=G)


def _conv_ref(x, w, stride, padding, dilation, groups):
    """The three products in float64 by im2col_reference and einsum: (y, cols-function of gy)."""
    (sh, sw), (ph, pw), (dh, dw), G = stride, padding, dilation, groups
    O, Cg, kh, kw = w.shape
    cols = CV.im2col_reference(x, kh, kw, sh, sw, ph, pw, dh, dw)            # (N, C*kh*kw, L)
    N, CK, L = cols.shape
    cg = cols.reshape(N, G, CK // G, L)
    wg = w.reshape(G, O // G, CK // G)
    y = np.einsum("gmk,ngkl->ngml", wg, cg).reshape(N, O, L)
    return y, cg, wg


def _bound(n, dtype, magnitude):
    """|fl(sum of n products) - exact| <= gamma_n * sum |products|, any order (Higham, eq. 3.5)."""
    u = np.finfo(dtype).eps / 2
    return n * u / (1 - n * u) * magnitude + np.finfo(dtype).tiny


def _assert_within(got, exact, bound, what):
    assert not np.isnan(got).any(), f"{what}: an output element was never written (still NaN)"
    err = np.abs(got.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert (err <= bound).all(), f"{what}: error {err[worst]:.3e} > bound {bound[worst]:.3e} at {worst}"


def igemm_references(x, w, gy, stride, padding, dilation, groups):
    """{pass: (exact, bound)} of the three products for float inputs x, w, gy: the float64
    result of im2col + einsum (col2im for gx) and the rounding bound of a sum of n products
    on the same sums of magnitudes.  Shared with tests/test_gpu.py."""
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    (sh, sw), (ph, pw), (dh, dw), G = stride, padding, dilation, groups
    N, (O, Cg, kh, kw) = x.shape[0], w.shape
    K, dtype = Cg * kh * kw, x.dtype
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def products(x_, w_, gy_):
        y, cg, wg = _conv_ref(x_, w_, **geo)
        gyg = gy_.reshape(N, G, O // G, -1)
        gcols = np.einsum("gmk,ngml->ngkl", wg, gyg).reshape(N, -1, gyg.shape[-1])
        gx = CV.col2im_reference(gcols, x.shape, kh, kw, sh, sw, ph, pw, dh, dw)
        return y.reshape(gy.shape), gx, np.einsum("ngml,ngkl->gmk", gyg, cg).reshape(w.shape)
    exact, magnitude = products(x64, w64, gy64), products(np.abs(x64), np.abs(w64), np.abs(gy64))
    n = (K, O // G * K, N * gy.shape[2] * gy.shape[3])
    return {p: (e, _bound(k, dtype, m)) for p, e, m, k in zip(("forward", "backward-data", "backward-filter"),
                                                               exact, magnitude, n)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", IGEMM_CASES)
def test_implicit_gemm_matches_reference(host, case, dtype, rng):
    """All three passes against float64 im2col + einsum, within the rounding bound of a sum of n products."""
    xs, ws, geo = _igemm_geometry(case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = conv_implicit_gemm_cuda.forward(x, w, None, **geo)
    assert y.shape[:2] == (xs[0], ws[0]) and y.dtype == dtype
    gy = rng.standard_normal(y.shape).astype(dtype)
    ref = igemm_references(x, w, gy, **geo)
    _assert_within(y, *ref["forward"], "forward")
    # with a bias: one rounding more, after the sum
    yb = conv_implicit_gemm_cuda.forward(x, w, b, **geo)
    exact, bound = ref["forward"]
    u = np.finfo(dtype).eps
    _assert_within(yb, exact + b[:, None, None], bound * (1 + u) + u * np.abs(exact + b[:, None, None]),
                   "forward + bias")
    gx = conv_implicit_gemm_cuda.backward_data(gy, w, xs, **geo)
    assert gx.shape == xs and gx.dtype == dtype
    _assert_within(gx, *ref["backward-data"], "backward-data")
    # backward-filter with the default split and with 3 and 1 splits; a split run is repeatable bit for bit
    for splits in (None, 3, 1):
        gw = conv_implicit_gemm_cuda.backward_filter(gy, x, ws, **geo, splits=splits)
        assert gw.shape == ws and gw.dtype == dtype
        _assert_within(gw, *ref["backward-filter"], f"backward-filter, {splits} splits")
    again = conv_implicit_gemm_cuda.backward_filter(gy, x, ws, **geo, splits=3)
    np.testing.assert_array_equal(again, conv_implicit_gemm_cuda.backward_filter(gy, x, ws, **geo, splits=3))


def test_implicit_gemm_tiles_and_splits(host, rng):
    """Every tile shape runs (the cases above cover them), backward-filter really splits, and a
    split launch is followed by the ordered sum; nothing the size of a column matrix is made."""
    tile_for = conv_implicit_gemm_cuda.tile_for
    assert [tile_for(m) for m in (1, 3, 8, 9, 48, 64, 96, 128, 130, 192, 200, 384)] == [
        "narrow", "narrow", "narrow", "mid", "mid", "mid", "wide", "wide", "mid", "mid", "wide", "wide"]
    used = {tile_for(c[4] // c[13]) for c in IGEMM_CASES} | {tile_for(c[1] // c[13]) for c in IGEMM_CASES}
    assert used == set(conv_implicit_gemm_cuda.TILES)
    # the paper's layers at batch 128: conv1's gW (96 x 363, 3 wide tiles) split 342 ways (48 MB of
    # partial sums, against 562 MB of columns); conv3's (384 x 2304, 54 tiles) 19 ways
    assert conv_implicit_gemm_cuda.splits_for(1 * 3, 128 * 55 * 55) == 342
    assert conv_implicit_gemm_cuda.splits_for(3 * 18, 128 * 13 * 13) == 19
    x = rng.standard_normal((2, 3, 20, 20))
    w_shape = (5, 3, 3, 3)
    gy = rng.standard_normal((2, 5, 20, 20))
    n_calls = len(host.calls)
    conv_implicit_gemm_cuda.backward_filter(gy, x, w_shape, padding=(1, 1), splits=4)
    launched = [(expr, grid) for _, expr, grid, _ in host.calls[n_calls:]]
    # 4 splits x 2 row tiles (5 rows, 4 per narrow tile) x 1 column tile (27 of 256)
    assert launched[0][0] == "igemm_backward_filter_narrow_kernel<double>" and launched[0][1] == 4 * 2
    assert launched[1][0] == "igemm_splitk_sum_kernel<double>" and len(launched) == 2


IG = conv_implicit_gemm_cuda
#: (launcher call, the error it must raise); every message starts with "conv_implicit_gemm.<launcher>: "
IGEMM_BAD_LAUNCHES = [
    (lambda: IG.forward(_f32(2, 3, 8, 8), _f32(4, 2, 3, 3)),
     ValueError, r"forward: weight \(4, 2, 3, 3\) with groups=1 does not fit an input of 3"),
    (lambda: IG.forward(_f32(2, 3, 8, 8), np.ones((4, 3, 3, 3))),
     TypeError, "forward: expected w of dtype float32, got float64"),
    (lambda: IG.forward(_f32(2, 3, 8, 8), _f32(4, 3, 3, 3), _f32(5)),
     ValueError, r"forward: expected b of shape \(4,\), got \(5,\)"),
    (lambda: IG.forward(_f32(3, 8, 8), _f32(4, 3, 3, 3)),
     ValueError, "forward: expected x to be 4-d"),
    (lambda: IG.forward(_f32(2, 3, 2, 2), _f32(4, 3, 3, 3)),
     ValueError, r"forward: kernel \(3, 3\) dilated by \(1, 1\) is larger than the padded"),
    (lambda: IG.forward(np.ones((1, 1, 4, 4), np.int32), np.ones((1, 1, 3, 3), np.int32)),
     TypeError, "forward: CUDA kernels take float32 or float64 arrays, got int32"),
    (lambda: IG.forward(_f32(2, 4, 8, 8), _f32(3, 2, 3, 3), groups=2),
     ValueError, r"forward: weight \(3, 2, 3, 3\) with groups=2"),
    (lambda: IG.forward(_f32(2, 3, 8, 8), _f32(4, 3, 3, 3), out=_f32(2, 4, 6, 5)),
     ValueError, r"forward: expected out of shape \(2, 4, 6, 6\), got \(2, 4, 6, 5\)"),
    (lambda: IG.backward_data(_f32(2, 4, 6, 5), _f32(4, 3, 3, 3), (2, 3, 8, 8)),
     ValueError, r"backward_data: expected gy of shape \(2, 4, 6, 6\), got \(2, 4, 6, 5\)"),
    (lambda: IG.backward_data(_f32(2, 4, 6, 6), _f32(4, 3, 3, 3), (2, 3, 8)),
     ValueError, r"backward_data: expected x_shape \(N, C, H, W\), got \(2, 3, 8\)"),
    (lambda: IG.backward_filter(_f32(2, 4, 6, 6), np.ones((2, 3, 8, 8)), (4, 3, 3, 3)),
     TypeError, "backward_filter: expected gy of dtype float64, got float32"),
    (lambda: IG.backward_filter(_f32(2, 4, 6, 6), _f32(2, 3, 8, 8), (4, 3, 3, 3), splits=0),
     ValueError, "backward_filter: splits must be >= 1, got 0"),
    (lambda: IG.backward_filter(_f32(2, 4, 6, 6), _f32(2, 3, 8, 8), (4, 3, 3, 3),
                                                     out=_f32(4, 3, 3, 3)[:, :, ::-1]),
     ValueError, "backward_filter: out must be C-contiguous"),
]


@pytest.mark.parametrize("call,error,message", IGEMM_BAD_LAUNCHES)
def test_implicit_gemm_launchers_check_before_launching(host, call, error, message):
    n_calls = len(host.calls)
    with pytest.raises(error, match=message) as info:
        call()
    assert str(info.value).startswith("conv_implicit_gemm.")
    assert len(host.calls) == n_calls


POOL_CASES = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
    (2, 3, 13, 13, 3, 3, 2, 2, 0, 0),    # AlexNet's overlapping pooling
    (2, 2, 7, 8, 3, 2, 2, 1, 1, 1),      # padded, rectangular
    (1, 2, 5, 5, 2, 2, 3, 3, 0, 0),      # stride > kernel
    (1, 1, 4, 4, 4, 4, 1, 1, 0, 0),      # kernel == input
    (1, 2, 3, 3, 3, 3, 1, 1, 1, 1),      # windows mostly padding
]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_matches_reference(host, case, dtype, ties, rng):
    N, C, H, W, kh, kw, sh, sw, ph, pw = case
    shape = (N, C, H, W)
    # integer values make many ties: the first maximum in scan order must win
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    y, arg = pooling_cuda.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw)
    y_ref, arg_ref = PO.max_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    assert arg.dtype == np.int64
    gy = rng.standard_normal(y.shape).astype(dtype)
    ref = PO.max_pool2d_backward_reference(gy, arg_ref, shape)
    gather = pooling_cuda.max_pool2d_backward(gy, arg, shape, (kh, kw), (sh, sw), (ph, pw))
    close(gather, ref, dtype)


# (N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw)
DILATED_POOL_CASES = [
    (2, 3, 9, 9, 3, 3, 2, 2, 0, 0, 2, 2),
    (1, 2, 10, 9, 3, 2, 1, 2, 1, 1, 3, 2),
    (2, 1, 8, 11, 2, 3, 3, 1, 1, 1, 3, 4),
    (1, 2, 5, 5, 3, 3, 1, 1, 1, 1, 3, 3),     # dilated span == padded input
    (1, 1, 7, 7, 2, 2, 1, 1, 1, 1, 2, 2),     # windows whose first tap skips the padding
]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DILATED_POOL_CASES)
def test_dilated_max_pool_matches_reference(host, case, dtype, ties, rng):
    N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw = case
    shape = (N, C, H, W)
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    y, arg = pooling_cuda.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw)
    y_ref, arg_ref = PO.max_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, dh, dw)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gather = pooling_cuda.max_pool2d_backward(gy, arg, shape, (kh, kw), (sh, sw), (ph, pw), dilation=(dh, dw))
    close(gather, PO.max_pool2d_backward_reference(gy, arg_ref, shape), dtype)


def test_max_pool_nan_propagates_like_reference(host):
    x = np.array([[[[1.0, np.nan, 3.0], [np.nan, 0.0, 5.0], [2.0, 2.0, 2.0]]]])
    y, arg = pooling_cuda.max_pool2d_forward(x, 2, 2, 1, 1, 0, 0)
    y_ref, arg_ref = PO.max_pool2d_forward_reference(x, 2, 2, 1, 1, 0, 0)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    np.testing.assert_array_equal(arg, arg_ref)


# (N, C, H, W, size)
LRN_CASES = [(1, 1, 1, 1, 5), (2, 3, 4, 4, 5), (2, 8, 3, 5, 5), (1, 7, 2, 2, 4), (2, 4, 1, 1, 1),
             (1, 2, 3, 3, 9)]


@pytest.mark.parametrize("params", [(5e-4, 0.75, 2.0), (0.5, 0.75, 1.0), (1.0, 1.5, 0.5)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LRN_CASES)
def test_lrn_matches_reference(host, case, dtype, params, rng):
    *shape, size = case
    alpha, beta, k = params
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    y, scale = lrn_cuda.lrn_forward(x, size, alpha, beta, k)
    y_ref, s_ref = LR.lrn_forward_reference(x, size, alpha, beta, k)
    close(scale, s_ref, dtype)
    close(y, y_ref, dtype, rtol=1e-5 if dtype == np.float32 else None)
    gy = rng.standard_normal(shape).astype(dtype)
    close(lrn_cuda.lrn_backward(gy, x, y_ref, s_ref, size, alpha, beta),
          LR.lrn_backward_reference(gy, x, y_ref, s_ref, size, alpha, beta), dtype,
          rtol=1e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lrn_non_finite_like_reference(host, dtype, rng):
    """One Inf or NaN makes NaN/0 in its own window only (IEEE, as the reference and PyTorch)."""
    x = rng.standard_normal((2, 9, 2, 3)).astype(dtype)
    x[0, 2, 0, 0], x[0, 6, 1, 2], x[1, 0, 1, 1], x[1, 8, 0, 1] = np.inf, np.nan, -np.inf, np.inf
    gy = rng.standard_normal(x.shape).astype(dtype)
    gy[1, 4, 0, 0] = np.nan
    size, alpha, beta, k = 3, 0.5, 0.75, 1.0
    y, scale = lrn_cuda.lrn_forward(x, size, alpha, beta, k)
    with np.errstate(invalid="ignore"):
        y_ref, s_ref = LR.lrn_forward_reference(x, size, alpha, beta, k)
        g_ref = LR.lrn_backward_reference(gy, x, y_ref, s_ref, size, alpha, beta)
    g = lrn_cuda.lrn_backward(gy, x, y_ref, s_ref, size, alpha, beta)
    assert np.isfinite(y_ref[0, 5:]).any() and np.isnan(y_ref).any()       # the case is not vacuous
    for got, want in ((scale, s_ref), (y, y_ref), (g, g_ref)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_relu_matches_reference(host, n, dtype, rng):
    x = rng.standard_normal(n).astype(dtype)
    x[::3] = 0.0                                 # exact zeros: y > 0 decides the gradient
    y = activation_cuda.relu_forward(x)
    np.testing.assert_array_equal(y, A.relu_forward_reference(x))
    gy = rng.standard_normal(n).astype(dtype)
    np.testing.assert_array_equal(activation_cuda.relu_backward(gy, y), A.relu_backward_reference(gy, y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_edge_values_as_pytorch(host, dtype):
    """NaN and -0 pass through the forward; the gradient is 0 where y <= 0 and gy at NaN and inf."""
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -1.5, 1e-30, -1e-30], dtype=dtype)
    y = activation_cuda.relu_forward(x)
    ref = A.relu_forward_reference(x)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ref))
    assert np.isnan(y[0]) and np.signbit(y[4]) and y[6] == 0
    gy = np.arange(1, x.size + 1).astype(dtype)
    gx = activation_cuda.relu_backward(gy, y)
    np.testing.assert_array_equal(gx, A.relu_backward_reference(gy, y))
    np.testing.assert_array_equal(gx, [1, 2, 0, 0, 0, 6, 0, 8, 0])


@pytest.mark.parametrize("shape", [(), (0,), (3, 0)])
def test_relu_and_dropout_keep_0d_and_empty_shapes(host, shape):
    x = np.full(shape, 2.0)
    y = activation_cuda.relu_forward(x)
    assert y.shape == shape and activation_cuda.relu_backward(np.ones(shape), y).shape == shape
    y, mask = activation_cuda.dropout_forward(x, 0.5, 3, 0)
    assert y.shape == shape and mask.keep().shape == shape
    gx = activation_cuda.dropout_backward(np.ones(shape), mask, 0.5)
    assert gx.shape == shape
    np.testing.assert_array_equal(gx * 2.0, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (4, 10), (3, 1000), (2, 5)])
def test_softmax_cross_entropy_matches_reference(host, shape, dtype, rng):
    logits = (rng.standard_normal(shape) * 30).astype(dtype)    # large logits: the shift matters
    target = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    loss, probs = loss_cuda.softmax_cross_entropy_forward(logits, target)
    loss_ref, probs_ref = LO.softmax_cross_entropy_forward_reference(logits, target)
    close(loss, loss_ref, dtype, rtol=1e-5 if dtype == np.float32 else None)
    close(probs, probs_ref, dtype, rtol=1e-5 if dtype == np.float32 else None)
    gloss = rng.standard_normal(shape[0]).astype(dtype)
    close(loss_cuda.softmax_cross_entropy_backward(gloss, probs_ref, target),
          LO.softmax_cross_entropy_backward_reference(gloss, probs_ref, target), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 1), (2, 255), (2, 256), (3, 257), (2, 1000)])
def test_softmax_cross_entropy_block_per_row_edges(host, shape, dtype, rng):
    """Rows shorter and longer than the block (K < 256, = 256, a tail past it), one block a row."""
    logits = (rng.standard_normal(shape) * 10).astype(dtype)
    target = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    loss, probs = loss_cuda.softmax_cross_entropy_forward(logits, target)
    assert host.calls[-1][2:] == (shape[0], loss_cuda.ROW_BLOCK)        # grid = rows, block = ROW_BLOCK
    loss_ref, probs_ref = LO.softmax_cross_entropy_forward_reference(logits, target)
    close(loss, loss_ref, dtype, rtol=1e-5 if dtype == np.float32 else None)
    close(probs, probs_ref, dtype, rtol=1e-5 if dtype == np.float32 else None)


def test_softmax_cross_entropy_rows_beyond_the_grid(host, rng, monkeypatch):
    """More rows than blocks: each block strides over several rows (and reuses its shared memory)."""
    monkeypatch.setattr(loss_cuda, "MAX_ROWS_GRID", 3)
    logits = rng.standard_normal((10, 300))
    target = rng.integers(0, 300, 10)
    loss, probs = loss_cuda.softmax_cross_entropy_forward(logits, target)
    assert host.calls[-1][2] == 3
    loss_ref, probs_ref = LO.softmax_cross_entropy_forward_reference(logits, target)
    close(loss, loss_ref, np.float64)
    close(probs, probs_ref, np.float64)
    gl = rng.standard_normal(10)
    close(loss_cuda.softmax_cross_entropy_backward(gl, probs_ref, target),
          LO.softmax_cross_entropy_backward_reference(gl, probs_ref, target), np.float64)


def test_softmax_cross_entropy_ignore_index_and_bad_targets(host, rng):
    """An ignored sample: loss 0, gradient 0; a bad target is never read through (NaN loss, no
    out-of-bounds read), and class_targets_check reports the first one with the kept count."""
    logits = rng.standard_normal((5, 7))
    target = np.array([2, -100, 6, 9, -3])
    loss, probs = loss_cuda.softmax_cross_entropy_forward(logits, target, ignore_index=-100)
    loss_ref, probs_ref = LO.softmax_cross_entropy_forward_reference(logits, np.array([2, 0, 6, 0, 0]))
    close(probs, probs_ref, np.float64)
    np.testing.assert_allclose(loss[[0, 2]], loss_ref[[0, 2]], rtol=1e-13)
    assert loss[1] == 0 and np.isnan(loss[3]) and np.isnan(loss[4])
    g = loss_cuda.softmax_cross_entropy_backward(np.ones(5), probs_ref, target, ignore_index=-100)
    np.testing.assert_array_equal(g[1], 0)
    close(g[[0, 2]], LO.softmax_cross_entropy_backward_reference(np.ones(2), probs_ref[[0, 2]],
                                                                 np.array([2, 6])), np.float64)
    np.testing.assert_array_equal(loss_cuda.class_targets_check(target, 7, -100), [3, 9, 4])
    np.testing.assert_array_equal(loss_cuda.class_targets_check(np.array([0, 6, 1]), 7, -100), [3, 0, 3])
    np.testing.assert_array_equal(loss_cuda.class_targets_check(np.array([0, 3, 1]), 7, 3), [3, 0, 2])
    many = rng.integers(0, 10, 1000)
    many[::7] = -100
    many[[701, 900]] = [10, -1]
    want_kept = int((many != -100).sum())
    np.testing.assert_array_equal(loss_cuda.class_targets_check(many, 10, -100), [701, 10, want_kept])
    np.testing.assert_array_equal(loss_cuda.class_targets_check(np.zeros(0, np.int64), 10, -100), [0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (128, 300)])
def test_bias_add_and_grad_match_reference(host, shape, dtype, rng):
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    expect = LI.bias_add_reference(y.copy(), b)
    np.testing.assert_array_equal(linear_cuda.bias_add(y.copy(), b), expect)
    close(linear_cuda.bias_grad(y), y.sum(axis=0), dtype, rtol=1e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [(0.0, 0.0, 0.0, False), (0.9, 0.0, 5e-4, False),
                                                            (0.9, 0.1, 1e-2, True)])
def test_sgd_update_matches_torch_formula(host, dtype, momentum, dampening, wd, nesterov, rng):
    w = rng.standard_normal(1000).astype(dtype)
    v = rng.standard_normal(1000).astype(dtype) if momentum else None
    w_ref, v_ref = w.astype(np.float64), None if v is None else v.astype(np.float64)
    for step in range(3):
        g = rng.standard_normal(1000).astype(dtype)
        optim_cuda.sgd_update(w, g, v, 0.01, momentum, dampening, wd, nesterov, first_step=step == 0)
        d = g + wd * w_ref                      # torch.optim.SGD, written out in float64
        if momentum:
            v_ref = d if step == 0 else momentum * v_ref + (1 - dampening) * d
            d = d + momentum * v_ref if nesterov else v_ref
        w_ref = w_ref - 0.01 * d
    close(w, w_ref.astype(dtype), dtype, rtol=1e-5 if dtype == np.float32 else None)



ADAM_OPTIONS = [  # (amsgrad, maximize, decoupled, weight_decay)
    (False, False, False, 0.0), (True, False, False, 0.0), (False, True, False, 0.1),
    (True, True, True, 0.1), (False, False, True, 0.05)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad,maximize,decoupled,wd", ADAM_OPTIONS)
def test_adam_update_matches_reference(host, dtype, amsgrad, maximize, decoupled, wd, rng):
    """optim.cu's Adam/AdamW step, run on the CPU, against adam_update_reference over 4 steps."""
    n = 1000
    state = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
             np.abs(rng.standard_normal(n)).astype(dtype),
             np.abs(rng.standard_normal(n)).astype(dtype) if amsgrad else None]
    ref = [None if a is None else a.copy() for a in state]
    for step in range(1, 5):
        g = rng.standard_normal(n).astype(dtype)
        g_before = g.copy()
        optim_cuda.adam_update(state[0], g, state[1], state[2], state[3], 0.01, 0.9, 0.999, 1e-8, wd,
                               float(step), maximize, decoupled)
        np.testing.assert_array_equal(g, g_before)                    # the gradient is read only
        adam_update_reference(ref[0], g, ref[1], ref[2], ref[3], 0.01, 0.9, 0.999, 1e-8, wd, float(step),
                              maximize, decoupled)
    for a, b in zip(state, ref):
        if b is not None:
            close(a, b, dtype, rtol=1e-5 if dtype == np.float32 else None)


def test_adam_update_covers_more_items_than_threads_and_keeps_nan(host, rng, monkeypatch):
    """Grid-stride loop with the grid capped at 2 blocks; amsgrad's max keeps a NaN from either side."""
    monkeypatch.setattr(cuda_loader, "MAX_GRID", 2)
    n = 5000
    p, m = rng.standard_normal(n), rng.standard_normal(n)
    v, vmax = np.abs(rng.standard_normal(n)), np.abs(rng.standard_normal(n))
    vmax[3] = np.nan
    g = rng.standard_normal(n)
    g[4] = np.nan
    ref = [a.copy() for a in (p, m, v, vmax)]
    optim_cuda.adam_update(p, g, m, v, vmax, 0.1, 0.8, 0.99, 1e-8, 0.0, 3.0)
    adam_update_reference(ref[0], g, ref[1], ref[2], ref[3], 0.1, 0.8, 0.99, 1e-8, 0.0, 3.0, False, False)
    assert host.calls[-1][2] == 2 and n > 2 * cuda_loader.BLOCK
    for a, b in zip((p, m, v, vmax), ref):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a[~np.isnan(b)], b[~np.isnan(b)], rtol=1e-13)
    assert np.isnan(vmax[3]) and np.isnan(vmax[4]) and np.isnan(p[3])


def test_adam_update_rejects_mismatched_arrays_before_launching(host):
    n_calls = len(host.calls)
    with pytest.raises(ValueError, match=r"adam_update: exp_avg has shape \(3,\), p has \(4,\)"):
        optim_cuda.adam_update(np.ones(4), np.ones(4), np.zeros(3), np.zeros(4), None, 0.1, 0.9, 0.99, 1e-8,
                               0.0, 1.0)
    with pytest.raises(TypeError, match="adam_update: g is float32, p is float64"):
        optim_cuda.adam_update(np.ones(4), np.ones(4, np.float32), np.zeros(4), np.zeros(4), None, 0.1, 0.9,
                               0.99, 1e-8, 0.0, 1.0)
    with pytest.raises(ValueError, match="step is the count after this step's increment"):
        optim_cuda.adam_update(np.ones(4), np.ones(4), np.zeros(4), np.zeros(4), None, 0.1, 0.9, 0.99, 1e-8,
                               0.0, 0.0)
    assert len(host.calls) == n_calls

# ---------------------------------------------------------------------------- Philox and dropout

# Random123's known-answer vectors for philox4x32_10 (kat_vectors): counter, key, result
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def test_philox_known_answers(host):
    ctr = np.array([c for c, _, _ in PHILOX_KAT], dtype=np.uint32)
    key = np.array([k for _, k, _ in PHILOX_KAT], dtype=np.uint32)
    out = np.empty_like(ctr)
    cuda_loader.launch("activation", "philox4x32_10_kernel", None, len(PHILOX_KAT),
                       (ctr, key, out, np.int64(len(PHILOX_KAT))))
    np.testing.assert_array_equal(out, np.array([r for _, _, r in PHILOX_KAT], dtype=np.uint32))
    np.testing.assert_array_equal(_philox_numpy(ctr.T, key.T).T, out)   # the test's own model agrees


def _philox_numpy(c, k):
    """Philox4x32-10 in NumPy (uint64 arithmetic), c (4, n), k (2, n) -> (4, n) uint32."""
    M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
    m32 = np.uint64(0xFFFFFFFF)
    c = [np.asarray(v, dtype=np.uint64) for v in c]
    k0, k1 = (np.asarray(v, dtype=np.uint64) for v in k)
    for r in range(10):
        if r:
            k0, k1 = (k0 + np.uint64(W0)) & m32, (k1 + np.uint64(W1)) & m32
        p0, p1 = np.uint64(M0) * c[0], np.uint64(M1) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & m32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & m32]
    return np.stack(c).astype(np.uint32)


def _keep_numpy(n, p, seed, offset):
    """The mask dropout.cu must draw: element i <- word i%4 of philox((i/4, offset), seed)."""
    g = np.arange((n + 3) // 4, dtype=np.uint64)
    c = (g & np.uint64(0xFFFFFFFF), g >> np.uint64(32), np.full_like(g, offset & 0xFFFFFFFF),
         np.full_like(g, offset >> 32))
    k = (np.full_like(g, seed & 0xFFFFFFFF), np.full_like(g, seed >> 32))
    bits = _philox_numpy(c, k).T.reshape(-1)[:n]
    return (bits >> 8).astype(np.float64) * 2.0 ** -24 >= p


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,p", [(1, 0.5), (7, 0.3), (4099, 0.5), (1000, 0.0)])
def test_dropout_mask_and_values(host, n, p, dtype, rng):
    seed, offset = 1234 + (7 << 40), (3 << 33) + n       # both words of seed and offset in play
    x = (rng.standard_normal((n,)) + 3).astype(dtype)      # no zeros: a dropped element is visible
    y, mask = activation_cuda.dropout_forward(x, p, seed, offset)
    assert (mask.seed, mask.offset) == (seed, offset)      # the mask is the handed-in key, not a draw
    keep = _keep_numpy(n, p, seed, offset)
    np.testing.assert_array_equal(mask.keep(), keep)
    np.testing.assert_array_equal(y, np.where(keep, x * dtype(1.0 / (1.0 - p)), 0))
    gy = rng.standard_normal(n).astype(dtype)
    np.testing.assert_array_equal(activation_cuda.dropout_backward(gy, mask, p),
                                  np.where(keep, gy * dtype(1.0 / (1.0 - p)), 0))


def test_dropout_statistics_seed_and_offsets(host):
    x = np.ones(200_000, dtype=np.float32)
    for k, p in enumerate((0.1, 0.5, 0.9)):
        _, mask = activation_cuda.dropout_forward(x, p, 7, k * x.size)
        kept = mask.keep().mean()
        sigma = np.sqrt(p * (1 - p) / x.size)
        assert abs(kept - (1 - p)) < 5 * sigma, (p, kept)
    _, m1 = activation_cuda.dropout_forward(x, 0.5, 7, 3 * x.size)
    _, m2 = activation_cuda.dropout_forward(x, 0.5, 7, 4 * x.size)   # the op's next offset
    assert m2.offset > m1.offset and 0.45 < (m1.keep() == m2.keep()).mean() < 0.55   # fresh masks
    _, m3 = activation_cuda.dropout_forward(x, 0.5, 8, 3 * x.size)   # another seed
    assert 0.45 < (m1.keep() == m3.keep()).mean() < 0.55
    _, again = activation_cuda.dropout_forward(x, 0.1, 7, 0)
    _, same = activation_cuda.dropout_forward(x, 0.1, 7, 0)
    assert (again.seed, again.offset) == (same.seed, same.offset)
    np.testing.assert_array_equal(again.keep(), same.keep())


def test_dropout_backward_rejects_a_foreign_mask(host):
    _, mask = activation_cuda.dropout_forward(np.ones((4, 4), np.float32), 0.5, 1, 0)
    with pytest.raises(ValueError, match="dropout_backward"):
        activation_cuda.dropout_backward(np.ones((2, 8), np.float32), mask, 0.5)


def _f32(*shape):
    return np.ones(shape, np.float32)


# (launcher call, the error it must raise): shapes or dtypes that disagree, caught before a launch
BAD_LAUNCHES = [
    (lambda: activation_cuda.relu_backward(_f32(4), _f32(5)),
     ValueError, r"relu_backward: expected y of shape \(4,\), got \(5,\)"),
    (lambda: activation_cuda.relu_backward(_f32(4), np.ones(4)),
     TypeError, "relu_backward: expected y of dtype float32, got float64"),
    (lambda: lrn_cuda.lrn_backward(_f32(1, 3, 2, 2), _f32(1, 3, 2, 2), _f32(1, 3, 2, 2), _f32(1, 4, 2, 2),
                                   3, 1e-4, 0.75),
     ValueError, r"lrn_backward: expected scale of shape \(1, 3, 2, 2\), got \(1, 4, 2, 2\)"),
    (lambda: lrn_cuda.lrn_forward(_f32(4), 3, 1e-4, 0.75, 1.0),
     ValueError, "lrn_forward: expected x of shape"),
    (lambda: loss_cuda.softmax_cross_entropy_backward(_f32(3), _f32(4, 5), np.zeros(4, np.int64)),
     ValueError, r"softmax_cross_entropy_backward: expected gloss of shape \(4,\)"),
    (lambda: loss_cuda.softmax_cross_entropy_backward(_f32(4), _f32(4, 5), np.zeros(3, np.int64)),
     ValueError, r"softmax_cross_entropy_backward: expected target of shape \(4,\), got \(3,\)"),
    (lambda: loss_cuda.softmax_cross_entropy_forward(_f32(4, 5), np.zeros(4)),
     TypeError, "softmax_cross_entropy_forward: expected integer class indices"),
    (lambda: loss_cuda.softmax_cross_entropy_forward(_f32(20), np.zeros(4, np.int64)),
     ValueError, "softmax_cross_entropy_forward: expected logits to be 2-d"),
    (lambda: linear_cuda.bias_add(_f32(3, 4), _f32(5)),
     ValueError, r"bias_add: expected b of shape \(4,\), got \(5,\)"),
    (lambda: linear_cuda.bias_add(_f32(3, 4), np.ones(4)),
     TypeError, "bias_add: expected b of dtype float32"),
    (lambda: pooling_cuda.max_pool2d_backward(_f32(1, 2, 3, 3), np.zeros((1, 2, 3, 3), np.int64),
                                              (1, 2, 11, 11), (3, 3), (2, 2), (0, 0)),
     ValueError, r"max_pool2d_backward: expected gy of shape \(1, 2, 5, 5\) for x_shape \(1, 2, 11, 11\)"),
    (lambda: pooling_cuda.max_pool2d_backward(_f32(1, 2, 2, 2), np.zeros((1, 2, 3, 3), np.int64),
                                              (1, 2, 5, 5), (3, 3), (2, 2), (0, 0)),
     ValueError, r"max_pool2d_backward: expected argmax of shape \(1, 2, 2, 2\), got \(1, 2, 3, 3\)"),
    (lambda: pooling_cuda.max_pool2d_backward(_f32(1, 2, 2, 2), np.zeros((1, 2, 2, 2), np.int32),
                                              (1, 2, 5, 5), (3, 3), (2, 2), (0, 0)),
     TypeError, "max_pool2d_backward: expected argmax of dtype int64, got int32"),
    (lambda: pooling_cuda.max_pool2d_forward(_f32(2, 5, 5), 3, 3, 2, 2, 0, 0),
     ValueError, "max_pool2d_forward: expected x to be 4-d"),
    (lambda: optim_cuda.sgd_update(_f32(4), _f32(3), None, 0.1),
     ValueError, r"sgd_update: grad has shape \(3,\), w has \(4,\)"),
    (lambda: optim_cuda.sgd_update(_f32(4), _f32(4), _f32(4)[::2], 0.1, 0.9),
     ValueError, "sgd_update: v must be C-contiguous"),
    (lambda: activation_cuda.dropout_backward(_f32(4), activation_cuda.PhiloxMask(1, 0, (5,), 0.5, np), 0.5),
     ValueError, "dropout_backward: mask is for shape"),
]


@pytest.mark.parametrize("call,error,message", BAD_LAUNCHES)
def test_launchers_check_shapes_before_launching(host, call, error, message):
    n_calls = len(host.calls)
    with pytest.raises(error, match=message):
        call()
    assert len(host.calls) == n_calls              # nothing reached a kernel


def test_launch_runs_on_the_arrays_device_and_caches_kernels(monkeypatch):
    """On CuPy arrays: the RawKernel is built once per (family, expression, device) and launched
    under ``cupy.cuda.Device(<the arrays' GPU>)``, not the current device; mixed GPUs are refused."""
    import types
    entered, built, launched = [None], [], []       # entered: the stack of current devices

    class Device:
        def __init__(self, i):
            self.id = i

        def __enter__(self):
            entered.append(self.id)

        def __exit__(self, *exc):
            entered.pop()

    class RawModule:
        def __init__(self, code, options, name_expressions):
            pass

        def get_function(self, expr):
            built.append((expr, entered[-1]))
            return lambda grid, block, args: launched.append((expr, entered[-1]))

    fake = types.ModuleType("cupy")
    fake.RawModule = RawModule
    fake.cuda = types.SimpleNamespace(Device=Device, runtime=types.SimpleNamespace(getDevice=lambda: 0))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cuda_loader, "xp_of", lambda a: fake if isinstance(a, Arr) else np)
    cuda_loader.clear_cache()

    class Arr:
        __module__ = "cupy"

        def __init__(self, dev):
            self.device = Device(dev)

    try:
        for dev in (1, 1, 0, 1):
            cuda_loader.launch("activation", "relu_forward_kernel", np.float32, 10,
                               (Arr(dev), Arr(dev), np.int64(10)))
        assert built == [("relu_forward_kernel<float>", 1), ("relu_forward_kernel<float>", 0)]
        assert launched == [("relu_forward_kernel<float>", d) for d in (1, 1, 0, 1)]
        with pytest.raises(ValueError, match=r"relu_forward_kernel: the arrays are on different GPUs"):
            cuda_loader.launch("activation", "relu_forward_kernel", np.float32, 10,
                               (Arr(0), Arr(1), np.int64(10)))
    finally:
        cuda_loader.clear_cache()


def test_launchers_reject_other_dtypes(host):
    with pytest.raises(TypeError, match="float32 or float64"):
        activation_cuda.relu_forward(np.ones(3, dtype=np.int32))


def test_launch_without_gpu_or_emulation_says_so():
    with cuda_loader.use_host_emulation(None), pytest.raises(TypeError, match="CuPy arrays"):
        activation_cuda.relu_forward(np.ones(3, dtype=np.float32))


# ---------------------------------------------------------------------------- the ops on the launchers

LAUNCHERS = {
    ("conv", "im2col"): conv_cuda.im2col, ("conv", "col2im"): conv_cuda.col2im,
    ("conv", "im2col_batched"): conv_cuda.im2col_batched,
    ("conv", "col2im_batched"): conv_cuda.col2im_batched,
    ("pooling", "max_pool2d_forward"): pooling_cuda.max_pool2d_forward,
    ("pooling", "max_pool2d_backward"): pooling_cuda.max_pool2d_backward,
    ("lrn", "lrn_forward"): lrn_cuda.lrn_forward, ("lrn", "lrn_backward"): lrn_cuda.lrn_backward,
    ("activation", "relu_forward"): activation_cuda.relu_forward,
    ("activation", "relu_backward"): activation_cuda.relu_backward,
    ("activation", "dropout_forward"): activation_cuda.dropout_forward,
    ("activation", "dropout_backward"): activation_cuda.dropout_backward,
    ("linear", "bias_add"): linear_cuda.bias_add,
    ("loss", "softmax_cross_entropy_forward"): loss_cuda.softmax_cross_entropy_forward,
    ("loss", "softmax_cross_entropy_backward"): loss_cuda.softmax_cross_entropy_backward,
    ("optim", "sgd_update"): optim_cuda.sgd_update,
    ("optim", "adam_update"): optim_cuda.adam_update,
}
LAUNCHERS.update({("winograd", name): getattr(winograd_cuda, name) for name in (
    "input_transform", "input_adjoint", "filter_transform", "filter_adjoint", "output_transform",
    "output_adjoint")})


@pytest.fixture
def ops_on_cuda_launchers(host, monkeypatch):
    """Route tinyconv's ops, on NumPy arrays, to the CUDA launchers (host emulation) in fast mode.

    This runs the ops exactly as on a GPU, seam calls and all, with only the array module
    changed, so a launcher that disagrees with how an op calls it fails here.
    """
    from tinyconv import backend
    for (fam, name), fn in LAUNCHERS.items():
        monkeypatch.setitem(backend._kernel_cache, (fam, name, "numba"), fn)
    with tinyconv.use_kernels("fast"):
        yield


def _small_alexnet_step(x, target, params):
    import tinyconv.functional as F
    w1, b1, w2, b2 = params
    h = F.relu(F.conv2d(x, w1, b1, stride=2, padding=2))
    h = F.local_response_norm(h, 5, alpha=5e-4 * 40, beta=0.75, k=2.0)
    h = F.max_pool2d(h, 3, stride=2)
    logits = F.linear(h.flatten(1), w2, b2)
    return F.cross_entropy(logits, target)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_through_cuda_launchers_match_reference_mode(ops_on_cuda_launchers, host, dtype, rng):
    x = rng.standard_normal((2, 3, 19, 19)).astype(dtype)
    target = rng.integers(0, 5, 2)
    shapes = [(6, 3, 5, 5), (6,), (5, 6 * 4 * 4), (5,)]
    values = [(rng.standard_normal(s) * 0.3).astype(dtype) for s in shapes]

    def run():
        params = [tinyconv.tensor(v, requires_grad=True) for v in values]
        xt = tinyconv.tensor(x, requires_grad=True)
        loss = _small_alexnet_step(xt, tinyconv.tensor(target), params)
        loss.backward()
        return loss.item(), [p.grad.array for p in [xt] + params]

    n_calls = len(host.calls)
    loss, grads = run()
    launched = {expr.split("<")[0] for _, expr, _, _ in host.calls[n_calls:]}
    assert {"im2col_kernel", "col2im_kernel", "relu_forward_kernel", "lrn_forward_kernel",
            "max_pool2d_forward_kernel", "max_pool2d_backward_kernel", "softmax_cross_entropy_forward_kernel",
            "softmax_cross_entropy_backward_kernel", "bias_add_kernel"} <= launched
    with tinyconv.use_kernels("reference"):
        loss_ref, grads_ref = run()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert abs(loss - loss_ref) <= rtol * abs(loss_ref)
    for g, g_ref in zip(grads, grads_ref):
        close(g, g_ref, dtype, rtol=rtol * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dilated_ops_through_cuda_launchers_match_reference_mode(ops_on_cuda_launchers, host, dtype, rng):
    """conv2d (dilated, padding="same" with an odd total) and a dilated max_pool2d, as on a GPU."""
    import tinyconv.functional as F
    x = rng.standard_normal((2, 4, 11, 10)).astype(dtype)
    w = (rng.standard_normal((6, 2, 2, 3)) * 0.3).astype(dtype)

    def run():
        xt, wt = tinyconv.tensor(x, requires_grad=True), tinyconv.tensor(w, requires_grad=True)
        h = F.conv2d(xt, wt, padding="same", dilation=(3, 2), groups=2)
        y = F.max_pool2d(h, 3, stride=2, padding=1, dilation=2, ceil_mode=True)
        y.backward(tinyconv.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape).astype(dtype)))
        return y.array, xt.grad.array, wt.grad.array

    n_calls = len(host.calls)
    got = run()
    launched = {expr.split("<")[0] for _, expr, _, _ in host.calls[n_calls:]}
    assert {"im2col_kernel", "col2im_kernel", "max_pool2d_forward_kernel",
            "max_pool2d_backward_kernel"} <= launched
    with tinyconv.use_kernels("reference"):
        want = run()
    for g, r in zip(got, want):
        close(g, r, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_dropout_op_through_cuda_launchers(ops_on_cuda_launchers, rng):
    import tinyconv.functional as F
    tinyconv.manual_seed(3)
    x = tinyconv.tensor(rng.standard_normal((8, 64)) + 3, requires_grad=True)
    y = F.dropout(x, 0.25)
    (y * 2).sum().backward()
    keep = y.array != 0
    assert 0.6 < keep.mean() < 0.9
    np.testing.assert_allclose(y.array, np.where(keep, x.array / 0.75, 0))
    np.testing.assert_allclose(x.grad.array, np.where(keep, 2 / 0.75, 0))


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_optimizer_through_cuda_launcher(ops_on_cuda_launchers, host, momentum, nesterov, rng):
    """tinyconv.optim.SGD calls sgd_update as its contract says; three steps match reference mode."""
    values = [rng.standard_normal((4, 5)), rng.standard_normal(7)]
    grads = [[rng.standard_normal(v.shape) for v in values] for _ in range(3)]

    def run():
        params = [tinyconv.tensor(v, requires_grad=True) for v in values]
        opt = tinyconv.optim.SGD(params, lr=0.1, momentum=momentum, weight_decay=1e-2, nesterov=nesterov)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = tinyconv.tensor(g)
            opt.step()
        return [p.array for p in params]

    n_calls = len(host.calls)
    got = run()
    assert sum(expr.startswith("sgd_update_kernel") for _, expr, _, _ in host.calls[n_calls:]) == 6
    with tinyconv.use_kernels("reference"):
        want = run()
    for g, w in zip(got, want):
        close(g, w, np.float64)


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.05, amsgrad=True, weight_decay=1e-2)),
                                         ("AdamW", dict(lr=0.05, maximize=True)),
                                         ("Adam", dict(lr=0.05))])
def test_adam_optimizer_through_cuda_launcher(ops_on_cuda_launchers, host, name, kwargs, rng):
    """tinyconv.optim.Adam/AdamW call adam_update as its contract says; four steps match reference mode."""
    values = [rng.standard_normal((4, 5)), rng.standard_normal(7)]
    grads = [[rng.standard_normal(v.shape) for v in values] for _ in range(4)]

    def run():
        params = [tinyconv.tensor(v, requires_grad=True) for v in values]
        opt = getattr(tinyconv.optim, name)(params, **kwargs)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = tinyconv.tensor(g)
            opt.step()
        return [p.array for p in params]

    n_calls = len(host.calls)
    got = run()
    assert sum(expr.startswith("adam_update_kernel") for _, expr, _, _ in host.calls[n_calls:]) == 8
    with tinyconv.use_kernels("reference"):
        want = run()
    for g, w in zip(got, want):
        close(g, w, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ["winograd2x2", "winograd4x4"])
def test_winograd_op_through_cuda_launchers(ops_on_cuda_launchers, host, algorithm, dtype, rng, monkeypatch):
    """WinogradConv2dFn with every transform on winograd.cu's kernels equals its NumPy-reference run
    (3x3 with groups and "same" padding, then 5x5), forward and backward; the reference run is
    checked against im2col in tests/test_conv_winograd.py."""
    monkeypatch.setattr(tinyconv.backends, "conv_algorithm", algorithm)
    cases = [((2, 4, 7, 6), (6, 2, 3, 3), dict(padding="same", groups=2)),
             ((1, 3, 9, 9), (4, 3, 5, 5), dict(padding=2))]
    for x_shape, w_shape, kw in cases:
        x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(w_shape[0]).astype(dtype)

        def run(x=x, w=w, b=b, kw=kw):
            ts = [tinyconv.tensor(a, requires_grad=True) for a in (x, w, b)]
            y = tinyconv.functional.conv2d(*ts, **kw)
            assert type(y.grad_fn).__name__ == "WinogradConv2dFn"
            (y * y).sum().backward()
            return [y.array] + [t.grad.array for t in ts]

        n_calls = len(host.calls)
        got = run()
        launched = {expr.split("<")[0] for _, expr, _, _ in host.calls[n_calls:]}
        assert launched == {f"winograd_{k}_kernel" for k in ("input_transform", "filter_transform",
                                                             "output_transform", "output_adjoint",
                                                             "input_adjoint_tiles", "input_adjoint_gather",
                                                             "filter_adjoint")}
        with tinyconv.use_kernels("reference"):
            want = run()
        rtol = 1e-4 if dtype == np.float32 else 1e-11
        for g, r in zip(got, want):
            close(g, r, dtype, rtol=rtol)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(m=st.sampled_from([2, 4]), r=st.sampled_from([3, 5]), N=st.integers(0, 2), Cg=st.integers(1, 3),
       Kg=st.integers(1, 3), groups=st.integers(1, 2), H=st.integers(1, 9), W=st.integers(1, 9),
       pad=st.tuples(st.integers(0, 3), st.integers(0, 3)), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_winograd_op_through_cuda_launchers_any_shape(ops_on_cuda_launchers, host, monkeypatch, m, r, N, Cg,
                                                      Kg, groups, H, W, pad, bias, dtype, seed):
    """Hypothesis over shapes: the op with winograd.cu's transforms equals its NumPy-reference run,
    forward and every gradient; empty batches, 1x1 images, partial tiles, padding wider than the
    kernel's reach, groups, no bias."""
    if H + 2 * pad[0] < r or W + 2 * pad[1] < r:
        return                                             # kernel larger than the padded input
    monkeypatch.setattr(tinyconv.backends, "conv_algorithm", f"winograd{m}x{m}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, Cg * groups, H, W)).astype(dtype)
    w = rng.standard_normal((Kg * groups, Cg, r, r)).astype(dtype)
    b = rng.standard_normal(Kg * groups).astype(dtype) if bias else None

    def run():
        ts = [tinyconv.tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
        y = tinyconv.functional.conv2d(*ts, padding=pad, groups=groups)
        assert type(y.grad_fn).__name__ == "WinogradConv2dFn"
        y.backward(tinyconv.tensor(np.cos(np.arange(y.numel(), dtype=dtype)).reshape(y.shape)))
        return [y.array] + [t.grad.array for t in ts]

    got = run()
    with tinyconv.use_kernels("reference"):
        want = run()
    for g, r_ in zip(got, want):
        close(g, r_, dtype, rtol=1e-4 if dtype == np.float32 else 1e-11)


# ---------------------------------------------------------------------------- memcheck on the CPU


def _libasan():
    path = subprocess.run([GXX, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def _asan_env(log_dir):
    return dict(os.environ, LD_PRELOAD=_libasan(), TINYCONV_HOST_ASAN="1",
                ASAN_OPTIONS=f"detect_leaks=0:log_path={log_dir}/asan")


def _asan_errors(log_dir):
    reports = [open(os.path.join(log_dir, f), encoding="utf-8", errors="replace").read()
               for f in os.listdir(log_dir)]
    return [r for r in reports if "ERROR: AddressSanitizer" in r]


def test_host_kernels_under_address_sanitizer(tmp_path):
    """compute-sanitizer's memcheck, on the CPU: every host-emulation test of this file and the
    fake-CuPy GEMM and Winograd tests again, with the kernels built by g++ -fsanitize=address and
    NumPy's buffers given red zones (libasan preloaded), so a kernel that reads or writes one
    element outside its arrays fails here even where its results come out right."""
    need(GXX, "g++ is not installed")
    need(_libasan(), "g++ has no AddressSanitizer runtime (libasan)")
    logs = tmp_path / "asan"
    logs.mkdir()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                        os.path.join(os.path.dirname(__file__), "test_gpu_gemm.py"),
                        "-k", "not nvcc and not nvrtc and not address_sanitizer"],
                       capture_output=True, text=True, env=_asan_env(logs), timeout=900, cwd=str(tmp_path))
    errors = _asan_errors(logs)
    assert not errors, errors[0][:4000]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    last = r.stdout.splitlines()[-1]
    assert " passed" in last and " skipped" not in last, r.stdout[-500:]


def test_address_sanitizer_check_has_teeth(tmp_path):
    """The set-up above reports a kernel that reads one element past a NumPy array."""
    need(GXX, "g++ is not installed")
    need(_libasan(), "g++ has no AddressSanitizer runtime (libasan)")
    src = tmp_path / "oob.cpp"
    src.write_text('extern "C" float past_the_end(const float* p, int n) { return p[n]; }\n')
    so = tmp_path / "liboob.so"
    subprocess.run([GXX, "-shared", "-fPIC", "-fsanitize=address", str(src), "-o", str(so)], check=True)
    logs = tmp_path / "asan"
    logs.mkdir()
    code = ("import ctypes, numpy as np; f = ctypes.CDLL(%r).past_the_end; f.restype = ctypes.c_float; "
            "a = np.ones(37, np.float32); f(ctypes.c_void_p(a.ctypes.data), 37)" % str(so))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_asan_env(logs),
                       timeout=120)
    errors = _asan_errors(logs)
    assert r.returncode != 0 and errors, (r.returncode, r.stderr[-2000:])
    assert "heap-buffer-overflow" in errors[0]
