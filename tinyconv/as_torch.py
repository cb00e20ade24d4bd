"""Run a PyTorch script on tinyconv, unchanged: ``python -m tinyconv.as_torch script.py [args]``.

While the aliases are installed, ``import torch`` gives :mod:`tinyconv`, ``import torch.X``
gives ``tinyconv.X`` (``torch.nn``, ``torch.nn.functional``, ``torch.optim``,
``torch.optim.lr_scheduler``, ``torch.utils.data``, ...), and torchvision's image side
maps onto :mod:`tinyconv.data`: ``torchvision.transforms`` is
:mod:`tinyconv.data.transforms`, ``torchvision.datasets`` is
:mod:`tinyconv.data.datasets`.  A ``torch.X`` that tinyconv lacks fails to import with
a ``ModuleNotFoundError`` that names the missing ``tinyconv.X``.

From Python (say, a test) the same aliases are a context manager, removed on exit::

    with tinyconv.as_torch.aliased():
        import torch                         # tinyconv
    tinyconv.as_torch.run("train.py", ["--epochs", "1"])

A process can hold one ``torch``: when the real PyTorch is already imported, the aliases
refuse to install (run the script in a subprocess instead).  Nothing happens at import
of this module; only :func:`aliased`, :func:`run` and ``python -m`` change ``sys.modules``.
"""
import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import runpy
import sys
import types

#: alias prefix -> tinyconv module it stands for (``alias.X`` -> ``module.X``)
ALIASES = {
    "torch": "tinyconv",
    "torchvision.transforms": "tinyconv.data.transforms",
    "torchvision.datasets": "tinyconv.data.datasets",
}
#: aliases that are only an empty package holding the ones above
PACKAGES = ("torchvision",)


def target(name):
    """The tinyconv module an aliased ``name`` stands for, or None if ``name`` is not aliased."""
    for alias in sorted(ALIASES, key=len, reverse=True):
        if name == alias or name.startswith(alias + "."):
            return ALIASES[alias] + name[len(alias):]
    return None


def _is_aliased(name):
    return name in PACKAGES or target(name) is not None or name.split(".")[0] in PACKAGES


class _AliasLoader(importlib.abc.Loader):
    """Hands back the tinyconv module itself (the alias and the module are one object)."""

    def __init__(self, real):
        self.real = real
        self.spec = None

    def create_module(self, spec):
        if self.real is None:                               # torchvision: an empty package
            module = types.ModuleType(spec.name, "tinyconv.as_torch stand-in package")
            module.__path__ = []
            return module
        module = importlib.import_module(self.real)
        self.spec = module.__spec__                         # the import system overwrites it
        return module

    def exec_module(self, module):
        if self.real is not None:
            module.__spec__ = self.spec                     # keep tinyconv's own spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target_=None):
        if name in PACKAGES:
            return importlib.util.spec_from_loader(name, _AliasLoader(None), is_package=True)
        real = target(name)
        if real is None:
            if name.split(".")[0] in PACKAGES:
                raise ModuleNotFoundError(f"No module named {name!r}: tinyconv.as_torch maps only "
                                          f"{sorted(a for a in ALIASES if a.startswith(name.split('.')[0]))}",
                                          name=name)
            return None
        try:
            found = importlib.util.find_spec(real)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ModuleNotFoundError(f"No module named {name!r} (tinyconv has no {real})", name=name)
        return importlib.util.spec_from_loader(name, _AliasLoader(real),
                                               is_package=found.submodule_search_locations is not None)


@contextlib.contextmanager
def aliased():
    """Make ``torch``/``torchvision`` imports resolve to tinyconv inside the block; undone on exit."""
    real = sys.modules.get("torch")
    if real is not None and not getattr(real, "__name__", "").startswith("tinyconv"):
        raise RuntimeError("tinyconv.as_torch: the real PyTorch is already imported in this process; "
                           "run the script in a subprocess (python -m tinyconv.as_torch script.py)")
    before = {k: v for k, v in sys.modules.items() if _is_aliased(k)}
    finder = _AliasFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if _is_aliased(k)]:
            if k not in before:
                del sys.modules[k]


def run(script, argv=()):
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *argv]`` and the aliases on;
    its directory comes first on ``sys.path``, as ``python script.py`` puts it.  Returns
    the script's globals."""
    script = os.fspath(script)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        with aliased():
            return runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0])
        print("usage: python -m tinyconv.as_torch script.py [args ...]")
        return 0 if argv else 2
    if sys.path and sys.path[0] in ("", os.getcwd()):    # python -m put the cwd first; the script's
        sys.path.pop(0)                                   # directory replaces it, as python script.py
    run(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
