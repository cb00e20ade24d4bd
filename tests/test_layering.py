"""The layering rules.  First: ``kernels/`` (installed as ``tinyconv.kernels``) imports nothing of tinyconv.

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


# ------------------------------------------------------------------------------------------
# The autograd core and the ops: the dependency goes one way.  ``tinyconv.autograd`` (Tensor,
# Function, backward) imports no op; the op modules import the core; ``tensor_methods`` imports
# both and binds the operator methods onto ``Tensor`` once, at import.  Every import counts,
# at the top of a module or inside a function, so a cycle cannot come back as a late import
# (which would also run an import statement on each operator call).

PACKAGE = Path(__file__).resolve().parents[1] / "tinyconv"
CORE = ("autograd", "backend", "device_checks", "dtypes", "grad_mode", "tensor_protocols")
TENSOR_MODULES = CORE + ("creation", "linalg", "math_ops", "pointwise", "random", "reductions",
                         "shape_ops", "tensor_methods")


def tinyconv_imports(source, module="tinyconv.x"):
    """The tinyconv modules ``source`` (the text of ``module``, not a package) imports
    anywhere (top level or in a function), each as a top-level name under tinyconv
    (``from .functional import loss`` -> 'functional')."""
    package = module.rpartition(".")[0].split(".")
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod + "." + a.name if not node.module else mod for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tinyconv" and len(parts) > 1:
                found.add(parts[1])
    return found


def _graph():
    return {m: tinyconv_imports((PACKAGE / f"{m}.py").read_text(), f"tinyconv.{m}") - {m}
            for m in TENSOR_MODULES}


def test_the_import_scan_reads_relative_and_late_imports():
    source = ("from . import backend\nfrom .math_ops import add\nimport tinyconv.random\n"
              "def f():\n    from .functional import loss\n    from . import shape_ops\n")
    assert tinyconv_imports(source) == {"backend", "math_ops", "random", "functional", "shape_ops"}


def test_the_autograd_core_imports_no_op():
    graph = _graph()
    for module in CORE:
        assert graph[module] <= set(CORE), f"{module} imports {graph[module] - set(CORE)}"


def test_no_import_cycle_between_the_core_and_the_ops():
    graph, done, path = _graph(), set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done or m not in graph:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in graph:
        visit(m)


@pytest.mark.parametrize("module", ["autograd", "math_ops", "tensor_methods"])
def test_no_import_statement_runs_on_an_operator_call(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    late = [f"line {n.lineno}" for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert late == [], f"tinyconv/{module}.py imports inside a function: {late}"


def test_the_operators_are_bound_onto_the_core_once():
    import tinyconv
    from tinyconv import tensor_methods
    from tinyconv.autograd import Tensor
    assert Tensor.__add__ is tensor_methods.TensorMethods.__add__
    assert Tensor.sum is tensor_methods.TensorMethods.sum
    assert Tensor.__mro__[1:] == (tinyconv.tensor_protocols.TensorProtocols, object)
