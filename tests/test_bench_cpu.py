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
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:                             # the results name the code they measured
        assert doc["machine"]["tinyconv_commit"].startswith(head.stdout.strip())
        assert f"at commit {doc['machine']['tinyconv_commit']}." in md


def test_bench_cpu_times_the_step_three_ways_with_spread_and_peak_rss(tmp_path):
    pytest.importorskip("torch", reason="PyTorch (the benchmark's reference) is not installed")
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_cpu.py"), "--keep-openblas-env",
           "--only", "step_small28", "--no-ref", "--three-way", "small28:2", "--rounds", "1",
           "--step-repeats", "1", "--step-methods", "interleaved,separate,same", "--conv-algorithm", "all",
           "--out", str(tmp_path), "--tag", "three"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    doc = json.loads((tmp_path / "three.json").read_text())
    three = doc["step_three_ways"]
    assert set(three) == {"interleaved", "separate", "same"}
    for method in ("separate", "same"):
        r = three[method]
        assert r["ms"]["fast"]["n"] == 1 and r["ms"]["torch"]["n"] == 1
        for side in ("fast", "torch"):
            sp = r["ms"][side]
            assert sp["min"] <= sp["q1"] <= sp["median"] <= sp["q3"] <= sp["max"]
            assert r["peak_rss_mb"][side] > 0
        assert r["fast_over_torch"]["median"] > 0
    sides = {c["side"]: c for c in three["separate"]["children"]}
    assert sides["fast"]["tuned"]["OMP_WAIT_POLICY"] == "PASSIVE" and sides["torch"]["tuned"] is None
    # bench_cpu runs without tinyconv.backends.conv_algorithm too: then the choice is recorded as skipped
    algos = doc["step_per_conv_algorithm"]
    assert algos and all(("skipped" in a) or a["ms"]["n"] == 1 for a in algos.values())
    assert doc["machine"]["bandwidth_gb_s"]["copy"] > 0
    md = (tmp_path / "three.md").read_text()
    assert "timed three ways" in md and "Most conservative" in md


def _bench_conv_algos():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_conv_algos",
                                                  os.path.join(ROOT, "benchmarks", "bench_conv_algos.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_conv_algos_sweep_gives_a_ratio_per_shape(monkeypatch):
    """The sweep behind conv_winograd.AUTO_RULE: one Winograd / im2col ratio per (kernel, size, C)."""
    bench = _bench_conv_algos()
    monkeypatch.setattr(bench, "SWEEP_CHANNELS", (4, 8))
    monkeypatch.setattr(bench, "SWEEP_SIZES", (5,))
    r = bench.sweep(batch=1, repeats=1, threads=1, tune=False)
    assert set(r["ratios"]) == {"3x3 5x5", "5x5 5x5"}
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in r["ratios"].values())
    md = bench.sweep_markdown(r)
    assert "| 5x5 5x5 | 4 |" in md and "C = 8" in md


def test_bench_conv_algos_times_every_algorithm_with_its_error():
    pytest.importorskip("torch", reason="PyTorch (the benchmark's reference) is not installed")
    bench = _bench_conv_algos()
    r = bench.run(batch=1, repeats=1, threads=1, layers=("conv2", "conv5"), tune=False)   # pytest's process
    for layer in ("conv2", "conv5"):
        d = r["layers"][layer]
        assert set(d["seconds"]) == {*bench.ALGOS, "torch"}
        assert all(0 < e[k] < 1e-4 for e in d["float32_rel_error"].values() for k in range(3))
    assert "| conv2 | winograd4x4 |" in bench.markdown(r)
    assert "PyTorch in a process of its own" in bench.markdown(r)
