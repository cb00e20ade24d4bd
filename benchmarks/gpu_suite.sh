#!/usr/bin/env bash
# One command for a lent GPU: the GPU tests and the benchmarks against PyTorch + cuDNN, in under
# 10 minutes, results under $OUT (default benchmarks/results).  Any session that finds a GPU lent
# runs this first and commits what it wrote:
#
#     bash benchmarks/gpu_suite.sh                       # on the GPU machine ($OUT set by the tool)
#     TINYCONV_SUITE_DRY_RUN=1 bash benchmarks/gpu_suite.sh   # anywhere: the script's CPU-side parts
#
# Phases, each under its own time limit so that a hang in one still leaves the others' results:
#   1. install tinyconv from this tree (no network: --no-deps --no-index; the image has its needs)
#   2. pytest tests/test_cuda_sources.py tests/test_gpu.py (not the slow sanitizer runs)
#   3. benchmarks/bench_gpu.py: per-layer rows at batch 128, training steps at 128 and 256, FP32 and TF32
#   4. compute-sanitizer memcheck and racecheck over the kernel tests (tests marked slow)
# Files written to $OUT (the device tool returns at most 8): suite.log, tests.log, tests.xml,
# bench.log, gpu-<device>-<date>.json/.md, sanitizer.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
DRY=${TINYCONV_SUITE_DRY_RUN:-0}
BUDGET=${TINYCONV_SUITE_BUDGET_S:-570}      # seconds for the whole suite
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
    say "tests: tests/test_cuda_sources.py tests/test_gpu.py (limit 170 s)"
    timeout 170 "$PY" -m pytest -q -rs -p no:cacheprovider -m "not slow" --junitxml="$OUT/tests.xml" \
        tests/test_cuda_sources.py tests/test_gpu.py >"$OUT/tests.log" 2>&1
    rc=$?
    tail -3 "$OUT/tests.log" | tee -a "$LOG"
    [ $rc -eq 0 ] || { say "tests FAILED (exit $rc; 124 = time limit)"; status=1; }
fi

# ---------------------------------------------------------------- 3. benchmarks
if [ "$DRY" = 1 ]; then
    say "bench: --dry-run"
    "$PY" benchmarks/bench_gpu.py --dry-run --out "$OUT" >"$OUT/bench.log" 2>&1 \
        || { say "bench dry run FAILED"; status=1; }
else
    lim=$(( $(left) - 130 )); [ $lim -gt 330 ] && lim=330
    say "bench: FP32 and TF32 (limit ${lim} s)"
    timeout "$lim" "$PY" benchmarks/bench_gpu.py --out "$OUT" >"$OUT/bench.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || { say "bench FAILED (exit $rc; 124 = time limit)"; status=1; }
    grep -E "^\| (train step|conv1 forward|pool1|lrn1|relu1|dropout6|fc6)" "$OUT"/gpu-*.md 2>/dev/null | tee -a "$LOG"
fi

# ---------------------------------------------------------------- 4. compute-sanitizer
if [ "$DRY" = 1 ]; then
    say "sanitizer: skipped (dry run)"
elif command -v compute-sanitizer >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    export PATH=$PATH:/usr/local/cuda/bin
    lim=$(( $(left) - 10 ))
    if [ $lim -gt 30 ]; then
        say "sanitizer: memcheck + racecheck over the kernel tests (limit ${lim} s)"
        timeout "$lim" "$PY" -m pytest -q -rs -p no:cacheprovider -m slow tests/test_gpu.py \
            >"$OUT/sanitizer.log" 2>&1
        rc=$?
        tail -3 "$OUT/sanitizer.log" | tee -a "$LOG"
        [ $rc -eq 0 ] || { say "sanitizer FAILED (exit $rc; 124 = time limit)"; status=1; }
    else
        say "sanitizer: no time left (${lim} s)"
    fi
else
    say "sanitizer: compute-sanitizer not installed"
fi

say "done in ${SECONDS}s, status $status; files: $(ls "$OUT" | tr '\n' ' ')"
exit $status
