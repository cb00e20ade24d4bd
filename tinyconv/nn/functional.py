"""``tinyconv.nn.functional`` is :mod:`tinyconv.functional`, as ``torch.nn.functional`` is in PyTorch.

``import tinyconv.nn.functional as F`` gives the very same module object (not a
copy of its names), so every op added to ``tinyconv.functional`` appears here at
once and ``F.conv2d is tinyconv.functional.conv2d``.
"""
import sys

from .. import functional as _functional

# Importing a module runs its file, then hands out whatever ``sys.modules`` holds
# under its name: replacing this module there makes the import return the alias.
sys.modules[__name__] = _functional
