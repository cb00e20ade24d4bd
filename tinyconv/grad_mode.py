"""Grad mode: whether ops record the graph (``no_grad``, ``enable_grad``, ``set_grad_enabled``).

One flag per thread, as in PyTorch.  ``Function.__call__`` (``autograd.py``) reads it: with
recording off, an op's output has no ``grad_fn`` and the op saves nothing for backward.
"""
import functools
import threading


class _GradMode(threading.local):
    enabled = True      # per thread, as in PyTorch


_grad_mode = _GradMode()


class _GradModeContext:
    """A context manager that is also a decorator (``@no_grad()``, or bare ``@no_grad``)."""

    mode = None

    def __new__(cls, *args):
        if cls is not set_grad_enabled and len(args) == 1 and callable(args[0]):
            return cls()(args[0])                     # bare @no_grad / @enable_grad
        return super().__new__(cls)

    def __enter__(self):
        self.previous, _grad_mode.enabled = _grad_mode.enabled, self.mode

    def __exit__(self, *exc):
        _grad_mode.enabled = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with self._fresh():                       # a fresh one per call: safe to recurse
                return fn(*args, **kwargs)
        return wrapped

    def _fresh(self):
        return type(self)()


class no_grad(_GradModeContext):
    """Record no graph inside (``with no_grad():``, ``@no_grad()`` or ``@no_grad``), as ``torch.no_grad``."""

    mode = False


class enable_grad(_GradModeContext):
    """Record the graph again inside a ``no_grad`` block, as ``torch.enable_grad``."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """Turn graph recording on or off, as ``torch.set_grad_enabled``.

    As in PyTorch it acts at once (``set_grad_enabled(False)`` as a plain call switches
    recording off); as a context manager or decorator it restores the previous mode after.
    """

    def __init__(self, mode):
        self.mode, self.previous = bool(mode), _grad_mode.enabled
        _grad_mode.enabled = self.mode

    def __enter__(self):
        pass

    def __call__(self, fn):
        _grad_mode.enabled = self.previous            # as a decorator it acts only inside fn
        return super().__call__(fn)

    def _fresh(self):
        return set_grad_enabled(self.mode)


def is_grad_enabled():
    return _grad_mode.enabled
