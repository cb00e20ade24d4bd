"""One output-size formula (``kernels/_geometry.out_size``) and one LRN constant (``ALEXNET_LRN``),
checked against PyTorch's shapes and against copies creeping back."""
import itertools
import re
import tokenize
from pathlib import Path

import pytest
import torch

from tinyconv.functional import conv, lrn
from tinyconv.kernels._geometry import out_size

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_out_size_is_pytorchs_pooling_and_conv_size(ceil_mode):
    for size, k, s, p, d in itertools.product((5, 7, 8), (1, 2, 3), (1, 2, 3), (0, 1), (1, 2)):
        if p > k // 2 or d * (k - 1) + 1 > size + 2 * p:
            continue
        x = torch.zeros(1, 1, size, size)
        pooled = torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode=ceil_mode).shape[-1]
        assert out_size(size, k, s, p, d, ceil_mode) == pooled, (size, k, s, p, d)
        if not ceil_mode:
            convolved = torch.nn.functional.conv2d(x, torch.zeros(1, 1, k, k), None, s, p, d).shape[-1]
            assert out_size(size, k, s, p, d) == convolved


def test_functional_uses_the_one_formula():
    assert conv.conv_output_size is out_size


def _python_sources():
    for folder in ("tinyconv", "kernels", "benchmarks"):
        yield from (ROOT / folder).rglob("*.py")


def _code_lines(path):
    """(line number, the line's code without its strings and comments)."""
    lines = {}
    with tokenize.open(path) as f:
        for tok in tokenize.generate_tokens(f.readline):
            if tok.type not in (tokenize.STRING, tokenize.COMMENT):
                lines[tok.start[0]] = lines.get(tok.start[0], "") + " " + tok.string
    return lines.items()


def test_no_other_copy_of_the_output_size_formula():
    # ``(n + 2p - k) // s + 1`` or ``(n - k) // s + 1`` in code (docstrings may show the math),
    # outside kernels/_geometry.py; walkthrough.py keeps its own on purpose: it checks
    # tinyconv from first principles.
    pattern = re.compile(r"-\s*\w+\s*\)\s*//\s*\w+\s*\+\s*1\b")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _python_sources()
             if p.name not in ("_geometry.py", "walkthrough.py")
             for i, code in _code_lines(p) if pattern.search(code)]
    assert found == []


def test_one_definition_of_the_papers_lrn():
    assert lrn.ALEXNET_LRN == {"size": 5, "alpha": pytest.approx(5e-4), "beta": 0.75, "k": 2.0}
    pattern = re.compile(r"size\W+5\W+alpha\W+(5\s*\*\s*1e-4|5e-4|1e-4\s*\*\s*5)")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _python_sources()
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if pattern.search(line) and "=" in line.split("size")[0]]
    assert found == [f"tinyconv/functional/lrn.py:{_line_of('ALEXNET_LRN = ')}"]


def _line_of(text):
    lines = (ROOT / "tinyconv/functional/lrn.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))
