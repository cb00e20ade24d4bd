#!/usr/bin/env bash
# One command for a lent GPU: the GPU tests, compute-sanitizer on a small training step, and
# the benchmarks against PyTorch + cuDNN, in at most 8 minutes on an H100/H200, results under
# $OUT (default benchmarks/results).  Any session that finds a GPU lent runs this first and
# commits what it wrote:
#
#     bash benchmarks/gpu_suite.sh                       # on the GPU machine ($OUT set by the tool)
#     TINYCONV_SUITE_DRY_RUN=1 bash benchmarks/gpu_suite.sh   # anywhere: the script's CPU-side parts
#                                                        # (tests/test_gpu.py runs this dry run)
#
# Phases, each under its own time limit so that a hang in one still leaves the others' results:
#   1. install tinyconv from this tree (no network: --no-deps --no-index; the image has its needs)
#   2. pytest tests/test_gpu.py (not the slow sanitizer runs) and the NVRTC checks of
#      tests/test_cuda_sources.py (the machine's own NVRTC); the rest of that file is CPU work
#      that CI already runs
#   3. compute-sanitizer memcheck, then racecheck (the block-per-row kernels and the implicit-GEMM
#      tiles share memory), on benchmarks/gpu_small_step.py: a few training steps of small32 by each
#      CUDA convolution algorithm, every kernel kind
#   4. benchmarks/bench_gpu.py: per-layer rows and the paper AlexNet's training step at batch
#      128, FP32 and TF32, tinyconv vs PyTorch + cuDNN, TFLOP/s and GB/s against the measured
#      ceilings and the card's datasheet peaks
# Files written to $OUT (the device tool returns at most 8): suite.log, tests.log, tests.xml,
# sanitizer.log, bench.log, gpu-<device>-<date>.json/.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
DRY=${TINYCONV_SUITE_DRY_RUN:-0}
BUDGET=${TINYCONV_SUITE_BUDGET_S:-465}      # seconds for the whole suite (8 minutes, less a margin)
LOG="$OUT/suite.log"
: >"$LOG"

say() { echo "[gpu_suite $(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - SECONDS)); }
status=0

# ---------------------------------------------------------------- 1. environment
say "tree $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(uname -n); dry run: $DRY"
{ nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
  nvcc --version 2>&1 | tail -2 || true
  "$PY" - <<'EOF' 2>&1
import importlib
for m in ("numpy", "numba", "cupy", "torch", "pytest"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:  # noqa: BLE001
        print(m, "missing:", e)
EOF
} >>"$LOG" 2>&1
if ! "$PY" -c "import tinyconv.kernels.cuda_loader" 2>/dev/null; then
    say "installing tinyconv (editable, no network)"
    "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e . >>"$LOG" 2>&1 \
        || { say "pip install failed; linking kernels/ into the package instead"; ln -sfn ../kernels tinyconv/kernels; }
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import tinyconv, tinyconv.kernels.cuda_loader as c; print('tinyconv', tinyconv.__version__, \
'cuda available:', tinyconv.cuda.is_available(), '|', tinyconv.cuda.why_unavailable() or 'ok', '| kernels', c.KERNEL_DIR)" \
    2>&1 | tee -a "$LOG" || status=1

# ---------------------------------------------------------------- 2. GPU tests
if [ "$DRY" = 1 ]; then
    say "tests: collection only (dry run)"
    timeout 120 "$PY" -m pytest -q --collect-only -p no:cacheprovider tests/test_gpu.py >"$OUT/tests.log" 2>&1 \
        || { say "test collection FAILED"; status=1; }
else
    # 230 s: the implicit-GEMM family (20 tiled-GEMM instances) and the Winograd family (56
    # unrolled instances) take NVRTC about 12 and 9 s per architecture on their own, compiled
    # three times here (sm_80, sm_90, CuPy's -arch of this GPU)
    say "tests: tests/test_gpu.py, NVRTC checks of tests/test_cuda_sources.py (limit 230 s)"
    timeout 230 "$PY" -m pytest -q -rs -p no:cacheprovider -m "not slow" --junitxml="$OUT/tests.xml" \
        tests/test_gpu.py "tests/test_cuda_sources.py::test_nvrtc_compiles_as_cupy_loads_it" >"$OUT/tests.log" 2>&1
    rc=$?
    tail -3 "$OUT/tests.log" | tee -a "$LOG"
    [ $rc -eq 0 ] || { say "tests FAILED (exit $rc; 124 = time limit)"; status=1; }
fi

# ---------------------------------------------------------------- 3. compute-sanitizer
SAN=$(command -v compute-sanitizer || { [ -x /usr/local/cuda/bin/compute-sanitizer ] && echo /usr/local/cuda/bin/compute-sanitizer; })
if [ "$DRY" = 1 ]; then
    say "sanitizer: skipped (dry run); the small step on the CPU instead"
    timeout 120 "$PY" benchmarks/gpu_small_step.py --device cpu >"$OUT/sanitizer.log" 2>&1 \
        || { say "small step FAILED"; status=1; }
    tail -1 "$OUT/sanitizer.log" | tee -a "$LOG"
elif [ -n "$SAN" ]; then
    : >"$OUT/sanitizer.log"
    for tool in memcheck racecheck; do
        say "sanitizer: $tool on benchmarks/gpu_small_step.py (limit 60 s)"
        timeout 60 "$SAN" --tool "$tool" --error-exitcode 99 "$PY" benchmarks/gpu_small_step.py --steps 2 \
            >>"$OUT/sanitizer.log" 2>&1
        rc=$?
        tail -2 "$OUT/sanitizer.log" | tee -a "$LOG"
        [ $rc -eq 0 ] || { say "sanitizer $tool FAILED (exit $rc; 99 = errors found, 124 = time limit)"; status=1; }
    done
else
    say "sanitizer: compute-sanitizer not installed"
fi

# ---------------------------------------------------------------- 4. benchmarks
if [ "$DRY" = 1 ]; then
    say "bench: --dry-run"
    "$PY" benchmarks/bench_gpu.py --dry-run --steps 128 --out "$OUT" >"$OUT/bench.log" 2>&1 \
        || { say "bench dry run FAILED"; status=1; }
else
    lim=$(( $(left) - 10 ))
    if [ $lim -gt 60 ]; then
        say "bench: FP32 and TF32, layers and the step at batch 128 (limit ${lim} s)"
        timeout "$lim" "$PY" benchmarks/bench_gpu.py --steps 128 --out "$OUT" >"$OUT/bench.log" 2>&1
        rc=$?
        [ $rc -eq 0 ] || { say "bench FAILED (exit $rc; 124 = time limit)"; status=1; }
        grep -E "^\| (train step|conv1 forward|conv1 backward-data|conv3 forward|pool1|lrn1|relu1|dropout6|fc6)" "$OUT"/gpu-*.md 2>/dev/null | tee -a "$LOG"
    else
        say "bench: no time left (${lim} s)"; status=1
    fi
fi

say "done in ${SECONDS}s, status $status; files: $(ls "$OUT" | tr '\n' ' ')"
exit $status
