"""The layering rule: ``kernels/`` (installed as ``tinyconv.kernels``) imports nothing of tinyconv.

Checked statically, by walking each kernel module's syntax tree: no ``import tinyconv...`` or
``from tinyconv... import`` other than ``tinyconv.kernels``, no relative import that climbs out
of the package (``from .. import``), and no ``importlib.import_module`` / ``__import__`` of a
tinyconv module other than ``tinyconv.kernels`` (nor of a name the scan cannot read).  What a
kernel needs from tinyconv (dropout's seed and offset, say) the op hands in as arguments.
"""
import ast
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
MODULES = sorted(KERNELS.glob("*.py"))


def _allowed(name):
    return not (name == "tinyconv" or name.startswith("tinyconv.")) or \
        name == "tinyconv.kernels" or name.startswith("tinyconv.kernels.")


def _literal_prefix(node):
    """The module name a call passes, or its literal start for an f-string; None if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return None


def violations(source, filename="<kernel>"):
    """(line, what) for each way ``source`` reaches into tinyconv outside tinyconv.kernels."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if not _allowed(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2:
                found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import ..."))
            elif node.level == 0 and not _allowed(node.module or ""):
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in ("import_module", "__import__") and node.args:
                prefix = _literal_prefix(node.args[0])
                if prefix is None:
                    found.append((node.lineno, f"{name}(<not a literal>)"))
                elif prefix.startswith("."):
                    found.append((node.lineno, f"{name}({prefix!r}): relative"))
                elif not _allowed(prefix):
                    found.append((node.lineno, f"{name}({prefix!r})"))
    return found


def test_there_are_kernel_modules_to_check():
    names = {m.name for m in MODULES}
    assert {"__init__.py", "activation_numba.py", "activation_cuda.py", "cuda_loader.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_kernel_module_imports_nothing_of_tinyconv(path):
    assert violations(path.read_text(), str(path)) == [], f"{path.name} reaches into tinyconv"


@pytest.mark.parametrize("source", [
    "import tinyconv",
    "import tinyconv.random as r",
    "import numpy, tinyconv.backend",
    "from tinyconv import random",
    "from tinyconv.random import generator",
    "from .. import random",
    "from ..backend import kernel",
    "import importlib\nr = importlib.import_module('tinyconv.random')",
    "from importlib import import_module\nr = import_module('tinyconv')",
    "r = __import__('tinyconv.random')",
    "import importlib\nr = importlib.import_module(f'tinyconv.{name}')",
    "import importlib\nr = importlib.import_module(name)",
    "import importlib\nr = importlib.import_module('..random', __package__)",
])
def test_the_scan_catches_each_way_in(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "import numpy as np\nfrom numba import njit",
    "from . import cuda_loader\nfrom .cuda_loader import launch",
    "import tinyconv.kernels.conv_numba",
    "from tinyconv.kernels import conv_cuda",
    "import importlib\nm = importlib.import_module(f'tinyconv.kernels.{family}_cuda')",
    "import importlib\nm = importlib.import_module('cupy')",
    '"""Docstrings may name tinyconv.random.philox_seed_offset."""',
])
def test_the_scan_lets_the_package_itself_through(source):
    assert violations(source) == []
