"""``python -m tinyconv``: the ``tinyconv`` command (see :mod:`tinyconv.cli`)."""
import sys

from .cli import main

sys.exit(main())
