"""benchmarks/bench_cpu.py runs end to end: tinyconv here, PyTorch in its own process, both timed."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_cpu_times_both_sides_and_writes_its_files(tmp_path):
    pytest.importorskip("torch", reason="PyTorch (the benchmark's reference) is not installed")
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_cpu.py"), "--keep-openblas-env",
           "--only", "pool5,conv5", "--batches", "1", "--no-ref", "--repeats", "1",
           "--out", str(tmp_path), "--tag", "smoke"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    doc = json.loads((tmp_path / "smoke.json").read_text())
    assert doc["machine"]["torch"] and doc["machine"]["torch_env"] is not None
    rows = {(r["name"], r["pass"]): r["ms"] for r in doc["rows"]}
    assert set(rows) == {(n, p) for n in ("pool5", "conv5") for p in ("fwd", "fwdbwd")}
    for (name, _), ms in rows.items():
        assert ms["fast"] > 0 and ms["torch"] > 0
        assert ("gemms" in ms) == (name == "conv5")    # conv rows also time their GEMMs alone
    md = (tmp_path / "smoke.md").read_text()
    assert "PyTorch in a process of its own" in md and "| conv5 | 1 | fwdbwd |" in md
