"""Run one chapter of the walkthrough (docs/): a layer's forward, backward and gradient check.

    python examples/walkthrough.py lrn          # conv, pool, lrn, relu, dropout, fc, alexnet

The same as ``tinyconv walkthrough LAYER``; the experiments live in ``tinyconv/walkthrough.py``.
"""
import sys

from tinyconv.walkthrough import main

if __name__ == "__main__":
    sys.exit(main())
