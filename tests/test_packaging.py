"""`pip install .` (not editable) gives a package that imports from anywhere and ships its kernels."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_imports_outside_repo(tmp_path):
    target = tmp_path / "site"
    # --no-deps: the dependencies are already in this environment; we check our own files
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (target / "kernels").exists(), "a generic top-level 'kernels' module was installed"
    code = (
        "import os, sys, tinyconv, tinyconv.kernels as k\n"
        "assert tinyconv.__file__.startswith(sys.argv[1]), tinyconv.__file__\n"
        "d = os.path.dirname(k.__file__)\n"
        "src = sorted(f for f in os.listdir(d) if f.endswith(('.py', '.cu', '.cuh', '.h')))\n"
        "print(' '.join(src))\n"
        "x = tinyconv.tensor([1.0, 2.0], requires_grad=True)\n"
        "(x * x).sum().backward(); assert x.grad.tolist() == [2.0, 4.0]\n")
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    installed = set(r.stdout.split())
    shipped = {p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".py", ".cu", ".cuh", ".h")}
    assert shipped <= installed, f"kernel sources missing from the installed package: {shipped - installed}"
