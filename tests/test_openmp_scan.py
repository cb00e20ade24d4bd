"""One scan of the process's OpenMP runtimes, in the kernels (``kernels/_openmp.py``), used by
both the kernels' thread-pool choice and ``tinyconv.tune_process`` (tinyconv may import the
kernels; the kernels import nothing of tinyconv)."""
import ast
from pathlib import Path

import pytest

import tinyconv
from tinyconv.kernels import _numba_threads, _openmp

ROOT = Path(__file__).resolve().parents[1]


def test_one_module_reads_proc_self_maps_for_openmp():
    sources = [p for d in ("tinyconv", "kernels") for p in (ROOT / d).rglob("*.py")]
    readers = sorted(str(p.relative_to(ROOT)) for p in sources
                     if "/proc/self/maps" in p.read_text() and "libgomp" in p.read_text())
    assert readers == ["kernels/_openmp.py"]


def test_both_users_call_the_kernels_scan():
    assert _numba_threads.openmp_runtimes is _openmp.openmp_runtimes
    tree = ast.parse((ROOT / "tinyconv" / "threads.py").read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("kernels._openmp", "openmp_runtimes") in imported


def test_tune_process_reports_what_the_scan_finds(monkeypatch):
    monkeypatch.setattr(_openmp, "openmp_runtimes", lambda: ["/x/libgomp.so.1"])
    tuned = tinyconv.tune_process(wait_policy=None, keep_freed_memory=False)
    assert tuned["openmp_runtimes"] == ["/x/libgomp.so.1"] and tuned["wait_policy_applies"] is False


def test_the_scan_finds_torchs_runtime():
    pytest.importorskip("torch", reason="PyTorch (which loads libgomp) is not installed")
    found = _openmp.openmp_runtimes()
    assert found == sorted(found) and any(Path(p).name.startswith("libgomp") for p in found), found
