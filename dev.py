#!/usr/bin/env python3
"""Set tinyconv up from nothing but Python, then run its main jobs.

    python3 dev.py train [ARGS]   # train the flagship AlexNet on bundled real images (CPU)
    python3 dev.py test [ARGS]    # lint (ruff) and the whole test suite (pytest ARGS)
    python3 dev.py bench [ARGS]   # CPU benchmarks against PyTorch

Each creates ./.venv on first use and installs tinyconv into it (editable) with the
extras it needs; later runs reuse it and reinstall only when setup.py changes.
"""
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def run(*cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)


def ensure_env(extras):
    """Create .venv and install tinyconv[extras] unless already done for this setup.py."""
    if not PY.exists():
        print(f"creating {VENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "setup.py").read_bytes() + extras.encode()).hexdigest()[:16]
    stamp = VENV / f".tinyconv-installed-{digest}"
    if not stamp.exists():
        rc = run(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", f".[{extras}]")
        if rc:
            sys.exit(f"dev.py: installing tinyconv[{extras}] failed (pip exit {rc})")
        stamp.touch()


def test(args):
    ensure_env("test,demo,dist")     # dist: mpi4py + MPICH, for the 2-rank tests
    rc = run(PY, "-m", "ruff", "check", ".")
    if rc:
        sys.exit(f"dev.py test: ruff found errors (exit {rc})")
    rc = run(PY, "-m", "pytest", *args)
    if rc == 5:
        sys.exit("dev.py test: pytest collected no tests; that is a failure here")
    sys.exit(rc)


def train(args):
    ensure_env("demo")
    sys.exit(run(BIN / "tinyconv", "train", *args))


def bench(args):
    ensure_env("test,demo")
    sys.exit(run(PY, "benchmarks/bench_cpu.py", *args))


if __name__ == "__main__":
    jobs = {"test": test, "train": train, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in jobs:
        sys.exit(__doc__)
    jobs[sys.argv[1]](sys.argv[2:])
